"""The storms' test bed: a real controller, the datacenter topology on real OVS, attackers.

A tenant VM (the attacker) floods from its own port with
:mod:`ryu_apps.lab.vmtools.flood` while new VMs boot on its server and on another
one and announce themselves; meanwhile the attacker's bridge is read for drop
flows (cookie kind 4, quarantine). Every VM is a Mininet host; everything is
stopped by PID and bridge name.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from benchmarks.hostile import controller_watch as watch
from ryu_apps.lab import testbed as lab
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.quarantine import QUARANTINE_MACS_PER_PORT

#: Templates of the default library a new VM gets, with their subnets.
NEW_VM_TEMPLATES = ((0x00FA, "10.0.100"), (0x00FC, "10.0.200"), (0x00FE, "10.0.30"))
#: Drop flows one port may carry (ryu_apps.core.quarantine): a flow per refused MAC
#: up to QUARANTINE_MACS_PER_PORT, the port's own drop, and its LLDP drop.
DROP_FLOWS_PER_PORT = QUARANTINE_MACS_PER_PORT + 1 + 1
_SENT = re.compile(r"sent (\d+)")


def vmtool(module: str) -> str:
    """The command line of one of ``ryu_apps.lab.vmtools``, as a Mininet host runs it."""
    return f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m ryu_apps.lab.vmtools.{module}"


def vm_mac(template_id: int, serial: int) -> str:
    """A VM MAC under prefix/16."""
    value = (template_id << 32) | serial
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))


class Flood:
    """``ryu_apps.lab.vmtools.flood`` running in a host until stopped."""

    def __init__(self, host, mode: str, rate: float, names: Iterable[Tuple[int, int]] = (),
                 max_seconds: float = 600.0) -> None:
        self.host = host
        workdir = Path(tempfile.mkdtemp(prefix=f"dynprov-flood-{host.name}-"))
        self.stop_file, self.output = workdir / "stop", workdir / "flood.log"
        name_args = " ".join(f"--name {dpid:x}:{port}" for dpid, port in names)
        out = host.cmd(f"{vmtool('flood')} {host.defaultIntf()} {mode} --rate {rate} "
                       f"--seconds {max_seconds} --stop-file {self.stop_file} {name_args} "
                       f"> {self.output} 2>&1 & echo $!")
        self.pid = out.strip().split()[-1]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "started" in self._log():
                self.started = time.monotonic()
                return
            time.sleep(0.02)
        raise RuntimeError(f"flood in {host.name} did not start: {self._log()}")

    def _log(self) -> str:
        return self.output.read_text() if self.output.exists() else ""

    def stop(self, timeout: float = 10.0) -> Tuple[int, float]:
        """Stop the storm; (frames sent, seconds)."""
        self.stop_file.touch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"done (\d+) ([\d.]+)", self._log())
            if found:
                shutil.rmtree(self.stop_file.parent, ignore_errors=True)
                return int(found.group(1)), float(found.group(2))
            time.sleep(0.05)
        self.host.cmd(f"kill {self.pid}")
        raise RuntimeError(f"flood in {self.host.name} did not stop: {self._log()}")


class StormLab:
    """Controller and datacenter topology with every original VM provisioned."""

    def __init__(self, prefix: str, **topo) -> None:
        self.prefix = prefix
        topo.setdefault("edge", 0)
        topo.setdefault("dpid_base", (os.getpid() % 4096) << 24)
        self.topo = topo
        self.controller: Optional[lab.ControllerProcess] = None
        self.net = None
        self.originals: List = []
        self._serial = 0x5700 + (os.getpid() % 256) * 0x100

    def start(self) -> "StormLab":
        self.controller = lab.ControllerProcess(verbose=False).start()
        try:
            self.net = lab.build_network(self.controller.of_port, prefix=self.prefix,
                                         **self.topo)
            lab.wait_for_fabric(self.controller, self.net)
            self.originals = list(self.net.hosts)
            for vm in self.originals:
                lab.announce(vm)
            self.wait_provisioned([vm.MAC() for vm in self.originals])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.net is not None:
            lab.stop_network(self.net)
            self.net = None
        if self.controller is not None:
            self.controller.stop()

    # -- names ----------------------------------------------------------------------
    def switch(self, name: str):
        """A switch by its name without the prefix (``s11``, ``a1``)."""
        return self.net.get(self.prefix + name)

    @staticmethod
    def bridge_port(host) -> int:
        """The OpenFlow port of a VM on its server bridge."""
        intf = host.defaultIntf()
        link = intf.link
        other = link.intf2 if link.intf1 is intf else link.intf1
        return other.node.ports[other]

    def access_ports(self) -> List[Tuple[int, int]]:
        """(dpid, port) of every link end on an access switch (what a forger names)."""
        access = {int(self.switch(f"a{a}").dpid, 16)
                  for a in range(1, self.topo.get("access", 2) + 1)}
        ends = set()
        for link in watch.links(self.controller):
            for dpid, port in link:
                if dpid != "shared-fabric" and int(dpid, 16) in access:
                    ends.add((int(dpid, 16), port))
        return sorted(ends)

    # -- VMs ------------------------------------------------------------------------
    def new_vm(self, server: str, tag: str, template_index: int = 0):
        """Plug a silent VM into ``server`` (not yet announced)."""
        template_id, subnet = NEW_VM_TEMPLATES[template_index % len(NEW_VM_TEMPLATES)]
        self._serial += 1
        serial = self._serial
        ip = f"{subnet}.{serial % 200 + 40}/16"
        return lab.add_vm(self.net, self.switch(server), f"{self.prefix}{tag}",
                          vm_mac(template_id, serial), ip)

    def announce(self, host) -> int:
        """The VM's first frame (a gratuitous ARP); the monotonic ns it left at."""
        out = host.cmd(f"{vmtool('announce')} {host.defaultIntf()} --timestamps")
        found = _SENT.search(out)
        if not found:
            raise RuntimeError(f"announce from {host.name} failed: {out}")
        return int(found.group(1))

    def wait_provisioned(self, macs: Iterable[str], timeout: float = 30.0) -> Dict[str, dict]:
        """Provisioning times of ``macs`` once each is confirmed (or at ``timeout``)."""
        wanted = {m.lower() for m in macs}
        deadline = time.monotonic() + timeout
        while True:
            times = {e["mac"]: e for e in watch.rest_get(self.controller,
                                                         "/dynprov/provisioning-times")
                     if e["mac"] in wanted}
            done = [m for m, e in times.items() if e["confirmed_ns"] is not None]
            if len(done) == len(wanted) or time.monotonic() > deadline:
                return times
            time.sleep(0.2)

    # -- the attacker's bridge ----------------------------------------------------------
    def drop_flows(self, server: str) -> Dict[int, int]:
        """Quarantine drop flows (cookie kind 4) on a bridge now, per port (the
        quarantine owner id is the port)."""
        counts: Dict[int, int] = {}
        for line in lab.dump_flows(self.prefix + server).splitlines():
            if "cookie=" not in line:
                continue
            owner = decode_cookie(int(line.split("cookie=", 1)[1].split(",", 1)[0], 16))
            if owner is None or owner.kind is not CookieKind.QUARANTINE:
                continue
            counts[owner.owner_id] = counts.get(owner.owner_id, 0) + 1
        return counts

    # -- reachability ---------------------------------------------------------------------
    def ping_mesh(self, hosts: List) -> Dict[str, bool]:
        """Whether each host reaches each other (2 pings, all pairs at once)."""
        for src in hosts:
            targets = " ".join(dst.IP() for dst in hosts if dst is not src)
            src.sendCmd(f"for t in {targets}; do (ping -n -c2 -i0.2 -W1 $t >/dev/null 2>&1 "
                        f"&& echo R $t || echo U $t) & done; wait")
        by_ip = {h.IP(): h.name[len(self.prefix):] for h in hosts}
        mesh = {}
        for src in hosts:
            for line in src.waitOutput().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] in ("R", "U") and parts[1] in by_ip:
                    mesh[f"{src.name[len(self.prefix):]}->{by_ip[parts[1]]}"] = parts[0] == "R"
        return mesh


def run_prefix(letter: str = "S") -> str:
    """A short prefix for this run's node names (several runs may share the machine)."""
    return "%s%03d" % (letter, os.getpid() % 1000)
