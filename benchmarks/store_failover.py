"""Store failover: how long writes stop when the Raft leader is killed, and what is lost.

A 3-member cluster on loopback; one store client (the controller's
:class:`~ryu_apps.store.client.StoreClient`, in a monkey-patched eventlet
process like ``ryu-manager``) claims a new binding every few milliseconds,
each write waited for. Each round kills the current leader with SIGKILL,
measures the time from the kill to the first write committed after it
("writes resumed") and the longest gap between two commits, then restarts
the member. At the end every acknowledged binding must be in the store
exactly once (version 1: no retried write took effect twice).

    python -m benchmarks.store_failover [--quick] [--rounds N]
    python -m benchmarks.store_failover --plot-only
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import List  # noqa: E402

from benchmarks.common import (  # noqa: E402
    PLOTS_DIR, format_table, print_machine, publish, pyplot, replot, save_figure, summary)

NAME = "store_failover"
TARGET_RESUME_S = 2.0
WRITE_GAP_S = 0.005


def run(rounds: int, election_timer_ms: int) -> dict:
    from ryu_apps.store.admin import AdminSession
    from ryu_apps.store.client import StoreClient
    from ryu_apps.store.server import CLUSTER, CLUSTER_ELECTION_TIMER_MS, Store
    from ryu_apps.store.writes import BindingRecord, claim_binding

    workdir = Path(tempfile.mkdtemp(prefix="dynprov-bench-failover-"))
    store = Store.create(workdir / "store", CLUSTER).start()
    if election_timer_ms:
        store.set_election_timer(election_timer_ms)
    client = StoreClient(store.remote, lambda changes: None,
                         conditions={"Binding": [["owner", "==", "bench"]]},
                         logger=logging.getLogger("bench")).start()
    commits: List[float] = []
    acked: List[str] = []
    failed: List[str] = []
    running = [True]

    def writer() -> None:
        number = 0
        while running[0]:
            number += 1
            mac = "00:fa:%02x:%02x:%02x:%02x" % ((number >> 24) & 255, (number >> 16) & 255,
                                                 (number >> 8) & 255, number & 255)
            result = client.submit(claim_binding(
                BindingRecord(mac, 250, "", "s11", number % 60000 + 1, None, "active"),
                "bench")).wait(30)
            if result is not None and result.ok:
                acked.append(mac)
                commits.append(result.committed_at)
            else:
                failed.append(mac)
            eventlet.sleep(WRITE_GAP_S)

    resumed: List[float] = []
    gaps: List[float] = []
    connected_to_killed: List[bool] = []
    try:
        client.synced.wait()
        thread = eventlet.spawn(writer)
        for _ in range(rounds):
            eventlet.sleep(1.0)
            leader = store.leader() or store.wait_for_leader()
            connected_to_killed.append(
                client.idl._session.get_name() == store.member(leader).remote)
            killed_at = time.time()
            store.kill_member(leader, signal.SIGKILL)
            eventlet.sleep(3.0)
            after = [t for t in commits if t > killed_at]
            resumed.append(after[0] - killed_at if after else float("inf"))
            window = [t for t in commits if killed_at - 1.0 <= t <= killed_at + 3.0]
            gaps.append(max((b - a for a, b in zip(window, window[1:])), default=float("inf")))
            store.start_member(leader)
            store.wait_for_leader()
        running[0] = False
        thread.wait()
        with AdminSession(store.remote) as session:
            rows = {row["mac"]: row for row in session.rows("Binding")}
    finally:
        running[0] = False
        client.stop()
        store.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    lost = [mac for mac in acked if mac not in rows]
    doubled = [mac for mac in acked if mac in rows and rows[mac]["version"] != 1]
    return {"rounds": rounds, "election_timer_ms": election_timer_ms or CLUSTER_ELECTION_TIMER_MS,
            "writes_acknowledged": len(acked), "writes_failed": len(failed),
            "acknowledged_lost": len(lost), "applied_twice": len(doubled),
            "resumed_s": summary(resumed), "max_gap_s": summary(gaps),
            "samples_resumed_s": resumed, "killed_member_was_clients": connected_to_killed,
            "target_resume_s": TARGET_RESUME_S}


def report(figures: dict) -> None:
    rows = [(label, s["n"], s["p50"], s["p90"], s["p99"], s["max"])
            for label, s in (("writes resumed after kill", figures["resumed_s"]),
                             ("longest commit gap", figures["max_gap_s"]))]
    print(f"{figures['rounds']} leader kills (SIGKILL), 3-member Raft cluster, election "
          f"timer {figures['election_timer_ms']} ms")
    print(format_table(("seconds", "n", "p50", "p90", "p99", "max"), rows))
    print(f"writes acknowledged {figures['writes_acknowledged']}, failed "
          f"{figures['writes_failed']}, acknowledged but lost {figures['acknowledged_lost']}, "
          f"applied twice {figures['applied_twice']}")
    worst = figures["resumed_s"]["max"]
    print(f"target writes resumed <= {TARGET_RESUME_S:.0f} s after a leader loss: "
          f"{'met' if worst <= TARGET_RESUME_S else 'MISSED'} (worst {worst:.2f} s)")


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    plt = pyplot()

    samples = record["figures"]["samples_resumed_s"]
    if not samples:
        return []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(range(1, len(samples) + 1), samples)
    ax.axhline(TARGET_RESUME_S, color="red", linestyle="--", label="target")
    ax.set_xlabel("leader kill")
    ax.set_ylabel("writes resumed after (s)")
    ax.set_title(f"Store failover: Raft leader killed "
                 f"(election timer {record['figures']['election_timer_ms']} ms)")
    ax.legend()
    path = save_figure(fig, outdir / f"{record.get('benchmark', NAME)}.png", dpi=100)
    return [path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two leader kills")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--election-timer-ms", type=int, default=0,
                        help="Raft election timer to set (default: the store's 500 ms; "
                             "ovsdb-server's own default is 1000)")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    name = NAME + ("-quick" if args.quick else "")
    if args.election_timer_ms and not args.quick:
        name += f"-timer{args.election_timer_ms}"
    if args.plot_only:
        replot(name, plot)
        return
    print_machine()
    figures = run(2 if args.quick else args.rounds, args.election_timer_ms)
    report(figures)
    publish(name, figures, None if args.quick else plot)


if __name__ == "__main__":
    main()
