"""The migration benchmark's test beds and probes: one controller and its copy of the topology.

``DynprovTestbed`` (watching the servers' OVSDB or not) and ``FaucetTestbed``
each start their controller and a prefixed copy of the demo datacenter;
``ProbeStream`` runs ``ryu_apps.lab.vmtools.prober`` from one host to another;
``cpu_ns`` reads a controller's CPU time from ``/proc``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

MIGRATING_VM = "web1"
PROBERS = ("web5", "out1")
#: How long a prober waits for replies after its last probe: longer than the
#: round trip on a loaded machine, or the last probes would count as lost.
LINGER_MS = 400
LOCAL_OVSDB = "unix:/var/run/openvswitch/db.sock"


# -- probing ------------------------------------------------------------------------
class ProbeStream:
    """``ryu_apps.lab.vmtools.prober`` from one host to another; start and stop split."""

    def __init__(self, src, dst, interval_ms: float = 1.0) -> None:
        from ryu_apps.lab.testbed import REPO_ROOT

        self.src = src
        workdir = Path(tempfile.mkdtemp(prefix=f"dynprov-mig-{src.name}-"))
        self.output, self.stop_file = workdir / "probes.json", workdir / "stop"
        self.log = workdir / "prober.log"
        out = src.cmd(f"env PYTHONPATH={REPO_ROOT} {sys.executable} -m ryu_apps.lab.vmtools.prober"
                      f" probe {dst.IP()} --output {self.output} --interval-ms {interval_ms}"
                      f" --stop-file {self.stop_file} --linger-ms {LINGER_MS}"
                      f" > {self.log} 2>&1 & echo $!")
        self.pid = out.strip().split()[-1]

    def wait_started(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and "started" in self.log.read_text():
                return
            time.sleep(0.01)
        raise RuntimeError(f"prober on {self.src.name} did not start")

    def stop(self, timeout: float = 15.0) -> tuple:
        """(interval_ns, probes)."""
        from ryu_apps.lab.outage import probes_from_document

        self.stop_file.touch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.output.exists() and "done" in self.log.read_text():
                document = json.loads(self.output.read_text())
                return probes_from_document(document)
            time.sleep(0.02)
        self.src.cmd(f"kill {self.pid}")
        raise RuntimeError(f"prober on {self.src.name} did not finish: {self.log.read_text()}")


def start_probes(vms: dict, target) -> List[ProbeStream]:
    streams = [ProbeStream(vms[name], target) for name in PROBERS]
    for stream in streams:
        stream.wait_started()
    return streams


# -- test beds ---------------------------------------------------------------------
class Testbed:
    """One controller and its copy of the topology."""

    controller_name = ""

    def __init__(self) -> None:
        self.net: Any = None          # a Mininet network (untyped library)
        self.vms: Dict[str, Any] = {}
        self.switches: Dict[str, Any] = {}

    def _index(self, prefix: str) -> None:
        self.vms = {h.name[len(prefix):]: h for h in self.net.hosts}
        self.switches = {s.name[len(prefix):]: s for s in self.net.switches}

    def notify(self, vm, destination) -> None:
        raise NotImplementedError

    def controller_pid(self) -> int:
        """The controller's process id (its CPU time is read per move)."""
        raise NotImplementedError

    def reachable(self, timeout_s: float = 10.0) -> bool:
        """Both probers reach web1 (after making web1 announce itself if needed)."""
        from ryu_apps.lab import testbed as lab

        target = self.vms[MIGRATING_VM]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all("1 received" in self.vms[p].cmd(f"ping -c1 -W1 {target.IP()}")
                   for p in PROBERS):
                return True
            lab.announce(target)
        return False

    def stop(self) -> None:
        raise NotImplementedError


class DynprovTestbed(Testbed):
    controller_name = "dynprov"

    def __init__(self, prefix: str, dpid_base: int, templates: Optional[Path] = None,
                 watch_ovsdb: bool = True, of_port: Optional[int] = None) -> None:
        """``watch_ovsdb``: the controller watches the servers' OVSDB (else packets only);
        ``of_port``: its OpenFlow port (default a free one)."""
        from ryu_apps.lab import testbed as lab

        super().__init__()
        self.prefix = prefix
        # No --verbose (as the latency and throughput benchmarks): Ryu's DEBUG line
        # per event cost 14 % of the controller's CPU in the moves (py-spy, 2026-12-04).
        self.controller = lab.ControllerProcess(
            templates=templates or lab.DEFAULT_TEMPLATES, of_port=of_port, verbose=False,
            extra_options=f"ovsdb = {LOCAL_OVSDB}\n" if watch_ovsdb else "").start()
        try:
            self.net = lab.build_network(self.controller.of_port, prefix=prefix,
                                         dpid_base=dpid_base, edge=1)
            lab.wait_for_fabric(self.controller, self.net)
            for vm in self.net.hosts:
                lab.announce(vm)
            if not self._all_bound(timeout=20.0):
                raise RuntimeError("dynprov did not provision every VM:\n"
                                   + self.controller.log()[-3000:])
        except BaseException:
            self.stop()
            raise
        self._index(prefix)

    def _all_bound(self, timeout: float) -> bool:
        """Every host of the bed has a binding (the REST API's view), within ``timeout``."""
        wanted = {vm.MAC() for vm in self.net.hosts}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, bindings = self.controller.rest("GET", "/dynprov/bindings", role="reader")
            if status == 200 and wanted <= {b["mac"] for b in bindings}:
                return True
            time.sleep(0.2)
        return False

    def controller_pid(self) -> int:
        if self.controller.process is None:
            raise RuntimeError("the dynprov controller is not running")
        return self.controller.process.pid

    def notify(self, vm, destination) -> None:
        from ryu_apps.cli.notify import send

        status, answer = send(self.controller.rest_target(),
                              {"event": "migrating", "mac": vm.MAC(),
                               "server": destination.name})
        if status != 200:
            raise RuntimeError(f"notification refused: {status} {answer}")

    def stop(self) -> None:
        from ryu_apps.lab import testbed as lab

        if self.net is not None:
            lab.stop_network(self.net)
        self.controller.stop()


class FaucetTestbed(Testbed):
    controller_name = "faucet"

    def __init__(self, prefix: str, dpid_base: int, acls=None, acl_hosts=None) -> None:
        from benchmarks.peers.faucet import running_faucet_datacenter

        super().__init__()
        self.faucet, self.net = running_faucet_datacenter(prefix, dpid_base, acls, acl_hosts,
                                                          edge=1)
        self._index(prefix)
        out1 = self.vms["out1"]
        for vm in self.net.hosts:   # every host learned everywhere
            if vm is not out1:
                vm.cmd(f"ping -c1 -W1 {out1.IP()}")

    def controller_pid(self) -> int:
        return self.faucet.process.pid

    def stop(self) -> None:
        from ryu_apps.lab import testbed as lab

        if self.net is not None:
            lab.stop_network(self.net)
        self.faucet.stop()


def cpu_ns(pid: int) -> int:
    """CPU time (ns, from ``/proc/*/schedstat``) of a process, its threads and children."""
    total, pending, seen = 0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        tasks = Path(f"/proc/{current}/task")
        for task in (tasks.iterdir() if tasks.exists() else ()):
            try:
                total += int((task / "schedstat").read_text().split()[0])
                pending += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError, IndexError):
                continue   # the task ended meanwhile
    return total
