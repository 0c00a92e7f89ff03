"""The latency benchmarks run end to end (figures are printed, never asserted)."""

import pytest

from benchmarks import ovs_floor, provisioning_latency
from benchmarks.common import read_results

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]


def test_provisioning_latency_quick_run_provisions_every_vm_on_both_switches():
    assert provisioning_latency.main(["--quick"]) == 0
    figures = read_results("provisioning_latency-quick")["figures"]
    assert figures["vms"] == figures["confirmed"] == figures["bound"] == 60
    assert figures["flows_on_both_switches"] == 60
    assert figures["latency_ms"]["n"] == 60 and figures["latency_ms"]["min"] > 0
    assert figures["binding_flows_per_vm_server"]["min"] > 1


def test_ovs_floor_quick_run_answers_every_barrier():
    assert ovs_floor.main(["--quick"]) == 0
    figures = read_results("ovs_floor-quick")["figures"]
    assert figures["ovs_only_ms"]["n"] == figures["ryu_encoding_plus_ovs_ms"]["n"] == 20


def test_provisioning_latency_quick_run_with_ovsdb_provisions_from_the_rows_alone():
    """Each VM announced only by its port's OVSDB row: provisioned before it sends anything."""
    assert provisioning_latency.main(["--quick", "--ovsdb"]) == 0
    figures = read_results("provisioning_latency-ovsdb-quick")["figures"]
    assert figures["vms"] == figures["confirmed"] == figures["bound"] == 60
    assert figures["flows_on_both_switches"] == 60
    assert figures["latency_ms"]["n"] == 60
