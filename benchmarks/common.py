"""What every benchmark shares: machine description, percentiles, result files, tables."""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
PLOTS_DIR = BENCHMARKS_DIR.parent / "docs" / "img"


def _first_line(command: Sequence[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0].strip() if out.strip() else "unknown"


def machine_description() -> dict:
    """CPU, memory, kernel, OVS and Python versions, and the load when the run started."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ovs": _first_line(["ovs-vswitchd", "--version"]),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[min(len(ordered), rank) - 1]


def summary(values: Sequence[float]) -> dict:
    """n, min, p50, p90, p99, max and mean of a sample (empty sample: n=0 only)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        "p50": statistics.median(values),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def write_results(name: str, figures: dict) -> Path:
    """Save ``figures`` with the machine and command line as ``benchmarks/results/NAME.json``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "machine": machine_description(),
        "figures": figures,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read_results(name: str) -> dict:
    """The record ``write_results`` saved for benchmark NAME."""
    return json.loads((RESULTS_DIR / f"{name}.json").read_text())


def publish(name: str, figures: dict, plot=None) -> Path:
    """Save the figures, say where, and draw ``plot`` (if given) from the saved record."""
    path = write_results(name, figures)
    print(f"results: {path}")
    if plot is not None:
        replot(name, plot)
    return path


def replot(name: str, plot) -> None:
    """Draw ``plot`` from benchmark NAME's saved record and say where (``--plot-only``)."""
    for png in plot(read_results(name)):
        print(f"plot: {png}")


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table with right-aligned numbers (floats to 2 decimals)."""
    def cell(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; its path."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def print_machine() -> None:
    """One line saying where the figures come from."""
    m = machine_description()
    print(f"machine: {m['cpus']} x {m['cpu']}, {m['memory_gb']} GB, kernel {m['kernel']}, "
          f"{m['ovs']}, Python {m['python']}, load {m['load_average']}")
