"""Per-process and per-server load of the store at scale (backs docs/scaling.md).

Fills a store with N binding rows spread over P owner processes (default:
100,000 rows over 1,000 processes = 100 VMs per process, the ratio of
1,000,000 VMs on 10,000 access switches), plus a template library, then
measures:

- the ovsdb-server's resident memory per binding row and the bulk insert rate;
- what one controller process's replica costs with conditional monitoring
  (its own rows only: first-sync time, rows, Python heap) against monitoring
  every row (what a process would hold without conditions);
- how long one binding write takes to reach the one process that owns it
  while the store holds all N rows (``since`` of the write to the owner's
  change event).

Standalone server (a cluster member holds the same data, plus its Raft log).

    python -m benchmarks.store_scale [--quick] [--rows N] [--processes P]
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import List  # noqa: E402

from benchmarks.common import (  # noqa: E402
    format_table, print_machine, summary, write_results)

NAME = "store_scale"
BATCH = 400  # one transaction per ovsdb-client call (an argument is at most 128 KiB)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _insert_rows(remote: str, rows: int, processes: int) -> float:
    """Insert ``rows`` bindings in bulk transactions; seconds taken."""
    started = time.monotonic()
    for first in range(0, rows, BATCH):
        ops: list = ["Dynprov"]
        for number in range(first, min(rows, first + BATCH)):
            ops.append({"op": "insert", "table": "Binding", "row": {
                "mac": "02:%02x:%02x:%02x:%02x:%02x" % tuple(
                    (number >> shift) & 255 for shift in (32, 24, 16, 8, 0)),
                "template_id": 250, "domain": "", "server": f"s{number % 40000}",
                "port": number % 48 + 1, "state": "active",
                "owner": f"p{number % processes}", "since": time.time(), "version": 1}})
        subprocess.run(["ovsdb-client", "transact", remote, json.dumps(ops)],
                       check=True, capture_output=True)
    return time.monotonic() - started


def _replica(remote: str, condition) -> dict:
    """Connect one client with ``condition`` on Binding; sync time, rows, heap."""
    from ryu_apps.store.client import StoreClient

    import gc
    import os

    gc.collect()
    before = _rss_kb(os.getpid())
    stalls = [0.0]
    ticking = [True]

    def ticker() -> None:  # how long the hub went without running other green threads
        last = time.monotonic()
        while ticking[0]:
            eventlet.sleep(0.001)
            now = time.monotonic()
            stalls[0] = max(stalls[0], now - last)
            last = now

    tick = eventlet.spawn(ticker)
    started = time.monotonic()
    client = StoreClient(remote, lambda changes: None,
                         conditions={"Binding": condition} if condition else None).start()
    client.synced.wait()
    synced = time.monotonic() - started
    ticking[0] = False
    tick.wait()
    gc.collect()
    grown = _rss_kb(os.getpid()) - before
    rows = len(client.idl.tables["Binding"].rows)
    client.stop()
    return {"sync_s": synced, "rows": rows, "rss_growth_mb": grown / 1024,
            "longest_hub_stall_ms": stalls[0] * 1000}


def _owner_latency(remote: str, owner: str, writes: int) -> List[float]:
    """Milliseconds from a binding write (by another client) to the owner seeing it."""
    from ryu_apps.store.client import StoreClient
    from ryu_apps.store.writes import BindingRecord, claim_binding

    seen: dict = {}

    def changes(batch) -> None:
        now = time.time()
        for change in batch:
            seen.setdefault(change.values.get("mac"), now)

    watcher = StoreClient(remote, changes,
                          conditions={"Binding": [["owner", "==", owner]]}).start()
    writer = StoreClient(remote, lambda batch: None,
                         conditions={"Binding": [["owner", "==", owner]]}).start()
    watcher.synced.wait()
    writer.synced.wait()
    latencies = []
    for number in range(writes):
        mac = "0a:00:00:00:%02x:%02x" % (number >> 8, number & 255)
        sent = time.time()
        result = writer.submit(claim_binding(
            BindingRecord(mac, 250, "", "s1", number + 1, None, "active"), owner)).wait(10)
        assert result is not None and result.ok, result
        with eventlet.Timeout(5):
            while mac not in seen:
                eventlet.sleep(0.001)
        latencies.append((seen[mac] - sent) * 1000)
    watcher.stop()
    writer.stop()
    return latencies


def run(rows: int, processes: int) -> dict:
    from ryu_apps.store.server import STANDALONE, Store

    workdir = Path(tempfile.mkdtemp(prefix="dynprov-bench-scale-"))
    store = Store.create(workdir / "store", STANDALONE).start()
    try:
        pid = store.members[0].pid()
        empty_kb = _rss_kb(pid)
        insert_s = _insert_rows(store.remote, rows, processes)
        full_kb = _rss_kb(pid)
        everything = _replica(store.remote, None)
        own = _replica(store.remote, [["owner", "==", "p7"]])
        latency = _owner_latency(store.remote, "p7", 50)
    finally:
        store.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "rows": rows, "processes": processes, "vms_per_process": rows // processes,
        "server_rss_mb_empty": empty_kb / 1024, "server_rss_mb_full": full_kb / 1024,
        "server_bytes_per_row": (full_kb - empty_kb) * 1024 / rows,
        "insert_rows_per_s": rows / insert_s,
        "own_rows_replica": own, "all_rows_replica": everything,
        "owner_sees_write_ms": summary(latency),
    }


def report(f: dict) -> None:
    print(f"{f['rows']} bindings over {f['processes']} processes "
          f"({f['vms_per_process']} VMs each), standalone ovsdb-server")
    print(f"server: {f['server_rss_mb_empty']:.1f} MB empty, {f['server_rss_mb_full']:.1f} MB "
          f"full = {f['server_bytes_per_row']:.0f} bytes per binding; bulk insert "
          f"{f['insert_rows_per_s']:.0f} rows/s")
    rows = [(label, r["rows"], r["sync_s"], r["rss_growth_mb"], r["longest_hub_stall_ms"])
            for label, r in (("own rows (conditional)", f["own_rows_replica"]),
                             ("every row", f["all_rows_replica"]))]
    print(format_table(("one process's replica", "rows", "first sync (s)",
                        "RSS growth (MB)", "longest hub stall (ms)"), rows))
    s = f["owner_sees_write_ms"]
    print(f"a binding write reaches its owner process: p50 {s['p50']:.1f} ms, "
          f"p99 {s['p99']:.1f} ms (n={s['n']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=1_000)
    args = parser.parse_args()
    print_machine()
    rows = 20_000 if args.quick else args.rows
    processes = 200 if args.quick else args.processes
    figures = run(rows, processes)
    report(figures)
    print("results:", write_results(NAME + ("-quick" if args.quick else ""), figures))


if __name__ == "__main__":
    main()
