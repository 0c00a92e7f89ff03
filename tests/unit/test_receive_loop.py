"""The receive loop that reads what has arrived at once: the same messages, events and
handler calls as the framework's own loop, however the bytes are cut into reads."""

import random

from benchmarks.ofload import frames, wire
from ryu_apps.app import receive_loop
from ryu_apps.app.framework import (
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    controller,
    hub,
    ofp_event,
    ofproto_parser,
    ofproto_v1_3,
    ofproto_v1_3_parser,
)

ECHO_REQUEST = 2


class _Handler:
    """A framework handler of echo requests in MAIN_DISPATCHER (as ofp_handler's)."""

    def __init__(self, calls):
        self.calls = calls
        self.callers = {ofp_event.EventOFPEchoRequest: type("Caller", (), {
            "dispatchers": [MAIN_DISPATCHER]})()}

    def __call__(self, ev):
        self.calls.append(("handler", ev.msg.xid))


class _Brick:
    def __init__(self):
        self.calls = []
        self.handler = _Handler(self.calls)

    def send_event_to_observers(self, ev, state):
        self.calls.append((type(ev).__name__, ev.msg.xid, state))

    def get_handlers(self, ev):
        return [self.handler] if isinstance(ev, ofp_event.EventOFPEchoRequest) else []


class _Socket:
    def __init__(self, reads):
        self.reads, self.closed = list(reads), False

    def close(self):
        self.closed = True

    def recv(self, size):
        if not self.reads:
            return b""   # the switch closed the connection
        data = self.reads.pop(0)
        head, rest = data[:size], data[size:]
        if rest:
            self.reads.insert(0, rest)
        return head


class _Datapath:
    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser

    def __init__(self, reads):
        self.socket, self.state, self.ofp_brick = _Socket(reads), MAIN_DISPATCHER, _Brick()
        self.id, self.address = 1, ("127.0.0.1", 6653)


def _stream():
    frame = frames.first_frame("ipv4", frames.vm_mac(0x00FA, 7), 1)
    return (wire.packet_in(11, 1000, frame) + wire.barrier_reply(12)
            + wire.message(ECHO_REQUEST, 13, b"ping") + wire.barrier_reply(14)
            + wire.packet_in(15, 1001, frame) + b"\x04\x15\x00\x02\x00\x00\x00\x10"
            + wire.barrier_reply(17))


def _framework_calls(reads):
    datapath = _Datapath(reads)
    loop = controller.Datapath._recv_loop
    getattr(loop, "framework", loop)(datapath)   # the framework's, even once installed
    return datapath.ofp_brick.calls


def _our_calls(reads):
    datapath = _Datapath(reads)
    receive_loop.recv_loop(datapath, ofproto_parser, ofp_event, hub, DEAD_DISPATCHER)
    return datapath.ofp_brick.calls


def _cut(data, rng):
    reads, start = [], 0
    while start < len(data):
        size = rng.choice((1, 3, 8, 9, 40, 200, 5000))
        reads.append(data[start:start + size])
        start += size
    return reads


def test_every_message_is_dispatched_as_the_framework_does_whatever_the_reads():
    data = _stream()
    expected = _framework_calls([data])
    assert [c[1] for c in expected if c[0] != "handler"] == [11, 12, 13, 14, 15, 16, 17]
    assert ("handler", 13) in expected   # the framework's handler of the state ran
    assert _our_calls([data]) == expected
    rng = random.Random(5)
    for _ in range(50):
        assert _our_calls(_cut(data, rng)) == expected


def test_a_length_shorter_than_a_header_is_read_as_a_header_as_the_framework_does():
    data = b"\x04\x15\x00\x03\x00\x00\x00\x09" + wire.barrier_reply(10)
    assert _our_calls([data]) == _framework_calls([data])


def test_install_replaces_the_framework_loop_once():
    class Controller:
        class Datapath:
            def _recv_loop(self):
                raise AssertionError("the framework's loop ran")

    receive_loop.install(Controller, ofproto_parser, ofp_event, hub, DEAD_DISPATCHER)
    installed = Controller.Datapath._recv_loop
    receive_loop.install(Controller, ofproto_parser, ofp_event, hub, DEAD_DISPATCHER)
    assert Controller.Datapath._recv_loop is installed
    datapath = _Datapath([wire.barrier_reply(3)])
    installed(datapath)
    assert datapath.ofp_brick.calls == [("EventOFPBarrierReply", 3, MAIN_DISPATCHER)]
    assert datapath.socket.closed   # as the framework's loop, once the switch is gone
