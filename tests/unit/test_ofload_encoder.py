"""The edge's fast FlowSpec encoder writes exactly the bytes Ryu's classes would."""

from pathlib import Path

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser

from benchmarks.ofload import frames
from benchmarks.ofload.reference import engine_for
from benchmarks.ofload.topology import FIRST_VM_PORT, datacenter
from ryu_apps.app import openflow, openflow_bytes
from ryu_apps.core.flowspec import (
    FlowSpec, GotoTable, MeterSpec, Output, Resubmit, SetField, WriteMetadata, flow, make_match)
from ryu_apps.core.identifiers import format_mac
from ryu_apps.core.pipeline import (
    LEARN_IP_BIT, TAG_MASK, from_vm_metadata, template_metadata_match)

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = [ROOT / "templates", *sorted((ROOT / "tests/integration/libraries").iterdir())]


class _Datapath:
    ofproto = ofp
    ofproto_parser = parser


def _ryu(msg) -> bytes:
    msg.xid = 0
    msg.serialize()
    return bytes(msg.buf)


def _compiled_entries(library: Path):
    """Every flow and meter the engine plans for a few VMs of each template."""
    topo = datacenter(2, 2, dpid_base=0)
    engine = engine_for(topo, library)
    entries = []
    for plan_changes in [engine.switch_up(s.dpid, *_role(s), [], now=0.0).changes
                         for s in topo.switches]:
        for changes in plan_changes.values():
            entries += changes.adds
    template_ids = sorted(engine.main_library.templates)
    for n, template_id in enumerate(template_ids * 2):
        server = topo.servers[n % len(topo.servers)]
        mac = format_mac(frames.vm_mac(template_id, n + 1))
        verdict = engine.packet_in(server.dpid, FIRST_VM_PORT + n, mac, b"", now=0.0,
                                   sender_ip=f"10.0.0.{n + 1}")
        for changes in verdict.plan.changes.values():
            entries += changes.adds + changes.deletes
    return entries


def _role(switch):
    from ryu_apps.core.fabric import Role
    return Role(switch.role), switch.name


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.name)
def test_every_compiled_entry_encodes_like_ryu(library):
    entries = _compiled_entries(library)
    assert len(entries) > 20
    for entry in entries:
        if isinstance(entry, FlowSpec):
            openflow_bytes._encode_flow_add(entry)   # the fast path covers every compiled flow
            assert openflow_bytes.encoded_flow_add(entry) == _ryu(
                openflow.flow_add(_Datapath, entry)), entry
            assert openflow_bytes.encoded_flow_delete(entry) == _ryu(
                openflow.flow_delete(_Datapath, entry)), entry
        else:
            for command in (ofp.OFPMC_ADD, ofp.OFPMC_MODIFY, ofp.OFPMC_DELETE):
                assert openflow_bytes.encoded_meter_mod(entry, command) == _ryu(
                    openflow.meter_mod(_Datapath, entry, command)), entry


