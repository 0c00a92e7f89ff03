"""Migration convergence per detection mode: dynprov and FAUCET, same topology, same run.

Run: ``python -m benchmarks.migration [--quick] [--migrations N] [--name NAME] [--plot-only]``
(root; OVS running; FAUCET installs itself into ``.venv-faucet`` on first use).
The full run (20 moves per case, 15 cases) takes about 17 minutes here (about
3.3 s per move, 4 test beds set up in about a minute); ``--quick`` (2 per
case, one each way) about 2 minutes.

Four copies of the demo topology (``topologies/dynprov_topo.py`` datacenter,
edge included) run side by side, one per detection mode: dynprov watching the
servers' OVSDB, dynprov for notices, dynprov for packets only (both watching
no OVSDB), and FAUCET (one learning VLAN). VM web1 live-migrates
between server s11 (access a1) and server s21 (access a2), alternating
direction, with ``ryu_apps.lab.migration.live_migrate`` (which sets
``attached-mac`` on the destination port, as a hypervisor does) in three
shapes: ``qemu`` (hypervisor-style RARPs at 0/50/200/450/800 ms), ``garp``
(one gratuitous ARP), ``none``. dynprov's detection modes
(``benchmarks.migration_cases``): OVSDB watched; notice only (a ``migrating``
notice sent as the destination port is created, OVSDB not watched); packets
only. Cases are interleaved move by move (dynprov, dynprov, FAUCET, dynprov,
...), so every controller sees the same machine load; the order is reversed
every other round so that every case moves the VM both ways. A control case
per test bed probes for the same time without any move: the background loss
of the (shared) machine.

During each move web5 (a VM on s21) and the outside host out1 (behind the
edge) probe web1 every 1 ms with ``ryu_apps.lab.vmtools.prober``; probing
stops ``RECOVERY_LIMIT_S`` after the switchover. The destination port exists
``PRECOPY_S`` before the switchover, standing for the pre-copy phase of a live
migration. Per move the worse prober counts: the outage (first lost probe to
first answered one, by send time), probes lost, recovered (both probers'
last probes answered), the network's share (the VM's new interface up,
stamped inside the VM, to the first answered probe) and the controller's CPU
time over the move (``/proc`` schedstat of its process tree), which the
machine's load does not inflate the way it inflates wall-clock figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks.common import print_machine, publish, replot
from benchmarks.migration_cases import Case, case_figures, mode_grid, round_order, table
from benchmarks.migration_plot import plot

MIGRATING_VM = "web1"
PROBERS = ("web5", "out1")
RECOVERY_LIMIT_S = 1.0
#: Time between the destination port's creation (and the notification) and the
#: switchover: a live migration copies the guest's memory meanwhile, which takes
#: far longer; the same for every case and both controllers.
PRECOPY_S = 0.2
#: How long a prober waits for replies after its last probe: longer than the
#: round trip on a loaded machine, or the last probes would count as lost.
LINGER_MS = 400
LOCAL_OVSDB = "unix:/var/run/openvswitch/db.sock"
WATCHED = ("s11", "a1", "s21", "a2", "f1")


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
                 watch_ovsdb: bool = True) -> None:
        """``watch_ovsdb``: the controller watches the servers' OVSDB (else packets only)."""
        from ryu_apps.lab import testbed as lab

        super().__init__()
        self.prefix = prefix
        self.controller = lab.ControllerProcess(
            templates=templates or lab.DEFAULT_TEMPLATES,
            extra_options=f"ovsdb = {LOCAL_OVSDB}\n" if watch_ovsdb else "").start()
        try:
            self.net = lab.build_network(self.controller.of_port, prefix=prefix,
                                         dpid_base=dpid_base, edge=1)
            lab.wait_for_fabric(self.controller, self.net)
            for vm in self.net.hosts:
                lab.announce(vm)
            if not self.controller.wait_for_log("provisioned VM", timeout=20,
                                                count=len(self.net.hosts)):
                raise RuntimeError("dynprov did not provision every VM:\n"
                                   + self.controller.log()[-3000:])
        except BaseException:
            self.stop()
            raise
        self._index(prefix)

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


