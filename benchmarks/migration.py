"""Migration convergence per detection mode: dynprov and FAUCET, same topology, same run.

Run: ``python -m benchmarks.migration [--quick] [--migrations N] [--name NAME] [--plot-only]
[--modes ovsdb,notice,packets,faucet] [--shapes qemu,garp,none,control]``
(root; OVS running; FAUCET installs itself into ``.venv-faucet`` on first use).
The full run (20 moves per case, 15 cases) takes about 17 minutes here (about
3.3 s per move, 4 test beds set up in about a minute); ``--quick`` (2 per
case, one each way) about 2 minutes. ``--modes`` and ``--shapes`` run a part
(only the test beds its modes need), e.g. one mode's three shapes in about 4
minutes; each part is saved under its own ``--name``.

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
import os
import sys
import time
from typing import Dict, List, Optional

from benchmarks.common import print_machine, publish, replot
from benchmarks.migration_beds import (MIGRATING_VM, PROBERS, DynprovTestbed, FaucetTestbed,
                                       ProbeStream, Testbed, cpu_ns, start_probes)
from benchmarks.migration_cases import (BED_NAMES, Case, case_figures, mode_grid, round_order,
                                        selected_cases, table)
from benchmarks.migration_plot import plot

__all__ = ["DynprovTestbed", "FaucetTestbed", "ProbeStream", "migrate_once", "run", "main"]

RECOVERY_LIMIT_S = 1.0
#: Time between the destination port's creation (and the notification) and the
#: switchover: a live migration copies the guest's memory meanwhile, which takes
#: far longer; the same for every case and both controllers.
PRECOPY_S = 0.2
WATCHED = ("s11", "a1", "s21", "a2", "f1")


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
        record["probers"][name] = _prober_figures(analyse(probes, interval_ns), times)
    if watch:
        record["timeline"] = _timeline(bed, times, notified_ns, results, events)
    return record


def _prober_figures(report, times) -> dict:
    """One prober's outage, loss, recovery, network share and round trip."""
    run = report.outage_run
    share = None
    if report.recovered and run is not None:
        share = max(0.0, (run.end_ns - times.up_ns) / 1e6)
    elif report.recovered:
        share = 0.0
    return {"outage_ms": report.outage_ns / 1e6, "lost": report.lost,
            "recovered": report.recovered, "network_share_ms": share,
            "median_rtt_ms": (report.median_latency_ns or 0) / 1e6}


def _timeline(bed: Testbed, times, notified_ns: List[int], results: list,
              events: list) -> dict:
    """A watched move's probes, flow changes and milestones, in ms since the switchover."""
    zero = times.switchover_ns
    return {
        "zero": "switchover (the VM's old interface goes down)",
        "zero_ns": zero,
        "guest_down_ms": ((times.guest_down_ns or zero) - zero) / 1e6,
        "guest_up_ms": (times.up_ns - zero) / 1e6,
        "port_created_ms": (times.port_created_ns - zero) / 1e6,
        "notified_ms": [(t - zero) / 1e6 for t in notified_ns],
        "announcements_ms": [(t - zero) / 1e6 for t in times.announcements_ns],
        "old_deleted_ms": (times.old_deleted_ns - zero) / 1e6,
        "source_port_removed_ms": (times.source_port_removed_ns - zero) / 1e6,
        "probes": {name: [[(p.sent_ns - zero) / 1e6, p.received_ns is not None]
                          for p in probes if -300e6 <= p.sent_ns - zero <= 600e6]
                   for name, (_, probes) in zip(PROBERS, results)},
        "flow_events": [[_short(bed, e.bridge), (e.at_ns - zero) / 1e6, e.kind]
                        for e in events if -500e6 <= e.at_ns - zero <= 1000e6],
    }


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
def start_beds(tag: int, base: int, wanted: Optional[set] = None) -> Dict[str, Testbed]:
    """One test bed per mode in ``wanted`` (default all), each on its own copy of the topology.

    All are stopped if one fails to start.
    """
    beds: Dict[str, Testbed] = {}
    starts = {
        "dynprov-ovsdb": lambda: DynprovTestbed(f"mo{tag:03d}", base),
        "dynprov-notice": lambda: DynprovTestbed(f"mn{tag:03d}", base + (1 << 22),
                                                 watch_ovsdb=False),
        "dynprov-packets": lambda: DynprovTestbed(f"mp{tag:03d}", base + (2 << 22),
                                                  watch_ovsdb=False),
        "faucet": lambda: FaucetTestbed(f"mf{tag:03d}", base + (3 << 22)),
    }
    try:
        for name, start in starts.items():
            if wanted is None or name in wanted:
                beds[name] = start()
    except BaseException:
        for bed in beds.values():
            bed.stop()
        raise
    return beds


def run(migrations: int, quick: bool, cases: Optional[List[Case]] = None) -> dict:
    """``migrations`` rounds of ``cases`` (default all), interleaved; figures and records."""
    from ryu_apps.lab.testbed import ovs_bridges

    base = (os.getpid() % 2048) << 24
    tag = os.getpid() % 1000
    records: List[dict] = []
    timelines: List[dict] = []
    cases = selected_cases() if cases is None else cases
    beds = start_beds(tag, base, {c.bed for c in cases})
    started = time.monotonic()
    try:
        for index in range(migrations):
            for case in round_order(index, cases):
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
                     + ", ".join(c.name for c in round_order(0, cases)),
            "cases": case_figures(records), "timelines": timelines, "records": records}


def merged(names: List[str]) -> dict:
    """The saved parts ``names`` as one run: their records and timelines, figures anew."""
    from benchmarks.common import read_results

    parts = [read_results(n)["figures"] for n in names]
    records = [r for part in parts for r in part["records"]]
    return {**parts[0], "parts": names,
            "duration_s": round(sum(p["duration_s"] for p in parts), 1),
            "migrations_per_case": max(p["migrations_per_case"] for p in parts),
            "order": "; ".join(p["order"] for p in parts),
            "cases": case_figures(records), "records": records,
            "timelines": [t for part in parts for t in part["timelines"]]}


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
    parser.add_argument("--merge", help="comma-separated results names (parts run with"
                        " --modes/--shapes): one table and plot of all their moves, saved"
                        " as --name")
    parser.add_argument("--modes", help="comma-separated, of " + ",".join(BED_NAMES)
                        + " (default all)")
    parser.add_argument("--shapes", help="comma-separated, of qemu,garp,none,control"
                        " (default all)")
    args = parser.parse_args(argv)
    name = args.name or ("migration-quick" if args.quick else "migration")
    try:
        cases = selected_cases(args.modes.split(",") if args.modes else None,
                               args.shapes.split(",") if args.shapes else None)
    except ValueError as bad:
        parser.error(str(bad))
    if not cases:
        parser.error("--modes and --shapes leave no case to run")
    if args.plot_only:
        replot(name, plot)
        return 0
    if args.merge:
        figures = merged(args.merge.split(","))
        print(table(figures["cases"]))
        print(mode_grid(figures["cases"]))
        publish(name, figures, plot)
        return 0
    if os.geteuid() != 0:
        print("needs root (Mininet, OVS)", file=sys.stderr)
        return 2
    print_machine()
    migrations = args.migrations or (2 if args.quick else 20)
    figures = run(migrations, args.quick, cases)
    print(table(figures["cases"]))
    print(mode_grid(figures["cases"]))
    publish(name, figures, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
