"""Stateful ACLs (core/conntrack.py): validation, compilation into ct flows, and their
behaviour on the fake switches' conntrack model."""

from __future__ import annotations

import dataclasses

import pytest

from ryu_apps.core.conntrack import INVALID, redundant_reply_rules, zone_of
from ryu_apps.core.flowspec import ApplyActions, Conntrack
from ryu_apps.core.pipeline import Priority, Table
from ryu_apps.core.template_errors import TemplateValidationError
from ryu_apps.core.template_validation import build_library
from tests.support.fake_switches import TCP_ACK, TCP_SYN, Packet, tcp
from tests.unit.test_shared_pipeline import S11, S12, Lab

WEB, CLIENT = 0xB0, 0xB1
WEB_A, WEB_B, CLIENT_A = "00:b0:00:00:00:01", "00:b0:00:00:00:02", "00:b1:00:00:00:01"
IP_WEB_A, IP_WEB_B, IP_CLIENT = "10.0.0.1", "10.0.0.2", "10.0.0.9"


def _template(template_id, name, vswitch, access_port=None) -> dict:
    return {"id": template_id, "name": name, "description": name, "vlan": 100,
            "virtual_switch": vswitch,
            "access_port": access_port or {"default_action": "allow"}}


WEB_SIDE = {"default_action": "deny", "bind_ip": True, "stateful": True, "acl": [
    {"action": "allow", "direction": "to_vm", "protocol": "tcp", "dst_port": 80},
    {"action": "allow", "direction": "from_vm", "protocol": "tcp", "dst_port": 5432},
    {"action": "allow", "direction": "to_vm", "ethertype": "arp"},
    {"action": "allow", "direction": "from_vm", "ethertype": "arp"},
]}


def _library(web_side=WEB_SIDE):
    return build_library([("lab.yaml", {"templates": [
        _template(WEB, "web", web_side),
        _template(CLIENT, "client", {"default_action": "allow", "bind_ip": True}),
    ]})])


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(_library())
    lab.vm(S11, 1, WEB_A, IP_WEB_A)
    lab.vm(S12, 2, CLIENT_A, IP_CLIENT)
    return lab


def reaches(lab: Lab, dpid: int, port: int, packet: Packet) -> set:
    return {(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, dpid, port, packet)}


def to_web(dst_port=80, src_port=40000, **fields) -> Packet:
    return dataclasses.replace(tcp(CLIENT_A, WEB_A, IP_CLIENT, IP_WEB_A, dst_port, src_port),
                               **fields)


def from_web(dst_port=40000, src_port=80, **fields) -> Packet:
    return dataclasses.replace(tcp(WEB_A, CLIENT_A, IP_WEB_A, IP_CLIENT, dst_port, src_port),
                               **fields)


# -- validation ----------------------------------------------------------------------------
def test_stateful_on_the_access_port_is_refused_with_its_place():
    with pytest.raises(TemplateValidationError) as refused:
        build_library([("lab.yaml", {"templates": [_template(
            WEB, "web", {"default_action": "allow"},
            {"default_action": "allow", "stateful": True})]})])
    text = str(refused.value)
    assert "lab.yaml" in text and "access_port.stateful" in text
    assert "only for virtual_switch" in text


def test_stateful_must_be_a_boolean():
    with pytest.raises(TemplateValidationError, match=r"virtual_switch.stateful.*"
                                                      r"expected true or false, got 'yes'"):
        _library({**WEB_SIDE, "stateful": "yes"})


def test_stateless_stays_the_default_and_arp_only_rules_are_fine_when_stateful():
    library = _library()
    assert library.get(WEB).virtual_switch.stateful
    assert not library.get(CLIENT).virtual_switch.stateful
    arp_only = _library({"default_action": "deny", "stateful": True, "acl": [
        {"action": "allow", "direction": "to_vm", "ethertype": "arp"}]})
    assert redundant_reply_rules(arp_only.get(WEB).virtual_switch) == []