def test_masked_fields_and_set_field_encode_like_ryu():
    spec = flow(7, 2, 300, make_match(in_port=3, eth_type=0x0800,
                                      ipv4_dst=("10.0.200.9", "255.255.255.0"),
                                      eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00")),
                0xD9100FA000000001,
                actions=(SetField("vlan_vid", 0x1064), SetField("eth_dst", "00:fa:00:00:00:01"),
                         Output(4)), goto=5, meter=9, metadata=4)
    assert openflow_bytes.encoded_flow_add(spec) == _ryu(openflow.flow_add(_Datapath, spec))


def test_masked_metadata_match_and_masked_write_encode_like_ryu():
    tag = template_metadata_match(250, learn_ip=False)
    spec = flow(7, 1, 50001, make_match(metadata=tag, eth_type=0x0806), 0xD9700FA000000FA)
    assert openflow_bytes.encoded_flow_add(spec) == _ryu(openflow.flow_add(_Datapath, spec))
    assert openflow_bytes.encoded_flow_delete(spec) == _ryu(openflow.flow_delete(_Datapath, spec))
    written = FlowSpec(7, 0, 50000, make_match(in_port=3, eth_src="00:fa:00:00:00:01"),
                       (WriteMetadata(from_vm_metadata(250, True), TAG_MASK | LEARN_IP_BIT),
                        GotoTable(1)), 0xD9100FA000000001)
    openflow_bytes._encode_flow_add(written)   # on the fast path, not Ryu's
    assert openflow_bytes.encoded_flow_add(written) == _ryu(openflow.flow_add(_Datapath,
                                                                               written))


def test_nicira_resubmit_encodes_like_ryu():
    spec = flow(7, 4, 30000, make_match(vlan_vid=0x1064), 0xD9200000000064,
                actions=(Resubmit(6), Output(2)), metadata=3)
    assert openflow_bytes.encoded_flow_add(spec) == _ryu(openflow.flow_add(_Datapath, spec))


def test_what_the_encoder_does_not_know_is_rendered_by_ryu():
    spec = flow(7, 4, 30000, make_match(sctp_src=80, ip_proto=132, eth_type=0x0800),
                0xD9200000000064, actions=(Output(2),))
    try:
        openflow_bytes._encode_flow_add(spec)
    except openflow_bytes._NotEncodable:
        pass
    else:
        raise AssertionError("sctp_src should not be known to the fast encoder")
    assert openflow_bytes.encoded_flow_add(spec) == _ryu(openflow.flow_add(_Datapath, spec))


def test_ipv6_and_neighbour_discovery_fields_encode_like_ryu():
    for match in (
            make_match(in_port=3, eth_type=0x86DD, ipv6_src="fe80::2fa:ff:fe00:1"),
            make_match(eth_type=0x86DD, ipv6_dst=("2001:db8::", "ffff:ffff::"),
                       ip_proto=58, icmpv6_type=128, icmpv6_code=0),
            make_match(eth_type=0x86DD, ip_proto=58, icmpv6_type=135, ipv6_src="::",
                       ipv6_nd_target="fe80::1", ipv6_nd_sll="00:00:00:00:00:00"),
            make_match(eth_type=0x86DD, ip_proto=58, icmpv6_type=136,
                       ipv6_nd_target="fe80::1", ipv6_nd_tll="00:fa:00:00:00:01"),
            make_match(eth_type=0x0800, ip_proto=1, icmpv4_type=8, icmpv4_code=0)):
        spec = flow(7, 1, 50004, match, 0xD9200000000064, goto=2)
        openflow_bytes._encode_flow_add(spec)   # on the fast path, not Ryu's
        assert openflow_bytes.encoded_flow_add(spec) == _ryu(openflow.flow_add(_Datapath,
                                                                                spec))


def test_encoded_messages_keep_the_safe_order_and_xid_can_be_set():
    from ryu_apps.core.flow_plan import SwitchChanges
    changes = SwitchChanges()
    low = flow(1, 0, 10, make_match(in_port=1), 0xD9F0000000000000)
    high = flow(1, 0, 50, make_match(in_port=2), 0xD9F0000000000000)
    meter = MeterSpec(1, 5, 1000, 100)
    changes.add(low)
    changes.add(meter)
    changes.add(high)
    ryu_order = [_ryu(m) for m in openflow.messages_for(_Datapath, changes)]
    assert openflow_bytes.encoded_messages(changes) == ryu_order
    stamped = openflow_bytes.with_xid(ryu_order[0], 0x01020304)
    assert stamped[4:8] == bytes([1, 2, 3, 4]) and stamped[8:] == ryu_order[0][8:]


def test_packet_outs_encode_like_ryu():
    frame = bytes(range(60))
    assert openflow_bytes.encoded_packet_out(7, openflow.OFPP_TABLE, frame) == _ryu(
        openflow.packet_out_to_pipeline(_Datapath, 7, frame))
    assert openflow_bytes.encoded_packet_out(ofp.OFPP_CONTROLLER, 3, frame) == _ryu(
        openflow.packet_out_to_port(_Datapath, 3, frame))


def test_the_nicira_move_and_output_from_the_metadata_encode_like_ryu():
    from ryu_apps.core.flowspec import Move, OutputField
    for actions in ((Move("eth_src", "ipv6_nd_sll", 48),), (Move("eth_src", "ipv6_nd_tll", 48),),
                    (OutputField("metadata", 0, 16),), (OutputField("metadata", 4, 12),)):
        spec = flow(7, 2, 45002, make_match(eth_type=0x86DD, ip_proto=58, icmpv6_type=135),
                    0xD9200000000064, actions=actions, goto=3)
        openflow_bytes._encode_flow_add(spec)   # on the fast path, not Ryu's
        assert openflow_bytes.encoded_flow_add(spec) == _ryu(openflow.flow_add(_Datapath, spec))


def test_what_open_vswitch_answers_for_them_reads_back_as_the_same_actions():
    """OVS answers a move with Nicira (NXM) field names and the output with the metadata's
    OXM name (checked against ovs-vswitchd 3.1): both read back as the specs' actions."""
    from ryu_apps.app.framework import ofproto_v1_3_parser as parser
    from ryu_apps.core import ipv6_guard, switch_flows
    answered = [parser.NXActionRegMove(src_field="eth_src_nxm", dst_field="nd_sll", n_bits=48),
                parser.NXActionRegMove(src_field="eth_src", dst_field="ipv6_nd_tll", n_bits=48),
                parser.NXActionOutputReg(ofs_nbits=15, src="metadata", max_len=0),
                parser.NXActionOutputReg2(ofs_nbits=15, src="metadata", max_len=0)]
    assert [openflow._parse_action(a) for a in answered] == [
        ipv6_guard.SET_SLL, ipv6_guard.SET_TLL, switch_flows.DELIVER, switch_flows.DELIVER]
