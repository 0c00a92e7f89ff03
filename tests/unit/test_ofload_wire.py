"""The load generator's OpenFlow codec against Ryu's own OpenFlow 1.3 parser."""

import struct

import pytest
from ryu.ofproto import ofproto_parser, ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser

from benchmarks.ofload import frames, wire
from benchmarks.ofload.topology import datacenter


class _Datapath:
    """What Ryu's parsers and serializers need of a datapath."""

    ofproto = ofp
    ofproto_parser = parser
    id = 1


def _ryu_parse(data: bytes):
    version, msg_type, length, xid = ofproto_parser.header(data)
    return ofproto_parser.msg(_Datapath(), version, msg_type, length, xid, data)


def _ryu_bytes(msg) -> bytes:
    msg.serialize()
    return bytes(msg.buf)


def test_packet_in_template_matches_the_slow_encoder_and_ryu_reads_it():
    frame = frames.first_frame("ipv4", frames.vm_mac(0x00FA, 7), 7)
    fast = wire.PacketInTemplate(len(frame)).encode(42, 1234, frame)
    assert fast == wire.packet_in(42, 1234, frame)
    msg = _ryu_parse(fast)
    assert isinstance(msg, parser.OFPPacketIn)
    assert (msg.xid, msg.match["in_port"], msg.data) == (42, 1234, frame)
    assert msg.buffer_id == ofp.OFP_NO_BUFFER and msg.reason == ofp.OFPR_NO_MATCH


def test_features_reply_carries_the_datapath_id():
    msg = _ryu_parse(wire.features_reply(9, 0x0A001101))
    assert isinstance(msg, parser.OFPSwitchFeatures)
    assert (msg.xid, msg.datapath_id, msg.n_buffers) == (9, 0x0A001101, 0)


def test_desc_reply_carries_the_dynprov_role():
    body = wire.desc_body("dynprov:server:ols11")
    msg = _ryu_parse(wire.multipart_reply(3, wire.MP_DESC, body))
    assert isinstance(msg, parser.OFPDescStatsReply)
    assert msg.body.dp_desc.rstrip(b"\0") == b"dynprov:server:ols11"


def test_port_desc_reply_lists_every_port():
    body = b"".join(wire.port_body(p, bytes(5) + bytes([p]), f"p{p}") for p in (1, 2, 5))
    msg = _ryu_parse(wire.multipart_reply(4, wire.MP_PORT_DESC, body))
    assert [p.port_no for p in msg.body] == [1, 2, 5]
    assert msg.body[2].name.rstrip(b"\0") == b"p5"


@pytest.mark.parametrize("mp_type, cls", [(wire.MP_FLOW, parser.OFPFlowStatsReply),
                                          (wire.MP_METER_CONFIG,
                                           parser.OFPMeterConfigStatsReply)])
def test_empty_stats_replies(mp_type, cls):
    msg = _ryu_parse(wire.multipart_reply(5, mp_type))
    assert isinstance(msg, cls) and msg.body == [] and msg.flags == 0


def test_barrier_and_echo_replies():
    assert isinstance(_ryu_parse(wire.barrier_reply(11)), parser.OFPBarrierReply)
    request = _ryu_bytes(parser.OFPEchoRequest(_Datapath(), data=b"ping"))
    reply = _ryu_parse(wire.echo_reply(request))
    assert isinstance(reply, parser.OFPEchoReply) and reply.data == b"ping"


def test_reads_what_ryu_serializes_in_a_flow_mod():
    flow_mod = parser.OFPFlowMod(
        _Datapath(), cookie=0xD9100FA000000007, table_id=4, command=ofp.OFPFC_ADD,
        priority=50000, match=parser.OFPMatch(vlan_vid=0x1064, eth_dst="00:fa:00:00:00:07"),
        instructions=[])
    data = _ryu_bytes(flow_mod)
    assert wire.read_cookie(data) == 0xD9100FA000000007
    assert wire.read_flow_command(data) == ofp.OFPFC_ADD
    fields = wire.match_fields(data[48:])
    assert fields[wire.OXM_ETH_DST] == bytes.fromhex("00fa00000007")


def test_reads_meter_mods_and_packet_outs():
    meter = parser.OFPMeterMod(_Datapath(), command=ofp.OFPMC_ADD, flags=ofp.OFPMF_KBPS,
                               meter_id=77, bands=[parser.OFPMeterBandDrop(rate=10)])
    assert wire.read_meter_mod(_ryu_bytes(meter)) == (ofp.OFPMC_ADD, 77)
    frame = frames.gateway_frame()
    out = parser.OFPPacketOut(_Datapath(), buffer_id=ofp.OFP_NO_BUFFER, in_port=3,
                              actions=[parser.OFPActionOutput(2), parser.OFPActionOutput(5)],
                              data=frame)
    assert wire.read_packet_out(_ryu_bytes(out)) == (3, [2, 5], frame)


def test_split_messages_keeps_a_partial_message_for_later():
    stream = bytearray(wire.hello(1) + wire.barrier_reply(2) + wire.echo_reply(
        wire.message(wire.ECHO_REQUEST, 3, b"abc"))[:9])
    messages = wire.split_messages(stream)
    assert [wire.read_header(m)[3] for m in messages] == [1, 2]
    assert len(stream) == 9


def test_split_messages_refuses_a_corrupt_length():
    with pytest.raises(ValueError, match="length 4 at stream offset 0"):
        wire.split_messages(bytearray(struct.pack("!BBHI", 4, 0, 4, 0)))


def test_frames_are_what_they_claim():
    mac = frames.vm_mac(0x00FC, 0x01020304)
    assert mac == 0x00FC01020304
    ipv4 = frames.first_frame("ipv4", mac, 5)
    assert ipv4[6:12] == mac.to_bytes(6, "big") and ipv4[12:14] == b"\x08\x00"
    header = ipv4[14:34]
    total = sum(struct.unpack("!10H", header))
    assert (total & 0xFFFF) + (total >> 16) == 0xFFFF   # IPv4 header checksum holds
    arp = frames.first_frame("arp", mac, 5)
    assert arp[:6] == b"\xff" * 6 and arp[12:14] == b"\x08\x06"
    with pytest.raises(ValueError, match="expected 'ipv4' or 'arp'"):
        frames.first_frame("ipv6", mac, 5)


def test_datacenter_shape_links_servers_to_access_to_fabric():
    topo = datacenter(access=2, servers=3, dpid_base=0)
    assert len(topo.switches) == 1 + 2 + 6
    assert topo.link_count == 2 + 6
    for server in topo.servers:
        access = topo.access_of[server.dpid]
        assert topo.peers[(server.dpid, 1)][0] == access
    assert {s.dp_desc.split(":")[1] for s in topo.switches} == {"fabric", "access", "server"}
