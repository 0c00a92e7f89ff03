"""Template-change propagation: store write to every controller process applying it.

A distributed lab (one ryu-manager per access switch, a 3-member Raft store,
VMs provisioned in every pod) takes N template changes from the management
entity (the store write ``dynprov store load-templates`` does). Each change
flips the web template's HTTPS rule between port 443 and 8443, so every
process re-provisions its web VMs in place. The latency of one change to one
process is the process's ``Process.library_applied`` (written right after
``engine.set_library`` returned and the plan was handed to the switches)
minus the wall-clock time just before the write was sent; "to all" is the
slowest process. Same machine, same clock.

    python -m benchmarks.store_propagation [--quick] [--changes N] [--processes P]
    python -m benchmarks.store_propagation --plot-only
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import List

from benchmarks.common import (PLOTS_DIR, format_table, print_machine, publish, pyplot,
                               replot, save_figure, summary)

NAME = "store_propagation"
TARGET_P99_MS = 100.0


def run(changes: int, processes: int, gap: float) -> dict:
    from ryu_apps.lab import testbed as lab
    from ryu_apps.lab.distributed import DistributedLab
    from ryu_apps.store.admin import AdminSession
    from ryu_apps.store.library_rows import rows_from_files
    from ryu_apps.store.writes import put_library

    workdir = Path(tempfile.mkdtemp(prefix="dynprov-bench-prop-"))
    library = workdir / "templates"
    shutil.copytree(lab.DEFAULT_TEMPLATES, library)
    web = library / "web.yaml"
    original = web.read_text()
    variants = [rows_from_files(library)]
    web.write_text(original.replace("dst_port: 443}", "dst_port: 8443}"))
    variants.append(rows_from_files(library))
    web.write_text(original)
    setup = DistributedLab(access=processes, servers=1, vms=2, templates=library,
                           prefix="b%03d" % (os.getpid() % 1000),
                           dpid_base=((os.getpid() + 11) % 4096) << 24)
    to_all: List[float] = []
    per_process: List[float] = []
    try:
        setup.start()
        setup.announce_all()
        with AdminSession(setup.store.remote) as session:
            for number in range(changes):
                rows = variants[(number + 1) % 2]
                sent = time.time()
                generation = session.apply(put_library(rows))
                applied = _wait_applied(session, generation, processes)
                latencies = [(t - sent) * 1000 for t in applied]
                per_process += latencies
                to_all.append(max(latencies))
                time.sleep(gap)
    finally:
        setup.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"changes": changes, "processes": processes,
            "vms_per_process": 2, "to_all_ms": summary(to_all),
            "per_process_ms": summary(per_process), "samples_to_all_ms": to_all,
            "target_p99_ms": TARGET_P99_MS}


def _wait_applied(session, generation: int, processes: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = session.rows("Process")
        done = [r["library_applied"] for r in rows if r["library_generation"] >= generation]
        if len(done) >= processes:
            return done
        time.sleep(0.002)
    raise RuntimeError(f"generation {generation} not applied by {processes} processes "
                       f"within {timeout} s")


def report(figures: dict) -> None:
    rows = []
    for label, key in (("to all processes", "to_all_ms"), ("to one process", "per_process_ms")):
        s = figures[key]
        rows.append((label, s["n"], s["p50"], s["p90"], s["p99"], s["max"]))
    print(f"{figures['changes']} template changes, {figures['processes']} controller "
          f"processes, 3-member Raft store")
    print(format_table(("latency (ms)", "n", "p50", "p90", "p99", "max"), rows))
    p99 = figures["to_all_ms"]["p99"]
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if p99 <= TARGET_P99_MS else 'MISSED'}"
          f" ({p99:.1f} ms)")


def plot(record: dict, outdir: Path = PLOTS_DIR) -> List[Path]:
    plt = pyplot()

    samples = sorted(record["figures"]["samples_to_all_ms"])
    if not samples:
        return []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(samples, [(i + 1) / len(samples) for i in range(len(samples))])
    ax.axvline(TARGET_P99_MS, color="red", linestyle="--", label="target p99")
    ax.set_xlabel("store write to applied by every process (ms)")
    ax.set_ylabel("fraction of changes")
    ax.set_title("Template-change propagation (CDF)")
    ax.legend()
    path = save_figure(fig, outdir / "store_propagation.png", dpi=100)
    return [path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few changes, 2 processes")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between changes")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    name = NAME + ("-quick" if args.quick else "")
    if args.plot_only:
        replot(NAME, plot)
        return
    print_machine()
    figures = run(10 if args.quick else args.changes, 2 if args.quick else args.processes,
                  args.gap)
    report(figures)
    publish(name, figures, None if args.quick else plot)


if __name__ == "__main__":
    main()
