"""Smoke test: the scale and library-reload benchmarks run (--quick) and report sane facts.

Only behaviour is asserted (what a reconcile or a reload changes), never a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _run(module: str) -> dict:
    done = subprocess.run([sys.executable, "-m", module, "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "results:" in done.stdout
    return done


def test_scale_quick_reports_every_event_and_idempotent_reconciles():
    _run("benchmarks.scale")
    record = json.loads((RESULTS / "scale-quick.json").read_text())
    for size, figures in record["figures"]["sizes"].items():
        assert figures["bindings"] >= int(size)
        for event in ("new_vm", "known_vm", "idle_timeout", "port_down", "migration",
                      "link_flap"):
            assert figures["events_us"][event]["n"] > 0, event
        reconcile = figures["reconcile"]
        assert reconcile["server_full_changes"] == 0    # a switch holding all: nothing
        assert reconcile["access_full_changes"] == 0
        assert reconcile["access_empty_changes"] == reconcile["access_entries"]
        assert figures["memory"]["bytes_per_binding"] > 0
    assert (ROOT / "docs" / "img" / "scale_quick_event_cost.png").exists()


def test_library_reload_quick_touches_only_the_changed_template():
    _run("benchmarks.library_reload")
    record = json.loads((RESULTS / "library_reload-quick.json").read_text())
    for apply in record["figures"]["apply"].values():
        assert apply["bindings"] > 0
        assert apply["unchanged_reload_flow_changes"] == 0
        assert apply["changes_outside_that_template"] == 0
        assert 0 < apply["one_change_flow_changes"]["max"] <= apply["changed_template_flows"]
