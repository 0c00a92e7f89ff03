"""Provisioning throughput: new VMs per second, dynprov against Ryu's simple_switch_13.

Both controllers run as real ``ryu-manager`` processes, one fresh process per
round, alternating (dynprov, simple_switch_13, dynprov, ...), driven by the
same cbench-style generator (:mod:`benchmarks.ofload`) that emulates a data
center of OpenFlow 1.3 switches over TCP and keeps ``--window`` fresh VMs
outstanding.

- dynprov: a VM counts when every flow-mod and meter-mod of its binding reached
  its server and access switch and a barrier after them was answered; the
  count is cross-checked with ``GET /dynprov/bindings``.
- simple_switch_13: a VM counts when the packet-out for its first frame came
  back. Per packet-in it learns the source MAC's port and, the destination (the
  gateway, learned before the run) being known, sends one flow-mod and one
  packet-out.

Run: ``python -m benchmarks.throughput [--quick] [--plot-only]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from benchmarks import common
from benchmarks.ofload import costs, profiling
from benchmarks.ofload.driver import LoadConfig
from benchmarks.ofload.reference import expected_binding_mods
from benchmarks.ofload.workers import run_workers
from ryu_apps.lab import testbed as lab

NAME = "throughput"
DYNPROV, PEER, BASELINE = "dynprov", "simple_switch_13", "dynprov-baseline"
#: A Ryu app that only answers each packet-in (benchmarks/ofload/floor_app.py).
FLOOR = "ryu-floor"
TEMPLATES = lab.DEFAULT_TEMPLATES


class DynprovController(lab.ControllerProcess):
    """dynprov as an operator runs it (no --verbose), reconciliation grace off."""

    def __init__(self) -> None:
        super().__init__(extra_options="reconcile_grace = 0\n")

    def command(self) -> list[str]:
        return [arg for arg in super().command() if arg != "--verbose"]


class BaselineDynprovController(DynprovController):
    """dynprov from another source tree (e.g. before an optimisation), same options."""

    def __init__(self, tree: Path) -> None:
        super().__init__()
        self.tree = tree

    def start(self, timeout: float = 20.0) -> "BaselineDynprovController":
        env = dict(os.environ, PYTHONPATH=str(self.tree), PYTHONWARNINGS="ignore")
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log,
                                            stderr=subprocess.STDOUT, cwd=str(self.tree),
                                            env=env, start_new_session=True)
        lab.wait_until_listening(self.process, self.of_port, timeout, "baseline controller",
                                 self.log)
        return self


class SimpleSwitchController(lab.ControllerProcess):
    """``ryu-manager ryu.app.simple_switch_13`` on its own ports, as shipped."""

    def command(self) -> list[str]:
        return [lab.ryu_manager_command(), "--ofp-tcp-listen-port", str(self.of_port),
                "--wsapi-port", str(self.wsapi_port), "ryu.app.simple_switch_13"]


class FloorController(SimpleSwitchController):
    """``ryu-manager benchmarks.ofload.floor_app``: Ryu's own cost per packet-in."""

    def command(self) -> list[str]:
        return [*super().command()[:-1], "benchmarks.ofload.floor_app"]


def _get_json(controller: lab.ControllerProcess, path: str):
    status, answer = controller.rest("GET", path, role="reader", timeout=10)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {answer}")
    return answer


