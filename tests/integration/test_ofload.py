"""The load generator against real ryu-manager processes: dynprov and simple_switch_13."""

from collections import Counter

import pytest

from benchmarks import throughput
from benchmarks.ofload import frames
from benchmarks.ofload.driver import LoadConfig
from benchmarks.ofload.reference import binding_mods, engine_for, expected_binding_mods
from benchmarks.ofload.topology import FIRST_VM_PORT, datacenter
from ryu_apps.core.frames import parse_frame
from ryu_apps.core.identifiers import format_mac

pytestmark = pytest.mark.integration

TEMPLATES = LoadConfig().templates


def _config(**overrides) -> LoadConfig:
    values = dict(access=2, servers=2, window=8, duration=2.0, pool=3000, vm_timeout=10.0,
                  expected=expected_binding_mods(throughput.TEMPLATES, TEMPLATES))
    values.update(overrides)
    return LoadConfig(**values)


def _possible_server_mods(count: int) -> set:
    """Binding mods on the server confirmed by each VM's first barrier, by the pure engine.

    The count depends on which VMs share an access port (templates whose
    port-side rules conflict move them to the server), so the generator's VMs
    are replayed in order, each with its first frame (whose IP the first plan
    binds). Plans of one event-loop turn share a barrier, so a VM's first
    barrier confirms its provisioning plan's mods plus those later plans of the
    turn re-sent for it: every prefix of those is allowed.
    """
    topo = datacenter(2, 2, dpid_base=0)
    engine = engine_for(topo, throughput.TEMPLATES)
    first: dict = {}
    later: dict = {}
    for n in range(count):
        server = topo.servers[n % len(topo.servers)]
        mac = frames.vm_mac(TEMPLATES[n % len(TEMPLATES)], n)
        frame = frames.first_frame("ipv4", mac, n)
        verdict = engine.packet_in(server.dpid, FIRST_VM_PORT + n, format_mac(mac), frame,
                                   now=0.0, sender_ip=parse_frame(frame).sender_ip)
        own = verdict.provisioned.binding_id
        first[own] = binding_mods(verdict.plan, own)[server.dpid]
        for binding_id in list(later):
            resent = binding_mods(verdict.plan, binding_id)[server.dpid]
            if resent:
                later[binding_id].append(resent)
        later[own] = []
    seen = set()
    for binding_id, count_first in first.items():
        total = count_first
        seen.add(total)
        for resent in later[binding_id]:
            total += resent
            seen.add(total)
    return seen


def test_every_fresh_vm_is_provisioned_on_server_and_access_and_rest_agrees():
    result = throughput.run_round(throughput.DYNPROV, _config(), workers=1)
    assert result["completed"] > 0
    assert result["lost"] == 0 and result["still_outstanding"] == 0
    assert result["completed"] == result["sent"]
    assert result["released"] == result["completed"]   # packet-outs after the barriers
    possible = _possible_server_mods(result["sent"])
    mods = Counter()
    for key, vms in result["binding_mods"].items():
        server, access = map(int, key.split("/"))
        assert access == 1, result["binding_mods"]
        assert server in possible, (server, possible)
        mods[key] += vms
    assert sum(mods.values()) == result["completed"]
    assert result["rest"]["provisioned_not_active"] == 0
    assert result["rest"]["active"] == result["completed"]


def test_simple_switch_answers_every_packet_in_with_one_flow_mod():
    result = throughput.run_round(throughput.PEER, _config(), workers=1)
    assert result["completed"] > 0
    assert result["lost"] == 0 and result["completed"] == result["sent"]
    assert result["messages"]["flow_mods"] == result["completed"]
    assert result["messages"]["packet_outs"] >= result["completed"]


def test_ryu_floor_answers_every_packet_in_with_one_packet_out_and_nothing_else():
    result = throughput.run_round(throughput.FLOOR, _config(), workers=1)
    assert result["completed"] > 0
    assert result["lost"] == 0 and result["completed"] == result["sent"]
    assert result["messages"].get("flow_mods", 0) == 0
    assert result["messages"]["packet_outs"] >= result["completed"]


def test_two_workers_drive_one_controller_with_disjoint_fabrics():
    result = throughput.run_round(throughput.DYNPROV, _config(duration=1.0), workers=2)
    assert result["workers"] == 2 and result["switches"] == 2 * 7
    assert result["lost"] == 0 and result["completed"] == result["sent"] > 0
    assert result["rest"]["active"] == result["completed"]
