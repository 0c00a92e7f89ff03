"""The ct cost benchmark runs end to end at tiny sizes (figures printed, never asserted):
both libraries put in force in turn, traffic through both, new VMs provisioned in both."""

import pytest

from benchmarks import conntrack_cost
from benchmarks.common import read_results

# serial: it measures throughput and round trips, which other beds' load would skew.
pytestmark = [pytest.mark.integration, pytest.mark.serial]


def test_conntrack_cost_quick_run_measures_both_modes():
    assert conntrack_cost.main(["--quick"]) == 0
    figures = read_results("conntrack_cost-quick")["figures"]
    engine = figures["engine"]
    # the same rules cost a new VM the same own flows; ct adds only shared ones
    assert engine["stateful"]["flows_per_new_vm"] == engine["stateless"]["flows_per_new_vm"]
    assert engine["stateful"]["server_flows"] > engine["stateless"]["server_flows"]
    assert sorted(r["mode"] for r in figures["rounds"]) == ["stateful", "stateless"]
    for record in figures["rounds"]:
        assert record["mbit_s"] > 0 and record["connect_ms"]["failed"] == 0
        assert record["rtt_ms"]["n"] > 0 and "load average" in record["uptime"]
    for mode in ("stateless", "stateful"):
        provisioned = figures["provisioning"][mode]
        assert provisioned["vms"] == provisioned["confirmed"] == provisioned["bound"] == 4