def _wait_for_links(controller: DynprovController, links: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    found = []
    while time.monotonic() < deadline:
        found = _get_json(controller, "/dynprov/links")
        if len(found) >= links:
            return
        time.sleep(0.1)
    raise RuntimeError(f"dynprov discovered {len(found)} of {links} emulated links "
                       f"within {timeout}s:\n{controller.log()[-2000:]}")


def run_round(kind: str, config: LoadConfig, workers: int,
              profile: Optional[Path] = None, baseline: Optional[Path] = None) -> dict:
    """One fresh controller of ``kind`` under load; the generator's figures.

    ``profile``: record the controller with py-spy during the load (collapsed stacks).
    ``baseline``: the source tree of the ``dynprov-baseline`` controller.
    """
    if kind == PEER:
        controller = SimpleSwitchController()
    elif kind == FLOOR:
        controller = FloorController()
    elif kind == BASELINE:
        controller = BaselineDynprovController(baseline)
    else:
        controller = DynprovController()
    controller.start()
    spy = None
    is_dynprov = kind in (DYNPROV, BASELINE)
    try:
        mode = "dynprov" if is_dynprov else "answer"

        def ready(links: int) -> None:
            nonlocal spy
            if is_dynprov:
                _wait_for_links(controller, links)
            if profile is not None:
                spy = profiling.start_recording(controller.process.pid, config.duration,
                                                profile)

        result = run_workers(LoadConfig(**{**config.__dict__, "port": controller.of_port,
                                           "mode": mode}), workers, ready)
        if spy is not None:
            spy.wait(timeout=60)
        if is_dynprov:
            result["rest"] = cross_check(controller, result["provisioned_macs"])
        result["controller_cpu_seconds"] = _cpu_seconds(controller.process.pid)
        return result
    finally:
        controller.stop()


def cross_check(controller: DynprovController, provisioned: List[int],
                timeout: float = 20.0) -> dict:
    """Compare the generator's provisioned VMs with the controller's REST bindings.

    The controller marks a binding active when it has handled the barrier replies,
    which may still wait in its queue when the generator stops: poll until every
    provisioned VM is active there, or ``timeout``.
    """
    wanted = set(provisioned)
    deadline = time.monotonic() + timeout
    while True:
        bindings = _get_json(controller, "/dynprov/bindings?counters=false")
        active = {int(b["mac"].replace(":", ""), 16) for b in bindings
                  if b["state"] == "active"}
        if wanted <= active or time.monotonic() > deadline:
            return {"bindings": len(bindings), "active": len(active),
                    "provisioned_not_active": len(wanted - active)}
        time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def _round_row(kind: str, number: int, result: dict) -> dict:
    completed = max(result["completed"], 1)
    cpu = sum(result["generator_cpu_seconds"])
    return {
        "controller": kind, "round": number,
        "vms_per_second": result["vms_per_second"],
        "completed": result["completed"], "lost": result["lost"],
        "flow_mods_per_vm": result["messages"].get("flow_mods", 0) / completed,
        "meter_mods_per_vm": result["messages"].get("meter_mods", 0) / completed,
        "barriers_per_vm": result["messages"].get("barriers", 0) / completed,
        "latency_ms": common.summary(result["latencies_ms"]),
        "generator_cpu_share": cpu / result["seconds"],
        "generator_cpu_us_per_vm": 1e6 * cpu / completed,
        "controller_cpu_seconds": result["controller_cpu_seconds"],
        "binding_mods": result["binding_mods"],
        "rest": result.get("rest"),
        "pool_exhausted": result["pool_exhausted"],
    }


def _sample(values: List[float], count: int = 2000) -> List[float]:
    ordered = sorted(values)
    if len(ordered) <= count:
        return ordered
    return [ordered[int(i * (len(ordered) - 1) / (count - 1))] for i in range(count)]


def measure(args) -> dict:
    """Alternating rounds, then one latency-mode round (window 1) per controller."""
    expected = expected_binding_mods(TEMPLATES, LoadConfig().templates)
    config = LoadConfig(access=args.access, servers=args.servers, window=args.window,
                        duration=args.seconds, expected=expected, pool=args.pool)
    kinds = (DYNPROV, PEER) + ((BASELINE,) if args.baseline else ()) + (
        (FLOOR,) if args.floor else ())
    rounds, latencies = [], {kind: [] for kind in kinds}
    for number in range(1, args.rounds + 1):
        for kind in kinds:
            result = run_round(kind, config, args.workers, baseline=args.baseline)
            row = _round_row(kind, number, result)
            rounds.append(row)
            latencies[kind] += result["latencies_ms"]
            print(f"round {number} {kind:>16}: {row['vms_per_second']:8.1f} VMs/s, "
                  f"{row['flow_mods_per_vm']:.1f} flow-mods/VM, lost {row['lost']}, "
                  f"generator CPU {100 * row['generator_cpu_share']:.0f}%"
                  + (f", REST {row['rest']}" if row["rest"] else ""), flush=True)
    single = {}
    if args.latency_seconds > 0:
        one = LoadConfig(**{**config.__dict__, "window": 1, "duration": args.latency_seconds})
        for kind in (DYNPROV, PEER):
            result = run_round(kind, one, 1)
            single[kind] = {"summary": common.summary(result["latencies_ms"]),
                            "sample_ms": _sample(result["latencies_ms"])}
    medians = {kind: statistics.median(r["vms_per_second"] for r in rounds
                                       if r["controller"] == kind) for kind in kinds}
    return {
        "config": {"access": args.access, "servers": args.servers, "window": args.window,
                   "workers": args.workers, "seconds_per_round": args.seconds,
                   "rounds": args.rounds, "vms_per_round": args.vms or None,
                   "templates": [f"0x{t:04X}" for t in config.templates],
                   "expected_binding_mods": {f"0x{t:04X}": v for t, v in expected.items()},
                   "frame": config.frame},
        "rounds": rounds,
        "median_vms_per_second": medians,
        "ratio_dynprov_to_peer": medians[DYNPROV] / medians[PEER] if medians[PEER] else None,
        "median_flow_mods_per_vm": {kind: statistics.median(
            r["flow_mods_per_vm"] for r in rounds if r["controller"] == kind)
            for kind in kinds},
        "baseline_tree": str(args.baseline) if args.baseline else None,
        "ratio_dynprov_to_baseline": (medians[DYNPROV] / medians[BASELINE]
                                      if args.baseline and medians[BASELINE] else None),
        "latency_window_ms": {kind: {"summary": common.summary(v), "sample_ms": _sample(v)}
                              for kind, v in latencies.items()},
        "latency_window1_ms": single,
    }


def report(figures: dict) -> None:
    """The table of medians and the latency summaries."""
    rows = []
    for kind in figures["median_vms_per_second"]:
        mine = [r for r in figures["rounds"] if r["controller"] == kind]
        lat = figures["latency_window_ms"][kind]["summary"]
        one = figures.get("latency_window1_ms", {}).get(kind, {}).get("summary") or {}
        rows.append([kind, len(mine), figures["median_vms_per_second"][kind],
                     min(r["vms_per_second"] for r in mine),
                     max(r["vms_per_second"] for r in mine),
                     figures["median_flow_mods_per_vm"][kind],
                     lat.get("p50", 0.0), lat.get("p99", 0.0), one.get("p50", 0.0),
                     one.get("p99", 0.0),
                     statistics.median(r["generator_cpu_share"] for r in mine)])
    print(common.format_table(
        ["controller", "rounds", "VMs/s p50", "min", "max", "flow-mods/VM",
         "lat p50 ms", "lat p99 ms", "w=1 p50 ms", "w=1 p99 ms", "gen CPU"], rows))
    if figures.get("ratio_dynprov_to_baseline"):
        print(f"dynprov / dynprov-baseline ({figures['baseline_tree']}) = "
              f"{figures['ratio_dynprov_to_baseline']:.3f}")
    ratio = figures["ratio_dynprov_to_peer"]
    print(f"window {figures['config']['window']} outstanding VMs; dynprov / simple_switch_13 = "
          f"{ratio:.3f}" if ratio is not None else "no simple_switch_13 figure")


def plot(record: dict, outdir: Path = common.PLOTS_DIR) -> List[Path]:
    """Rate per round for both controllers; latency distribution of each."""
    plt = common.pyplot()

    figures = record["figures"]
    stem = record.get("benchmark", NAME)
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, marker in ((DYNPROV, "o"), (PEER, "s"), (BASELINE, "^"), (FLOOR, "v")):
        mine = [r for r in figures["rounds"] if r["controller"] == kind]
        if not mine:
            continue
        ax.plot([r["round"] for r in mine], [r["vms_per_second"] for r in mine],
                marker=marker,
                label=f"{kind} (median {figures['median_vms_per_second'][kind]:.0f})")
    ax.set_xlabel("round (alternating, fresh controller each)")
    ax.set_ylabel("new VMs per second")
    ax.set_yscale("log")
    ax.set_title(f"Provisioning throughput, window {figures['config']['window']}")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    paths.append(common.save_figure(fig, outdir / f"{stem}-rounds.png"))
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style, label in (("latency_window_ms", "-", "window"),
                              ("latency_window1_ms", "--", "window 1")):
        for kind in (DYNPROV, PEER):
            sample = figures.get(key, {}).get(kind, {}).get("sample_ms") or []
            if sample:
                ax.plot(sample, [(i + 1) / len(sample) for i in range(len(sample))], style,
                        label=f"{kind}, {label}")
    ax.set_xscale("log")
    ax.set_xlabel("packet-in -> provisioned (dynprov) / answered (simple_switch_13), ms")
    ax.set_ylabel("fraction of VMs")
    ax.set_title("Latency of individual new VMs")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    paths.append(common.save_figure(fig, outdir / f"{stem}-latency.png"))
    return paths


def profile_dynprov(args) -> int:
    """One dynprov round under py-spy; the hottest frames, saved as throughput-profile."""
    common.print_machine()
    expected = expected_binding_mods(TEMPLATES, LoadConfig().templates)
    config = LoadConfig(access=args.access, servers=args.servers, window=args.window,
                        duration=args.seconds, expected=expected, pool=args.pool)
    collapsed = Path(tempfile.mkdtemp(prefix="dynprov-profile-")) / "dynprov.collapsed"
    result = run_round(DYNPROV, config, args.workers, profile=collapsed)
    summary = profiling.summarize(collapsed)
    summary["vms_per_second"] = result["vms_per_second"]
    summary["flow_mods_per_vm"] = result["messages"].get("flow_mods", 0) / max(
        1, result["completed"])
    summary["collapsed_stacks"] = str(collapsed)
    print(f"{result['vms_per_second']:.1f} VMs/s under py-spy; {summary['samples']} samples")
    print(common.format_table(["self %", "frame"],
                              [[p, f] for f, p in summary["self_percent"][:25]]))
    print(common.format_table(["inclusive %", "frame"],
                              [[p, f] for f, p in summary["inclusive_percent"][:40]]))
    print("results:", common.write_results(NAME + "-profile", summary))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round each")
    parser.add_argument("--plot-only", action="store_true", help="re-plot the saved results")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="load per round")
    parser.add_argument("--window", type=int, default=64, help="outstanding VMs")
    parser.add_argument("--workers", type=int, default=1, help="generator processes")
    parser.add_argument("--access", type=int, default=4)
    parser.add_argument("--servers", type=int, default=4, help="servers per access switch")
    parser.add_argument("--pool", type=int, default=60000, help="VMs pre-encoded per worker")
    parser.add_argument("--vms", type=int, default=0,
                        help="fixed-count rounds: each worker provisions this many VMs "
                             "(rate = VMs / time to complete them; fair when the cost per "
                             "VM grows with the bindings already made); 0: fixed duration")
    parser.add_argument("--profile", action="store_true",
                        help="only profile dynprov under load with py-spy "
                             "(saves throughput-profile.json)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="also run dynprov from this source tree (e.g. an export of "
                             "the commit before an optimisation) in every round")
    parser.add_argument("--floor", action="store_true",
                        help="also run, in every round, a Ryu app that only answers each "
                             "packet-in (Ryu's floor: benchmarks/ofload/floor_app.py)")
    parser.add_argument("--name", default=NAME, help="results name (default throughput)")
    parser.add_argument("--costs", action="store_true",
                        help="only measure unit costs in-process (saves throughput-costs.json)")
    parser.add_argument("--latency-seconds", type=float, default=4.0,
                        help="latency-mode round (window 1) per controller; 0: none")
    args = parser.parse_args(argv)
    name = args.name + ("-quick" if args.quick else "")
    if args.plot_only:
        common.replot(name, plot)
        return 0
    if args.profile:
        return profile_dynprov(args)
    if args.costs:
        common.print_machine()
        figures = costs.measure(TEMPLATES)
        for key, value in figures.items():
            print(f"{key}: {value}")
        print("results:", common.write_results(NAME + "-costs", figures))
        return 0
    if args.quick:
        args.rounds, args.seconds, args.latency_seconds = 1, 2.0, 1.0
        args.pool = min(args.pool, 20000)
    if args.vms:
        args.pool, args.seconds = args.vms, 600.0
    common.print_machine()
    figures = measure(args)
    report(figures)
    path = common.write_results(name, figures)
    record = common.read_results(name)
    print("results:", path)
    for plot_path in plot(record, common.PLOTS_DIR):
        print("plot:", plot_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
