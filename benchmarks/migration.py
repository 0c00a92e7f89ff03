"""Migration convergence: dynprov and FAUCET, same topology, same prober, same run.

Run: ``python -m benchmarks.migration [--quick] [--migrations N] [--plot-only]``
(root; OVS running; FAUCET installs itself into ``.venv-faucet`` on first use).

Two copies of the demo topology (``topologies/dynprov_topo.py`` datacenter,
edge included) run side by side, one on dynprov (watching the servers' OVSDB),
one on FAUCET (one learning VLAN). VM web1 live-migrates between server s11
(access a1) and server s21 (access a2), alternating direction, with
``ryu_apps.lab.migration.live_migrate`` in three shapes: ``qemu``
(hypervisor-style: destination port created, VM moved, RARPs at
0/50/200/450/800 ms), ``garp`` (one gratuitous ARP), ``none``. dynprov runs
each shape with and without a prior ``migrating`` notification. Cases are
interleaved migration by migration (a dynprov case, then a FAUCET case, ...),
so both controllers see the same machine load; the order is reversed every
other round so that every case moves the VM both ways. A control case per
controller probes for the same time without any move: the background loss
of the (shared, loaded) machine.

During each migration web5 (a VM on s21) and the outside host out1 (behind
the edge) probe web1 every 1 ms with ``ryu_apps.lab.vmtools.prober``; probing
stops ``RECOVERY_LIMIT_S`` after the switchover. The destination port exists
``PRECOPY_S`` before the switchover (the notification, if any, is sent as the
port is created), standing for the pre-copy phase of a live migration. Per case: the outage (first
lost probe to first answered one, by send time), probes lost, how many runs
recovered within the limit, and the network's share: from the VM's new
interface coming up (stamped inside the VM) to the first answered probe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks.common import (PLOTS_DIR, format_table, print_machine, publish, pyplot,
                               replot, save_figure, summary)

SHAPES = ("qemu", "garp", "none")
SHAPE_LABELS = {"qemu": "hypervisor-style", "garp": "silent + 1 GARP",
                "none": "no announcement", "control": "no migration (background loss)"}
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


def case_name(controller: str, shape: str, notify: Optional[bool]) -> str:
    """``dynprov/qemu/notified``, ``dynprov/garp/silent``, ``faucet/none`` ..."""
    if notify is None:
        return f"{controller}/{shape}"
    return f"{controller}/{shape}/{'notified' if notify else 'unnotified'}"


def all_cases() -> List[tuple]:
    """(controller, shape, notify) in the order they are interleaved."""
    cases = []
    for shape in SHAPES:
        cases += [("dynprov", shape, True), ("faucet", shape, None),
                  ("dynprov", shape, False)]
    return cases + [("dynprov", "control", None), ("faucet", "control", None)]


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
        self.net = None
        self.vms: Dict[str, object] = {}
        self.switches: Dict[str, object] = {}

    def _index(self, prefix: str) -> None:
        self.vms = {h.name[len(prefix):]: h for h in self.net.hosts}
        self.switches = {s.name[len(prefix):]: s for s in self.net.switches}

    def notify(self, vm, destination) -> None:
        raise NotImplementedError

    def reachable(self, timeout_s: float = 3.0) -> bool:
        """Both probers reach web1 (after making web1 announce itself if needed)."""
        from ryu_apps.lab import testbed as lab

        target = self.vms[MIGRATING_VM]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all("1 received" in self.vms[p].cmd(f"ping -c1 -W0.3 {target.IP()}")
                   for p in PROBERS):
                return True
            lab.announce(target)
        return False

    def stop(self) -> None:
        raise NotImplementedError


class DynprovTestbed(Testbed):
    controller_name = "dynprov"

    def __init__(self, prefix: str, dpid_base: int, templates: Optional[Path] = None) -> None:
        from ryu_apps.lab import testbed as lab

        super().__init__()
        self.prefix = prefix
        self.controller = lab.ControllerProcess(
            templates=templates or lab.DEFAULT_TEMPLATES,
            extra_options=f"ovsdb = {LOCAL_OVSDB}\n").start()
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

    def stop(self) -> None:
        from ryu_apps.lab import testbed as lab

        if self.net is not None:
            lab.stop_network(self.net)
        self.faucet.stop()


# -- one migration --------------------------------------------------------------------
def migrate_once(bed: Testbed, shape: str, notify: Optional[bool],
                 watch: bool = False) -> dict:
    """One probed migration of web1 to the other side; its record."""
    from ryu_apps.lab.outage import analyse
    from ryu_apps.lab.migration import live_migrate
    from ryu_apps.lab.vmtools import flow_monitor

    vm = bed.vms[MIGRATING_VM]
    here = vm.defaultIntf().link.intf2.node
    source = "s11" if here is bed.switches["s11"] else "s21"
    destination = bed.switches["s21" if source == "s11" else "s11"]
    if not bed.reachable():
        raise RuntimeError(f"{bed.controller_name}: {vm.name} unreachable before migrating")
    monitors = flow_monitor.watch([bed.switches[n].name for n in WATCHED]) if watch else []
    streams = start_probes(bed.vms, vm)
    time.sleep(0.15)
    notified_ns = []

    def before_switchover() -> None:
        """The destination port exists: notify, then the pre-copy phase."""
        if notify:
            bed.notify(vm, destination)
            notified_ns.append(time.monotonic_ns())
        time.sleep(PRECOPY_S)

    try:
        if shape == "control":
            times = _stand_still(vm, here.name)
        else:
            times = live_migrate(bed.net, vm, destination, announce=shape,
                                 before_switchover=before_switchover,
                                 wait_announcements=True)
        time.sleep(max(0.0, (times.switchover_ns + RECOVERY_LIMIT_S * 1e9
                             - time.monotonic_ns()) / 1e9))
    finally:
        results = [s.stop() for s in streams]
        events = flow_monitor.stop_all(monitors)
    record = {"controller": bed.controller_name, "shape": shape, "notify": notify,
              "source": source, "destination": destination.name[-3:],
              "guest_downtime_ms": times.downtime_ns / 1e6, "probers": {}}
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


# -- figures ----------------------------------------------------------------------------
def case_figures(records: List[dict]) -> Dict[str, dict]:
    """Per case: outage, lost, recovery and network share over every prober run."""
    cases: Dict[str, dict] = {}
    for controller, shape, notify in all_cases():
        name = case_name(controller, shape, notify)
        runs = [p for r in records if (r["controller"], r["shape"], r["notify"])
                == (controller, shape, notify) for p in r["probers"].values()]
        if not runs:
            continue
        recovered = [p for p in runs if p["recovered"]]
        guest = [r["guest_downtime_ms"] for r in records
                 if (r["controller"], r["shape"], r["notify"]) == (controller, shape, notify)]
        cases[name] = {
            "controller": controller, "shape": shape, "notify": notify,
            "runs": len(runs), "recovered": len(recovered),
            "outage_ms": summary([p["outage_ms"] for p in recovered]),
            "outage_ms_all": [p["outage_ms"] for p in runs],
            "lost": summary([p["lost"] for p in recovered]),
            "network_share_ms": summary([p["network_share_ms"] for p in recovered
                                         if p["network_share_ms"] is not None]),
            "guest_downtime_ms": summary(guest),
            "median_rtt_ms": summary([p["median_rtt_ms"] for p in runs]),
        }
    return cases


def table(cases: Dict[str, dict]) -> str:
    rows = []
    for name, case in cases.items():
        outage, lost, share = case["outage_ms"], case["lost"], case["network_share_ms"]
        rows.append([name, f"{case['recovered']}/{case['runs']}",
                     outage.get("p50", "-"), outage.get("p90", "-"), outage.get("max", "-"),
                     lost.get("p50", "-"), lost.get("max", "-"), share.get("p50", "-"),
                     share.get("max", "-"), case["guest_downtime_ms"].get("p50", "-"),
                     case["median_rtt_ms"].get("p50", "-")])
    return format_table(["case", "recovered", "outage p50", "p90", "max", "lost p50",
                         "lost max", "net share p50", "net max", "VM swap p50",
                         "RTT p50"], rows)


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    """Box/strip plot of outage per case; timelines of the watched migrations."""
    plt = pyplot()

    suffix = "-quick" if record["figures"].get("quick") else ""
    cases = record["figures"]["cases"]
    paths = []
    order = [case_name(*c) for c in all_cases()]
    names = sorted(cases, key=lambda n: order.index(n) if n in order else len(order))
    fig, ax = plt.subplots(figsize=(11, 5))
    data = [cases[n]["outage_ms_all"] for n in names]
    ax.boxplot(data, showfliers=False)
    for i, values in enumerate(data, start=1):
        ax.scatter([i + (j % 7 - 3) * 0.04 for j in range(len(values))], values, s=8,
                   color="tab:blue" if cases[names[i - 1]]["controller"] == "dynprov"
                   else "tab:orange", alpha=0.6, zorder=3)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels([n.replace("/", "\n") for n in names], fontsize=8)
    ax.set_ylabel("outage seen by a 1 ms prober (ms)")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=-0.5)
    limit = RECOVERY_LIMIT_S * 1e3
    ax.axhline(limit, color="grey", linestyle=":", linewidth=1)
    ax.text(0.6, limit * 0.7, f"not recovered within {limit:.0f} ms", fontsize=7,
            color="grey")
    ax.set_title("Migration outage per case (blue: dynprov, orange: FAUCET)")
    path = save_figure(fig, outdir / f"migration_outage{suffix}.png")
    paths.append(path)
    timelines = record["figures"].get("timelines", [])
    if timelines:
        fig, axes = plt.subplots(len(timelines), 1, figsize=(11, 2.8 * len(timelines)),
                                 squeeze=False)
        for ax, entry in zip(axes[:, 0], timelines):
            line = entry["timeline"]
            bridges = sorted({e[0] for e in line["flow_events"]})
            rows = list(line["probes"]) + bridges
            for row, name in enumerate(line["probes"]):
                answered = [t for t, ok in line["probes"][name] if ok]
                lost = [t for t, ok in line["probes"][name] if not ok]
                ax.scatter(answered, [row] * len(answered), s=4, color="tab:green",
                           marker="|")
                ax.scatter(lost, [row] * len(lost), s=10, color="tab:red", marker="|")
            offset = len(line["probes"])
            for row, bridge in enumerate(bridges, start=offset):
                for kind, color in (("ADDED", "tab:blue"), ("MODIFIED", "tab:purple"),
                                    ("DELETED", "black")):
                    at = [t for b, t, k in line["flow_events"] if b == bridge and k == kind]
                    ax.scatter(at, [row] * len(at), s=12, color=color, marker="x" if
                               kind == "DELETED" else "o", label=kind if row == offset
                               else None)
            ax.axvline(line["guest_down_ms"], color="grey", linestyle="--", linewidth=1)
            ax.axvline(line["guest_up_ms"], color="grey", linestyle="-", linewidth=1)
            for t in line["notified_ms"]:
                ax.axvline(t, color="tab:olive", linestyle=":", linewidth=1)
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels([f"probe {r}" if r in line["probes"] else r for r in rows],
                               fontsize=7)
            ax.set_xlim(-250, 300)
            for t in line.get("announcements_ms", []):
                ax.axvline(t, color="tab:cyan", linestyle=":", linewidth=0.8)
            ax.axvline(line["port_created_ms"], color="tab:brown", linestyle="-.",
                       linewidth=1)
            ax.set_title(f"{entry['case']}: probes (green answered, red lost), flow changes; "
                         "brown: destination port created, olive: notified, grey dashed/solid:"
                         " VM interface down/up, cyan: announcements", fontsize=8)
        axes[-1, 0].set_xlabel("ms since the switchover")
        if axes[0, 0].get_legend_handles_labels()[0]:
            axes[0, 0].legend(fontsize=7, loc="upper right")
        path = save_figure(fig, outdir / f"migration_timeline{suffix}.png")
        paths.append(path)
    return paths


# -- the run ------------------------------------------------------------------------
def run(migrations: int, quick: bool) -> dict:
    from ryu_apps.lab.testbed import ovs_bridges

    base = (os.getpid() % 2048) << 24
    tag = os.getpid() % 1000
    beds: Dict[str, Testbed] = {}
    records: List[dict] = []
    watched = set()
    timelines = []
    try:
        beds["dynprov"] = DynprovTestbed(f"md{tag:03d}", base)
        beds["faucet"] = FaucetTestbed(f"mf{tag:03d}", base + (1 << 23))
        started = time.monotonic()
        for index in range(migrations):
            # Reversed every other round: each dynprov case then moves the VM
            # s11 -> s21 in one round and s21 -> s11 in the next (FAUCET's
            # three moves per round alternate anyway).
            order = all_cases() if index % 2 == 0 else all_cases()[::-1]
            for controller, shape, notify in order:
                name = case_name(controller, shape, notify)
                watch = shape == "qemu" and name not in watched
                record = migrate_once(beds[controller], shape, notify, watch=watch)
                record["index"] = index
                if watch:
                    watched.add(name)
                    timelines.append({"case": name, "timeline": record.pop("timeline")})
                records.append(record)
                worst = max(p["outage_ms"] for p in record["probers"].values())
                print(f"[{time.monotonic() - started:6.1f}s] {index + 1}/{migrations} "
                      f"{name:28} {record['source']}->{record['destination']}: worst outage "
                      f"{worst:7.1f} ms, VM swap {record['guest_downtime_ms']:.1f} ms",
                      flush=True)
    finally:
        for bed in beds.values():
            bed.stop()
    leftovers = {b for b in ovs_bridges() if b.startswith((f"md{tag:03d}", f"mf{tag:03d}"))}
    if leftovers:
        print("warning: bridges left behind:", leftovers)
    return {"quick": quick, "migrations_per_case": migrations,
            "interval_ms": 1.0, "recovery_limit_ms": RECOVERY_LIMIT_S * 1e3,
            "probers": list(PROBERS),
            "order": "interleaved per migration, reversed every other round: "
                     + ", ".join(case_name(*c) for c in all_cases()),
            "cases": case_figures(records), "timelines": timelines, "records": records}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 migration per case")
    parser.add_argument("--migrations", type=int, help="migrations per case (default 20)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the plots from the saved results")
    args = parser.parse_args(argv)
    name = "migration-quick" if args.quick else "migration"
    if args.plot_only:
        replot(name, plot)
        return 0
    if os.geteuid() != 0:
        print("needs root (Mininet, OVS)", file=sys.stderr)
        return 2
    print_machine()
    migrations = args.migrations or (1 if args.quick else 20)
    figures = run(migrations, args.quick)
    print(table(figures["cases"]))
    publish(name, figures, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