# -- one migration --------------------------------------------------------------------
def migrate_once(bed: Testbed, case: Case, watch: bool = False) -> dict:
    """One probed migration of web1 to the other side in ``case``; its record."""
    from ryu_apps.lab.outage import analyse
    from ryu_apps.lab.migration import live_migrate
    from ryu_apps.lab.vmtools import flow_monitor

    vm = bed.vms[MIGRATING_VM]
    here = vm.defaultIntf().link.intf2.node
    source = "s11" if here is bed.switches["s11"] else "s21"
    destination = bed.switches["s21" if source == "s11" else "s11"]
    reachable_before = bed.reachable()
    if not reachable_before:   # counted apart, not as this move's outage
        print(f"warning: {case.name}: {vm.name} unreachable before the move", flush=True)
    monitors = flow_monitor.watch([bed.switches[n].name for n in WATCHED]) if watch else []
    streams = start_probes(bed.vms, vm)
    time.sleep(0.15)
    notified_ns: List[int] = []
    cpu_at_switchover: List[int] = []

    def before_switchover() -> None:
        """The destination port exists: notify, then the pre-copy phase."""
        if case.notify:
            try:
                bed.notify(vm, destination)
                notified_ns.append(time.monotonic_ns())
            except RuntimeError as refused:   # the move goes on, unannounced
                print(f"warning: {case.name}: {refused}", flush=True)
        time.sleep(PRECOPY_S)
        cpu_at_switchover.append(cpu_ns(bed.controller_pid()))

    cpu_before = cpu_ns(bed.controller_pid())
    try:
        if case.shape == "control":
            times = _stand_still(vm, here.name)
        else:
            times = live_migrate(bed.net, vm, destination, announce=case.shape,
                                 before_switchover=before_switchover,
                                 wait_announcements=True)
        time.sleep(max(0.0, (times.switchover_ns + RECOVERY_LIMIT_S * 1e9
                             - time.monotonic_ns()) / 1e9))
    finally:
        cpu_used = cpu_ns(bed.controller_pid()) - cpu_before
        results = [s.stop() for s in streams]
        events = flow_monitor.stop_all(monitors)
    record = {"controller": case.controller, "mode": case.mode, "shape": case.shape,
              "source": source, "destination": destination.name[-3:],
              "guest_downtime_ms": times.downtime_ns / 1e6, "probers": {},
              "controller_cpu_ms": cpu_used / 1e6, "reachable_before": reachable_before,
              "notified": bool(notified_ns),
              "controller_cpu_after_switchover_ms": (
                  (cpu_before + cpu_used - cpu_at_switchover[0]) / 1e6
                  if cpu_at_switchover else None)}
    for name, (interval_ns, probes) in zip(PROBERS, results):
        report = analyse(probes, interval_ns)
        run = report.outage_run
        share = None
        if report.recovered and run is not None:
            share = max(0.0, (run.end_ns - times.up_ns) / 1e6)
        elif report.recovered:
            share = 0.0
        record["probers"][name] = {
            "outage_ms": report.outage_ns / 1e6, "lost": report.lost,
            "recovered": report.recovered, "network_share_ms": share,
            "median_rtt_ms": (report.median_latency_ns or 0) / 1e6}
    if watch:
        zero = times.switchover_ns
        record["timeline"] = {
            "zero": "switchover (the VM's old interface goes down)",
            "guest_down_ms": ((times.guest_down_ns or zero) - zero) / 1e6,
            "guest_up_ms": (times.up_ns - zero) / 1e6,
            "port_created_ms": (times.port_created_ns - zero) / 1e6,
            "notified_ms": [(t - zero) / 1e6 for t in notified_ns],
            "announcements_ms": [(t - zero) / 1e6 for t in times.announcements_ns],
            "source_port_removed_ms": (times.source_port_removed_ns - zero) / 1e6,
            "probes": {name: [[(p.sent_ns - zero) / 1e6, p.received_ns is not None]
                              for p in probes
                              if -300e6 <= p.sent_ns - zero <= 600e6]
                       for name, (_, probes) in zip(PROBERS, results)},
            "flow_events": [[_short(bed, e.bridge), (e.at_ns - zero) / 1e6, e.kind]
                            for e in events if -500e6 <= e.at_ns - zero <= 1000e6],
        }
    return record


def _short(bed: Testbed, bridge: str) -> str:
    return next((short for short, s in bed.switches.items() if s.name == bridge), bridge)