def test_a_mirror_rule_made_redundant_by_stateful_is_reported():
    side = _library({**WEB_SIDE, "acl": WEB_SIDE["acl"] + [
        {"action": "allow", "direction": "from_vm", "protocol": "tcp", "src_port": 80}]}
    ).get(WEB).virtual_switch
    found = redundant_reply_rules(side)
    assert [index for index, _ in found] == [4]
    assert "mirrors acl[0]" in found[0][1] and "replies pass already" in found[0][1]


def test_a_reload_warns_of_a_redundant_mirror_rule_with_its_place(lab):
    mirrored = {**WEB_SIDE, "acl": WEB_SIDE["acl"] + [
        {"action": "allow", "direction": "from_vm", "protocol": "tcp", "src_port": 80}]}
    plan = lab.apply(lab.engine.set_library(_library(mirrored)))
    assert [w for w in plan.warnings if "mirrors" in w] == [
        "lab.yaml: template 176 'web': virtual_switch.acl[4]: mirrors acl[0] (allow to_vm "
        "ethertype=ipv4,ipv6 protocol=tcp dst_port=80): with stateful: true its replies "
        "pass already"]
    assert not [w for w in lab.apply(lab.engine.set_library(_library())).warnings
                if "mirrors" in w]
    both_ways = _library({**WEB_SIDE, "acl": [
        {"action": "allow", "direction": "to_vm", "protocol": "icmp"},
        {"action": "allow", "direction": "from_vm", "protocol": "icmp"}]})
    assert redundant_reply_rules(both_ways.get(WEB).virtual_switch) == []


# -- compilation ---------------------------------------------------------------------------
def test_ct_flows_are_per_template_and_server_not_per_vm(lab):
    before = lab.shared_flows(S11, WEB)
    lab.vm(S11, 3, WEB_B, IP_WEB_B)
    assert lab.shared_flows(S11, WEB) == before
    tracks = [f for f in before if f.priority == Priority.CT_TRACK]
    # IPv4 and IPv6, in each of the two ACL tables, recirculating to that same table
    assert sorted((f.table_id, f.match_dict()["eth_type"]) for f in tracks) == sorted(
        (t, e) for t in (Table.FROM_VM_ACL, Table.TO_VM_ACL) for e in (0x0800, 0x86DD))
    for spec in tracks:
        assert spec.instructions == (ApplyActions((Conntrack(zone_of(WEB),
                                                             table=spec.table_id),)),)


def test_every_ip_allow_entry_commits_in_the_templates_zone(lab):
    for spec in lab.shared_flows(S11, WEB):
        fields = spec.match_dict()
        allows = any(not isinstance(i, ApplyActions) for i in spec.instructions)
        if spec.table_id not in (Table.FROM_VM_ACL, Table.TO_VM_ACL) or not allows:
            continue
        if spec.priority < Priority.CT_RELATED and fields.get("eth_type") in (0x0800, 0x86DD):
            assert ApplyActions((Conntrack(WEB, commit=True),)) in spec.instructions, spec
        if fields.get("eth_type") == 0x0806:
            assert "ct_state" not in fields


# -- behaviour on the conntrack model --------------------------------------------------------
def test_replies_pass_without_mirror_rules_and_unsolicited_packets_are_dropped(lab):
    assert reaches(lab, S12, 2, to_web()) == {(S11, 1)}
    assert reaches(lab, S11, 1, from_web()) == {(S12, 2)}        # the reply, no mirror rule
    assert reaches(lab, S11, 1, from_web(dst_port=41000)) == set()   # unsolicited
    assert reaches(lab, S12, 2, to_web(dst_port=22)) == set()    # not allowed in
    # the web VM's own connection to the database port, and its reply
    db = tcp(WEB_A, CLIENT_A, IP_WEB_A, IP_CLIENT, 5432, 50000)
    assert reaches(lab, S11, 1, db) == {(S12, 2)}
    reply = tcp(CLIENT_A, WEB_A, IP_CLIENT, IP_WEB_A, 50000, 5432)
    assert reaches(lab, S12, 2, reply) == {(S11, 1)}


