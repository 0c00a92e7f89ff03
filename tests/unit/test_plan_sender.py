"""The plan sender: flow-mods and a barrier per switch, packet-outs after the barriers
(or at once when a packet-out says so), on a datapath that records what it is sent."""

import logging
import struct

from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.flowspec import flow, make_match
from ryu_apps.app.plan_sender import PlanSender

OFPT_PACKET_OUT, OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST = 13, 14, 20


class RecordingDatapath:
    def __init__(self):
        self.xid, self.sent = 0, []

    def send(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            _, kind, length, xid = struct.unpack_from("!BBHI", data, offset)
            self.sent.append((kind, xid, data[offset:offset + length]))
            offset += length


def _plan(*packet_outs):
    plan = Plan()
    plan.packet_outs.extend(packet_outs)
    plan.for_switch(1).add(flow(1, 4, 100, make_match(in_port=1), 0xD9F0000000000000))
    return plan


def test_packet_outs_wait_for_the_barrier_unless_sent_at_once():
    datapath = RecordingDatapath()
    sender = PlanSender({1: datapath}, logging.getLogger("test"))
    later = PacketOut(1, 2, b"\x00" * 60, out_port=7)
    now = PacketOut(1, 0, b"\x01" * 60, out_port=7, at_once=True)
    sender.send(_plan(later, now))
    kinds = [kind for kind, _, _ in datapath.sent]
    assert kinds == [OFPT_PACKET_OUT, OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST]
    assert datapath.sent[0][2].endswith(b"\x01" * 60)
    barrier_xid = datapath.sent[2][1]
    sender.barrier_reply(1, barrier_xid)
    assert [kind for kind, _, _ in datapath.sent][3:] == [OFPT_PACKET_OUT]
    assert datapath.sent[3][2].endswith(b"\x00" * 60)
