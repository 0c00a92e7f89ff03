"""A new VM's engine and encoding time when VMs come back to back and when they come apart.

Run: ``python -m benchmarks.cold_cost [--vms 60] [--gaps-ms 0,0.5,2,20] [--quick]``

The latency benchmark sends one new VM every 20 ms; the throughput benchmark keeps
64 outstanding. This one runs the same pure engine (``packet_in`` of a VM with its
IPv4, on the emulated 1 access x 2 servers fabric) and the edge's encoding of its
plan (``prerendered.messages``) in one process, with a pause between VMs: asleep
(``time.sleep``, as an idle controller waits in its hub) and spinning (the
process keeps its CPU), and prints the median and p90 of each per gap. What grows
with the gap is what a lone VM pays that a VM in a burst does not: the code and
data the interpreter needs are no longer in the CPU's caches (spinning shows
whether keeping the CPU is enough to keep them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Dict, List

from benchmarks import common
from benchmarks.ofload import frames
from benchmarks.ofload.reference import engine_for
from benchmarks.ofload.topology import FIRST_VM_PORT, datacenter
from ryu_apps.app import prerendered
from ryu_apps.core.identifiers import format_mac

NAME = "cold_cost"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_IDS = (0x00FA, 0x00FC, 0x00FE)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measure(vms: int, gaps_ms: List[float]) -> Dict[str, dict]:
    """Per pause (``sleep <ms>``, ``spin <ms>``): engine and encoding µs per VM."""
    topology = datacenter(1, 2, dpid_base=0)
    engine = engine_for(topology, TEMPLATES)
    count = 0

    def one() -> tuple:
        nonlocal count
        server = topology.servers[count % len(topology.servers)]
        template = TEMPLATE_IDS[count % 3]
        mac = format_mac(frames.vm_mac(template, count + 1))
        ip = f"10.{template & 0xFF}.{(count >> 8) & 0xFF}.{(count & 0xFF) or 1}"
        started = time.perf_counter_ns()
        verdict = engine.packet_in(server.dpid, FIRST_VM_PORT + count, mac, b"", now=0.0,
                                   sender_ip=ip)
        computed = time.perf_counter_ns()
        for changes in verdict.plan.changes.values():
            prerendered.messages(changes)
        count += 1
        return (computed - started) / 1e3, (time.perf_counter_ns() - computed) / 1e3

    for _ in range(vms):   # warm-up: shapes learnt, indexes grown
        one()
    pauses: List[tuple] = [("back to back", 0.0, time.sleep)]
    for gap in gaps_ms:
        if gap > 0:
            pauses += [(f"sleep {gap:g} ms", gap / 1e3, time.sleep),
                       (f"spin {gap:g} ms", gap / 1e3, _spin)]
    figures: Dict[str, dict] = {}
    for label, seconds, pause in pauses:
        samples = []
        for _ in range(vms):
            samples.append(one())
            if seconds:
                pause(seconds)
        figures[label] = {"engine_us": common.summary([s[0] for s in samples]),
                          "encoding_us": common.summary([s[1] for s in samples])}
    return figures


def report(figures: Dict[str, dict]) -> None:
    print(common.format_table(
        ["pause between VMs", "engine p50 µs", "p90", "encoding p50 µs", "p90"],
        [[label, float(f["engine_us"]["p50"]), float(f["engine_us"]["p90"]),
          float(f["encoding_us"]["p50"]), float(f["encoding_us"]["p90"])]
         for label, f in figures.items()]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=60, help="VMs per pause")
    parser.add_argument("--gaps-ms", default="0.5,2,20", help="pauses, comma-separated")
    parser.add_argument("--quick", action="store_true", help="10 VMs, pauses 0.5 and 2 ms")
    args = parser.parse_args(argv)
    vms, gaps = args.vms, [float(g) for g in args.gaps_ms.split(",") if g]
    if args.quick:
        vms, gaps = 10, [0.5, 2.0]
    common.print_machine()
    figures = measure(vms, gaps)
    report(figures)
    common.publish(NAME + ("-quick" if args.quick else ""), figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
