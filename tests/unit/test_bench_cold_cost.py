"""Smoke test: the cold-cost benchmark runs (--quick) and reports every pause.

Only what it reports is asserted, never a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cold_cost_quick_reports_engine_and_encoding_per_pause():
    done = subprocess.run([sys.executable, "-m", "benchmarks.cold_cost", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((ROOT / "benchmarks" / "results" / "cold_cost-quick.json").read_text())
    figures = record["figures"]
    assert set(figures) == {"back to back", "sleep 0.5 ms", "spin 0.5 ms", "sleep 2 ms",
                            "spin 2 ms"}
    for pause in figures.values():
        assert pause["engine_us"]["n"] == pause["encoding_us"]["n"] == 10
