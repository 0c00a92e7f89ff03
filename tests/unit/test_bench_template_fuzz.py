"""Smoke test: the template fuzz benchmark (--quick) runs and finds no crash, traceback
or unlocated error. Only behaviour is asserted, never a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_template_fuzz_quick_refuses_every_pathological_library_cleanly():
    done = subprocess.run([sys.executable, "-m", "benchmarks.template_fuzz", "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads((ROOT / "benchmarks" / "results" / "template_fuzz-quick.json")
                         .read_text())["figures"]
    generated = figures["generated"]
    assert generated["cases"] == 100
    assert generated["refused"] + generated["accepted"] == 100
    assert (generated["crashes"], generated["tracebacks"], generated["unlocated"]) == (0, 0, 0)
    assert all(case["refused"] and not case["problem"] for case in figures["pathological"])
    assert {c["name"] for c in figures["pathological"]} >= {
        "40k-deep sequence (80 KB)", "alias bomb (billion laughs)", "200,000 rules (15 MB)",
        "50 MB file", "1 MB binary junk"}
    (reload,) = figures["checker_reloads"]
    assert reload["no_change_is_same_library"]
