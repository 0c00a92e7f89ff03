"""Storms from a tenant VM on real OVS and Mininet (a short run of ``benchmarks.storm``).

Random source MACs, tagged frames and forged LLDP, each for a couple of seconds
at a lower rate than the benchmark: a new VM on the attacker's server and one on
another server are provisioned during each, the attacker's bridge carries no
more drop flows per port than the quarantine design allows, and the links and
the original VMs' reachability are as before.
"""

import pytest

from benchmarks import storm
from benchmarks.hostile import controller_watch as watch
from benchmarks.hostile.storm_lab import DROP_FLOWS_PER_PORT, StormLab, run_prefix
from ryu_apps.core.quarantine import QUARANTINE_MACS_PER_PORT

# serial: its assertions rest on measured loss, rates or outages (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

SECONDS, RATE, VMS = 2.0, 2000.0, 1
MODES = ("random-macs", "tagged", "lldp")


@pytest.fixture(scope="module")
def storms():
    storm_lab = StormLab(run_prefix("W"), access=2, servers=2, vms=2).start()
    try:
        rss = watch.RssSampler(storm_lab.controller.process.pid).start()
        baseline = {"links": watch.links(storm_lab.controller),
                    "mesh": storm_lab.ping_mesh(storm_lab.originals)}
        results = {mode: storm.run_storm(storm_lab, mode, index, RATE, SECONDS, VMS, rss,
                                         baseline)
                   for index, mode in enumerate(MODES)}
        rss.stop()
        results["baseline"] = baseline
        results["log"] = watch.scan_log(storm_lab.controller.log())
        yield results
    finally:
        storm_lab.stop()


@pytest.mark.parametrize("mode", MODES)
def test_new_vms_are_provisioned_on_the_same_and_another_server_during_the_storm(storms, mode):
    result = storms[mode]
    assert result["frames_sent"] >= 0.5 * RATE * SECONDS
    assert result["new_vms"] == {"same": VMS, "other": VMS}
    assert result["provisioned"] == result["new_vms"], result["latency_ms"]


@pytest.mark.parametrize("mode", MODES)
def test_drop_flows_stay_within_the_quarantine_bound(storms, mode):
    drops = storms[mode]["drop_flows"]
    assert drops["samples"] > 0
    assert drops["any_port_peak"] <= DROP_FLOWS_PER_PORT
    assert all(n <= DROP_FLOWS_PER_PORT for n in drops["after_by_port"].values())


def test_the_random_mac_storm_is_quarantined_at_the_attackers_port(storms):
    drops = storms["random-macs"]["drop_flows"]
    # a drop flow per refused MAC up to the limit, then one for the whole port
    assert drops["attacker_port_peak"] == QUARANTINE_MACS_PER_PORT + 1


@pytest.mark.parametrize("mode", ("tagged", "lldp"))
def test_tagged_and_lldp_storms_die_in_the_pipeline(storms, mode):
    assert storms[mode]["drop_flows"]["attacker_port_peak"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_links_and_reachability_are_unchanged_after_the_storm(storms, mode):
    mesh = storms["baseline"]["mesh"]
    assert any(mesh.values()) and not all(mesh.values())   # the templates allow some pairs
    assert storms[mode]["links_unchanged"], storms[mode]["links_diff"]
    assert storms[mode]["mesh_unchanged"], storms[mode]["mesh_diff"]


def test_no_handler_raised(storms):
    assert storms["log"]["handler_exceptions"] == 0
    assert storms["log"]["tracebacks"] == 0
