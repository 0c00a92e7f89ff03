"""The barrier tap: a barrier reply confirms its plans where Ryu reads it, once,
and every message still reaches Ryu's own parser unchanged."""

import logging
import struct

import pytest

from ryu.ofproto import ofproto_parser, ofproto_v1_3_parser

from ryu_apps.app import barrier_tap
from ryu_apps.app.plan_sender import PlanSender
from tests.unit.test_plan_sender import OFPT_BARRIER_REQUEST, RecordingDatapath, _plan


class _Datapath(RecordingDatapath):
    """A switch connection as Ryu's parser sees it (id, ofproto and parser)."""

    def __init__(self, dpid: int):
        super().__init__()
        from ryu.ofproto import ofproto_v1_3
        self.id, self.ofproto, self.ofproto_parser = dpid, ofproto_v1_3, ofproto_v1_3_parser


@pytest.fixture
def seen():
    calls = []
    barrier_tap.install(lambda dpid, xid: calls.append((dpid, xid)))
    yield calls
    barrier_tap.uninstall()


def _read(datapath, version: int, kind: int, xid: int, body: bytes = b""):
    """What Ryu's receive loop does with one message it split off the stream."""
    buf = bytearray(struct.pack("!BBHI", version, kind, 8 + len(body), xid) + body)
    return ofproto_parser.msg(datapath, version, kind, len(buf), xid, buf)


def test_a_barrier_reply_is_seen_then_parsed_by_ryu_as_before(seen):
    datapath = _Datapath(7)
    message = _read(datapath, 4, barrier_tap.OFPT_BARRIER_REPLY, 42)
    assert seen == [(7, 42)]
    assert isinstance(message, ofproto_v1_3_parser.OFPBarrierReply) and message.xid == 42


def test_other_messages_and_versions_are_not_barriers(seen):
    datapath = _Datapath(7)
    echo = _read(datapath, 4, 3, 5)                   # an echo reply
    _read(datapath, 1, barrier_tap.OFPT_BARRIER_REPLY, 6)   # 1.0's type 21 is not one
    assert seen == []
    assert isinstance(echo, ofproto_v1_3_parser.OFPEchoReply)


def test_uninstall_gives_ryu_its_parser_back():
    original = ofproto_parser.msg
    barrier_tap.install(lambda dpid, xid: None)
    assert ofproto_parser.msg is not original
    barrier_tap.install(lambda dpid, xid: None)    # twice: still one wrapper
    barrier_tap.uninstall()
    assert ofproto_parser.msg is original


def test_a_plan_is_confirmed_once_by_the_reply_read_then_dispatched():
    datapath = _Datapath(1)
    sender = PlanSender({1: datapath}, logging.getLogger("test"))
    confirmed = []

    def early(dpid, xid):
        if sender.awaits(dpid, xid):
            sender.barrier_reply(dpid, xid)

    barrier_tap.install(early)
    try:
        sender.send(_plan(), on_confirmed=lambda: confirmed.append(1))
        barrier = [xid for kind, xid, _ in datapath.sent if kind == OFPT_BARRIER_REQUEST]
        assert len(barrier) == 1 and sender.awaits(1, barrier[0])
        assert not sender.awaits(1, barrier[0] + 1) and not sender.awaits(2, barrier[0])
        _read(datapath, 4, barrier_tap.OFPT_BARRIER_REPLY, barrier[0])
        assert confirmed == [1] and not sender.awaits(1, barrier[0])
        sender.barrier_reply(1, barrier[0])            # Ryu's event, later
        assert confirmed == [1]
    finally:
        barrier_tap.uninstall()
