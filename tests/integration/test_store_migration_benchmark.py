"""The cross-process migration benchmark's --quick mode: every peer reaches the VM
again after every move, and the figures it reports are the prober's."""

import json
import subprocess
import sys

import pytest

from benchmarks.common import RESULTS_DIR

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]


def test_store_migration_quick_every_peer_recovers():
    out = subprocess.run([sys.executable, "-m", "benchmarks.store_migration", "--quick"],
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    figures = json.loads((RESULTS_DIR / "store_migration-quick.json").read_text())["figures"]
    for setup in ("with_ovsdb", "packets_only"):
        result = figures[setup]
        assert result["not_recovered"] == 0, result["records"]
        assert len(result["records"]) == 2
        for record in result["records"]:
            assert sorted(record["peers"]) == ["web3", "web7"]
            for seen in record["peers"].values():
                assert seen["sent"] > 500 and 0 <= seen["lost"] < seen["sent"]
        assert result["outage_ms_with_notice"]["n"] == 4   # two moves, two peers
    assert "peer web7 (p2's pod)" in out.stdout