def test_an_invalid_packet_is_dropped_by_the_counting_flow(lab):
    syn_ack = to_web(tcp_flags=TCP_SYN | TCP_ACK, src_port=45000)
    assert reaches(lab, S12, 2, syn_ack) == set()
    tracked = dataclasses.replace(syn_ack, ct_state=0x30,
                                  metadata=lab.shared_flows(S11, WEB).pop().match_dict()
                                  ["metadata"][0])
    spec = lab.switches.lookup(S11, Table.TO_VM_ACL, tracked, 0)
    assert spec.priority == Priority.CT_INVALID and spec.match_dict()["ct_state"] == INVALID
    assert not spec.instructions


def test_arp_is_untracked_and_follows_the_rules(lab):
    arp = Packet(CLIENT_A, "ff:ff:ff:ff:ff:ff", 0x0806, arp_spa=IP_CLIENT)
    assert (S11, 1) in reaches(lab, S12, 2, arp)


def test_a_reload_that_keeps_the_connection_allowed_keeps_it(lab):
    assert reaches(lab, S12, 2, to_web()) == {(S11, 1)}
    more = {**WEB_SIDE, "acl": WEB_SIDE["acl"] + [
        {"action": "allow", "direction": "to_vm", "protocol": "tcp", "dst_port": 443}]}
    lab.apply(lab.engine.set_library(_library(more)))
    assert reaches(lab, S11, 1, from_web()) == {(S12, 2)}
    assert reaches(lab, S12, 2, to_web()) == {(S11, 1)}


def test_a_reload_that_stops_allowing_the_connection_cuts_its_original_direction(lab):
    assert reaches(lab, S12, 2, to_web()) == {(S11, 1)}
    assert reaches(lab, S11, 1, from_web()) == {(S12, 2)}
    fewer = {**WEB_SIDE, "acl": WEB_SIDE["acl"][1:]}
    lab.apply(lab.engine.set_library(_library(fewer)))
    assert reaches(lab, S12, 2, to_web()) == set()


def test_a_connection_moves_with_its_vm_by_a_mid_stream_pickup(lab):
    """The destination's conntrack never saw the connection: the client's next
    segment starts it there (an allowed original direction), then replies pass."""
    assert reaches(lab, S12, 2, to_web()) == {(S11, 1)}
    lab.apply(lab.engine.port_down(S11, 1, now=1.0))   # the VM leaves its server
    lab.vm(S12, 5, WEB_A, IP_WEB_A)                      # and shows up on the other one
    tracker = lab.switches.conntrack.get(S12)
    assert not any(IP_WEB_A in key for key in (tracker.connections if tracker else {}))
    assert reaches(lab, S12, 2, to_web(tcp_flags=TCP_ACK)) == {(S12, 5)}
    assert reaches(lab, S12, 5, from_web(tcp_flags=TCP_ACK)) == {(S12, 2)}


def test_neighbour_discovery_passes_untracked_and_other_icmpv6_is_judged(lab):
    """ND (here a neighbour solicitation) passes though the stateful web template's
    rules allow no ICMPv6; an echo request does not."""
    def icmp6(kind: int) -> Packet:
        return Packet(CLIENT_A, WEB_A, 0x86DD, ip_proto=58, ipv6_src="fe80::1",
                      ipv6_dst="fe80::2", icmpv6_type=kind, icmpv6_code=0,
                      ipv6_nd_target="fe80::2" if kind == 135 else None,
                      ipv6_nd_sll="00:00:00:00:00:00" if kind == 135 else None)
    assert reaches(lab, S12, 2, icmp6(135)) == {(S11, 1)}
    assert reaches(lab, S12, 2, icmp6(128)) == set()
