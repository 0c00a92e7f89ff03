"""The store benchmarks' --quick modes run end to end and report sane figures."""

import json
import subprocess
import sys

import pytest

from benchmarks.common import RESULTS_DIR

pytestmark = pytest.mark.integration


def _quick(name: str, timeout: float = 240) -> dict:
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--quick"],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "machine:" in out.stdout
    return json.loads((RESULTS_DIR / f"{name}-quick.json").read_text())["figures"]


def test_failover_quick_loses_nothing():
    figures = _quick("store_failover")
    assert figures["rounds"] == 2
    assert figures["writes_acknowledged"] > 0
    assert figures["acknowledged_lost"] == 0 and figures["applied_twice"] == 0
    assert figures["resumed_s"]["n"] == 2


def test_propagation_quick_reaches_every_process():
    figures = _quick("store_propagation")
    assert figures["to_all_ms"]["n"] == 10 and figures["processes"] == 2
    assert figures["per_process_ms"]["n"] == 20


def test_scale_quick_conditional_replica_holds_only_own_rows():
    figures = _quick("store_scale")
    assert figures["own_rows_replica"]["rows"] == figures["vms_per_process"] == 100
    assert figures["all_rows_replica"]["rows"] == figures["rows"] == 20_000


def test_notice_quick_times_each_notice_from_the_destinations_own_log():
    figures = _quick("store_notice")
    samples = figures["samples"]
    assert figures["notices"] == 10 and figures["over_target"]["count"] <= 10
    assert {len(values) for values in samples.values()} == {10}
    # the destination received each hand-off after the source submitted it (one clock),
    # and the source submitted it after the REST call left the benchmark
    assert all(0 < ms < 5000 for ms in samples["write_to_destination_ms"]), samples
    assert all(0 < ms < 5000 for ms in samples["rest_to_write_ms"]), samples
    assert all(ms > 0 for ms in samples["commit_ms"] + samples["rest_floor_ms"]), samples
    assert figures["load_average_before"] and figures["busy_loops"] == 0