def _stand_still(vm, bridge: str):
    """The control case: the same wait as a migration's pre-copy, and no move."""
    from ryu_apps.lab.migration import DestinationPort, MigrationTimes

    start = time.monotonic_ns()
    time.sleep(PRECOPY_S)
    now = time.monotonic_ns()
    return MigrationTimes(vm.name, bridge, DestinationPort(bridge, "", 0, vm.MAC()),
                          "control", start, now, now, now, now, (), now, now)


# -- the run ------------------------------------------------------------------------
def start_beds(tag: int, base: int) -> Dict[str, Testbed]:
    """One test bed per mode, each on its own copy of the topology (stopped on failure)."""
    beds: Dict[str, Testbed] = {}
    try:
        beds["dynprov-ovsdb"] = DynprovTestbed(f"mo{tag:03d}", base)
        beds["dynprov-notice"] = DynprovTestbed(f"mn{tag:03d}", base + (1 << 22),
                                                watch_ovsdb=False)
        beds["dynprov-packets"] = DynprovTestbed(f"mp{tag:03d}", base + (2 << 22),
                                                 watch_ovsdb=False)
        beds["faucet"] = FaucetTestbed(f"mf{tag:03d}", base + (3 << 22))
    except BaseException:
        for bed in beds.values():
            bed.stop()
        raise
    return beds


def run(migrations: int, quick: bool) -> dict:
    """``migrations`` rounds of every case, interleaved; the figures and every record."""
    from ryu_apps.lab.testbed import ovs_bridges

    base = (os.getpid() % 2048) << 24
    tag = os.getpid() % 1000
    records: List[dict] = []
    timelines: List[dict] = []
    beds = start_beds(tag, base)
    started = time.monotonic()
    try:
        for index in range(migrations):
            for case in round_order(index):
                # The first hypervisor-style move of each mode is watched.
                watch = case.shape == "qemu" and all(t["case"] != case.name
                                                     for t in timelines)
                record = migrate_once(beds[case.bed], case, watch=watch)
                record["index"] = index
                if watch:
                    timelines.append({"case": case.name, "timeline": record.pop("timeline")})
                records.append(record)
                _progress(started, index, migrations, case, record)
    finally:
        for bed in beds.values():
            bed.stop()
    leftovers = {b for b in ovs_bridges() if b.startswith(
        tuple(f"{p}{tag:03d}" for p in ("mo", "mn", "mp", "mf")))}
    if leftovers:
        print("warning: bridges left behind:", leftovers)
    return {"quick": quick, "migrations_per_case": migrations,
            "duration_s": round(time.monotonic() - started, 1),
            "interval_ms": 1.0, "recovery_limit_ms": RECOVERY_LIMIT_S * 1e3,
            "probers": list(PROBERS), "figure": "worst of the probers per move",
            "order": "interleaved per migration, reversed every other round: "
                     + ", ".join(c.name for c in round_order(0)),
            "cases": case_figures(records), "timelines": timelines, "records": records}


def _progress(started: float, index: int, rounds: int, case: Case, record: dict) -> None:
    worst = max(p["outage_ms"] for p in record["probers"].values())
    print(f"[{time.monotonic() - started:6.1f}s] {index + 1}/{rounds} {case.name:24} "
          f"{record['source']}->{record['destination']}: worst outage {worst:7.1f} ms, "
          f"VM swap {record['guest_downtime_ms']:.1f} ms", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 migrations per case (one each way)")
    parser.add_argument("--migrations", type=int, help="migrations per case (default 20)")
    parser.add_argument("--name", help="results name, migration-SOMETHING (default migration"
                        " / migration-quick); the plots take the same suffix")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the plots from the saved results")
    args = parser.parse_args(argv)
    name = args.name or ("migration-quick" if args.quick else "migration")
    if args.plot_only:
        replot(name, plot)
        return 0
    if os.geteuid() != 0:
        print("needs root (Mininet, OVS)", file=sys.stderr)
        return 2
    print_machine()
    migrations = args.migrations or (2 if args.quick else 20)
    figures = run(migrations, args.quick)
    print(table(figures["cases"]))
    print(mode_grid(figures["cases"]))
    publish(name, figures, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
