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


class ManualTurn:
    """Stands for hub.spawn: the flush runs when the test ends the loop's turn."""

    def __init__(self):
        self.scheduled = []

    def __call__(self, flush):
        self.scheduled.append(flush)

    def end(self):
        scheduled, self.scheduled = self.scheduled, []
        for flush in scheduled:
            flush()


def _vm_plan(port, dpids=(1, 2)):
    plan = Plan()
    plan.packet_outs.append(PacketOut(1, port, bytes([port]) * 60))
    for dpid in dpids:
        plan.for_switch(dpid).add(flow(dpid, 0, 100, make_match(in_port=port),
                                       0xD910000000000000 + port))
    return plan


def test_plans_of_one_turn_share_one_write_and_one_barrier_per_switch():
    datapaths = {1: RecordingDatapath(), 2: RecordingDatapath()}
    writes = {1: 0, 2: 0}
    for dpid, datapath in datapaths.items():
        send = datapath.send
        datapath.send = lambda data, send=send, dpid=dpid: (
            writes.__setitem__(dpid, writes[dpid] + 1), send(data))
    turn, confirmed = ManualTurn(), []
    sender = PlanSender(datapaths, logging.getLogger("test"), schedule=turn)
    for port in (1, 2, 3):
        sender.send(_vm_plan(port), on_confirmed=lambda port=port: confirmed.append(port))
    assert all(not d.sent for d in datapaths.values()) and len(turn.scheduled) == 1
    turn.end()
    assert writes == {1: 1, 2: 1}
    for datapath in datapaths.values():
        kinds = [kind for kind, _, _ in datapath.sent]
        assert kinds == [OFPT_FLOW_MOD] * 3 + [OFPT_BARRIER_REQUEST]
        xids = [xid for _, xid, _ in datapath.sent]
        assert len(set(xids)) == len(xids)   # every message its own transaction id
    sender.barrier_reply(1, datapaths[1].sent[-1][1])
    turn.end()
    assert confirmed == [] and [k for k, _, _ in datapaths[1].sent][4:] == []
    sender.barrier_reply(2, datapaths[2].sent[-1][1])
    assert confirmed == [1, 2, 3]   # one reply per switch confirms the whole turn
    turn.end()
    outs = [data for kind, _, data in datapaths[1].sent if kind == OFPT_PACKET_OUT]
    assert [out[-1] for out in outs] == [1, 2, 3]


def test_a_disconnect_releases_the_plans_waiting_for_that_switch():
    datapaths = {1: RecordingDatapath(), 2: RecordingDatapath()}
    turn, confirmed = ManualTurn(), []
    sender = PlanSender(datapaths, logging.getLogger("test"), schedule=turn)
    sender.send(_vm_plan(1), on_confirmed=lambda: confirmed.append(1))
    turn.end()
    sender.barrier_reply(1, datapaths[1].sent[-1][1])
    del datapaths[2]
    sender.forget(2)
    turn.end()
    assert confirmed == [1]
    # not yet written when the switch went: the plan is not held back by it
    sender.send(_vm_plan(2, dpids=(1,)), on_confirmed=lambda: confirmed.append(2))
    sender.send(_vm_plan(3, dpids=(1,)), on_confirmed=lambda: confirmed.append(3))
    turn.end()
    sender.barrier_reply(1, datapaths[1].sent[-1][1])
    assert confirmed == [1, 2, 3]


def test_messages_keep_their_order_across_the_plans_of_a_turn():
    datapath = RecordingDatapath()
    turn = ManualTurn()
    sender = PlanSender({1: datapath}, logging.getLogger("test"), schedule=turn)
    first, second = Plan(), Plan()
    spec = flow(1, 4, 100, make_match(in_port=1), 0xD9F0000000000000)
    first.for_switch(1).add(spec)
    second.for_switch(1).delete(spec)
    sender.send(first)
    sender.send(second)
    turn.end()
    commands = [data[25] for kind, _, data in datapath.sent if kind == OFPT_FLOW_MOD]
    assert commands == [0, 4]   # OFPFC_ADD, then OFPFC_DELETE_STRICT


class YieldingDatapath(RecordingDatapath):
    """A switch connection whose first write lets other green threads run once it is
    queued (Ryu's ``Datapath.send`` waits while the connection's queue is full)."""

    def __init__(self):
        super().__init__()
        self.meanwhile = None

    def send(self, data: bytes) -> None:
        super().send(data)
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()


def test_a_plan_sent_while_a_write_waits_never_overtakes_an_earlier_one_on_any_switch():
    """The turn's flush runs in a green thread of its own: while one of its writes
    waits, the app's loop goes on and a later turn is flushed. On every switch the
    earlier plan's messages must still come first."""
    datapaths = {1: YieldingDatapath(), 2: YieldingDatapath()}
    turn = ManualTurn()
    sender = PlanSender(datapaths, logging.getLogger("test"), schedule=turn)
    sender.send(_vm_plan(1))

    def next_turn():
        sender.send(_vm_plan(2))
        turn.end()

    datapaths[1].meanwhile = next_turn
    turn.end()
    turn.end()
    for dpid, datapath in datapaths.items():
        cookies = [int.from_bytes(data[8:16], "big") & 0xFF
                   for kind, _, data in datapath.sent if kind == OFPT_FLOW_MOD]
        assert cookies == [1, 2], (dpid, cookies)   # the plans' own cookies, in order


def test_a_turn_is_stamped_with_the_datapath_counter_s_next_ids_across_the_wrap():
    datapath = RecordingDatapath()
    datapath.xid = 0xFFFFFFFE
    sender = PlanSender({1: datapath}, logging.getLogger("test"))
    plan = _plan()
    plan.for_switch(1).add(flow(1, 4, 90, make_match(in_port=2), 0xD9F0000000000000))
    sender.send(plan)
    assert [xid for _, xid, _ in datapath.sent] == [0xFFFFFFFF, 0, 1]
    assert [kind for kind, _, _ in datapath.sent] == [OFPT_FLOW_MOD, OFPT_FLOW_MOD,
                                                      OFPT_BARRIER_REQUEST]
    assert datapath.xid == 1
    sender.barrier_reply(1, 1)      # the barrier's id is the one awaited
    assert not sender._batches


class _Events:
    def __init__(self, waiting):
        self.waiting = waiting

    def empty(self):
        return not self.waiting


def test_the_app_writes_a_lone_plan_at_once_and_batches_behind_queued_events(monkeypatch):
    from ryu_apps import provisioner
    spawned, flushed = [], []
    monkeypatch.setattr(provisioner.hub, "spawn", spawned.append)
    app = type("App", (), {"events": _Events(0)})()
    provisioner.DynprovProvisioner._schedule_flush(app, lambda: flushed.append("now"))
    assert flushed == ["now"] and spawned == []
    app.events = _Events(3)          # packet-ins wait: they join the turn's writes
    later = lambda: flushed.append("later")   # noqa: E731
    provisioner.DynprovProvisioner._schedule_flush(app, later)
    assert flushed == ["now"] and spawned == [later]
