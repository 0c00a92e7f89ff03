"""Cross-process migration: hand-off notice latency, claim, clean-up, and the loss
seen by peers in both pods.

The distributed demo's move (:func:`ryu_apps.lab.distributed_demo.migrate_across`)
repeated: web1 live-migrates back and forth between a server of process p1
and a server of process p2 (3-member Raft store, the pods joined by a plain
learning bridge), half the moves with a notice sent to the source process.
Two peers that stay put, web3 in p1's pod and web7 in p2's, probe web1 every
millisecond. Per move: the notice latency (source REST call to the
destination process receiving the hand-off through the store), the claim and
clean-up times relative to the VM's switchover, and per peer the probes lost
and the outage (longest run of lost probes). Two set-ups: the processes watch
the servers' OVSDB, or detect VMs from packets only.

    python -m benchmarks.store_migration [--quick] [--moves N]
    python -m benchmarks.store_migration --plot-only
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import List

from benchmarks.common import (PLOTS_DIR, format_table, print_machine, publish, pyplot,
                               replot, save_figure, summary)

NAME = "store_migration"
TARGET_NOTICE_MS = 10.0
#: Destination servers, alternating pods.
LEGS = ("s21", "s11")


def run(moves: int) -> dict:
    """Both set-ups: processes watching the servers' OVSDB, and packet detection only."""
    return {"with_ovsdb": run_setup(moves, ovsdb=True),
            "packets_only": run_setup(moves, ovsdb=False)}


def run_setup(moves: int, ovsdb: bool) -> dict:
    from ryu_apps.lab.distributed_demo import migrate_across, print_move
    from ryu_apps.lab.distributed import DistributedLab

    setup = DistributedLab(prefix="m%03d" % (os.getpid() % 1000),
                           dpid_base=((os.getpid() + 17) % 4096) << 24, ovsdb=ovsdb)
    records: List[dict] = []
    try:
        setup.start()
        setup.announce_all()
        for number in range(moves):
            figures = migrate_across(setup, LEGS[number % 2], notify=(number // 2) % 2 == 0)
            print_move(figures)
            records.append(figures)
    finally:
        setup.stop()

    def values(key: str, notice=None) -> List[float]:
        return [r[key] for r in records if r[key] is not None
                and (notice is None or r["notice"] == notice)]

    def peers(key: str, notice=None, pod=None) -> List[float]:
        return [seen[key] for r in records for seen in r["peers"].values()
                if (notice is None or r["notice"] == notice)
                and (pod is None or (seen["pod"] == r["source"].split()[0]) == (pod == "source"))]

    return {
        "moves": moves, "ovsdb": ovsdb,
        "notice_ms": summary(values("notice_ms")),
        "outage_ms_with_notice": summary(peers("outage_ms", True)),
        "outage_ms_without_notice": summary(peers("outage_ms", False)),
        "probes_lost_with_notice": summary(peers("lost", True)),
        "probes_lost_without_notice": summary(peers("lost", False)),
        "outage_ms_source_pod_peer": summary(peers("outage_ms", pod="source")),
        "outage_ms_destination_pod_peer": summary(peers("outage_ms", pod="destination")),
        "claimed_after_switchover_ms": summary(values("claimed_after_switchover_ms")),
        "source_cleaned_after_switchover_ms": summary(
            values("source_cleaned_after_switchover_ms")),
        "vm_downtime_ms": summary(values("vm_downtime_ms")),
        "not_recovered": sum(1 for r in records for seen in r["peers"].values()
                             if not seen["recovered"]),
        "records": records,
        "target_notice_ms": TARGET_NOTICE_MS,
    }


def report(figures: dict) -> None:
    for key, title in (("with_ovsdb", "processes watch the servers' OVSDB (the VM's new "
                                      "port is seen before it moves)"),
                       ("packets_only", "packet detection only (the notice matters)")):
        print(f"\n--- {title}")
        report_setup(figures[key])


def report_setup(figures: dict) -> None:
    keys = ("notice_ms", "outage_ms_with_notice", "outage_ms_without_notice",
            "probes_lost_with_notice", "probes_lost_without_notice",
            "outage_ms_source_pod_peer", "outage_ms_destination_pod_peer",
            "claimed_after_switchover_ms", "source_cleaned_after_switchover_ms",
            "vm_downtime_ms")
    rows = [(key, figures[key]["n"], figures[key].get("p50", 0.0), figures[key].get("p90", 0.0),
             figures[key].get("max", 0.0)) for key in keys]
    print(f"{figures['moves']} moves of web1 between processes p1 and p2, probed from web3 "
          f"(p1's pod) and web7 (p2's pod); {figures['not_recovered']} peer runs did not "
          "recover")
    print(format_table(("figure", "n", "p50", "p90", "max"), rows))
    notice = figures["notice_ms"]
    if notice["n"]:
        print(f"target notice <= {TARGET_NOTICE_MS:.0f} ms: p50 "
              f"{'met' if notice['p50'] <= TARGET_NOTICE_MS else 'MISSED'} "
              f"({notice['p50']:.1f} ms), max "
              f"{'met' if notice['max'] <= TARGET_NOTICE_MS else 'MISSED'} "
              f"({notice['max']:.1f} ms)")


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for setup, marker in (("with_ovsdb", "o"), ("packets_only", "x")):
        records = record["figures"][setup]["records"]
        for notice, colour in ((True, "tab:blue"), (False, "tab:orange")):
            points = [(i + 1, seen["outage_ms"]) for i, r in enumerate(records)
                      if r["notice"] == notice for seen in r["peers"].values()]
            if points:
                ax.scatter(*zip(*points), color=colour, marker=marker,
                           label=f"{setup.replace('_', ' ')}, "
                                 f"{'with' if notice else 'without'} notice")
    ax.set_xlabel("move (one point per peer: web3 in p1's pod, web7 in p2's)")
    ax.set_ylabel("outage seen by the peer (ms)")
    ax.set_title("Cross-process migration: outage at peers in both pods (1 ms probes)")
    ax.legend()
    path = save_figure(fig, outdir / "store_migration.png", dpi=100)
    return [path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two moves per set-up")
    parser.add_argument("--moves", type=int, default=12, help="moves per set-up")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    name = NAME + ("-quick" if args.quick else "")
    if args.plot_only:
        replot(NAME, plot)
        return
    print_machine()
    figures = run(2 if args.quick else args.moves)
    report(figures)
    publish(name, figures, None if args.quick else plot)


if __name__ == "__main__":
    main()
