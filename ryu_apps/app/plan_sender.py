"""Send plans to the switches and release their packet-outs once they are confirmed.

:class:`PlanSender` talks to the switches; :class:`Dispatcher` is what sending
a plan means to the app: once every switch confirmed it, its VMs are active;
its messages to other network devices are delivered, and their plans sent.

Plans sent in one turn of the app's event loop (the packet-ins that arrived
together) share their writes: each switch gets its messages of every plan of
the turn, in order, as one write ending in one barrier, and that barrier's
reply confirms all of them. Without a scheduler (tests, tools) every plan is
written at once, as its own turn.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Set, Tuple

from ryu_apps.app import openflow_bytes, prerendered
from ryu_apps.app.state_changes import StateChanges
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER, OFPP_TABLE

#: Plans held for one turn at most; more are written at once (a bound on latency
#: and memory when the loop never runs dry).
MAX_PLANS_PER_TURN = 256


@dataclass
class _Batch:
    """Barriers still awaited before a plan's packet-outs may be sent."""

    waiting: Set[Tuple[int, int]] = field(default_factory=set)
    packet_outs: List[PacketOut] = field(default_factory=list)
    on_confirmed: Callable[[], None] | None = None


@dataclass
class _Pending:
    """One switch's part of the turn: encoded messages, and the plans its barrier confirms."""

    chunks: List[bytes] = field(default_factory=list)
    batches: List[_Batch] = field(default_factory=list)


_BARRIER = openflow_bytes.barrier_request()


class Datapath(Protocol):
    """What the sender uses of a switch connection (Ryu's ``Datapath``)."""

    xid: int

    def send(self, buf: bytes) -> Any:
        """Write already encoded messages."""


def next_xid(datapath: Datapath) -> int:
    """A fresh transaction id from the datapath's own counter (as Ryu's set_xid)."""
    datapath.xid = (datapath.xid + 1) & 0xFFFFFFFF
    return datapath.xid


_XID = struct.Struct("!I")


def stamped(messages: List[bytes], datapath: Datapath) -> Tuple[bytes, int]:
    """``messages`` as one buffer, each with the next transaction id of the datapath's
    counter (as :func:`next_xid` one by one); the buffer and the last id given."""
    buf = bytearray().join(messages)
    xid, offset, pack = datapath.xid, 4, _XID.pack_into
    for message in messages:
        xid = (xid + 1) & 0xFFFFFFFF
        pack(buf, offset, xid)
        offset += len(message)
    datapath.xid = xid
    return bytes(buf), xid


class PlanSender:
    """Flow-mods and meter-mods per switch, a barrier each; packet-outs after all.

    ``schedule(flush)`` (the app: ``hub.spawn``) runs ``flush`` when the event loop
    has handled what was queued; plans sent before then share one write and one
    barrier per switch. ``schedule=None``: each plan is written at once.
    """

    def __init__(self, datapaths: Mapping[int, Datapath], logger,
                 schedule: Optional[Callable[[Callable[[], None]], Any]] = None) -> None:
        self.datapaths = datapaths
        self.logger = logger
        self.schedule = schedule
        self._batches: Dict[Tuple[int, int], List[_Batch]] = {}
        self._pending: Dict[int, _Pending] = {}
        self._orphans: List[_Batch] = []     # plans of the turn with nothing to confirm
        self._held = 0                       # plans held in the turn
        self._flush_scheduled = False
        self._flushing = False               # a flush is writing (one at a time)

    def send(self, plan: Plan, on_confirmed: Callable[[], None] | None = None) -> None:
        """Send the plan; ``on_confirmed`` runs when every switch has applied it."""
        for note in plan.notes:
            self.logger.info("%s", note)
        for detail in plan.details:
            self.logger.debug("%s", detail)
        for warning in plan.warnings:
            self.logger.warning("%s", warning)
        self._queue_packet_outs([out for out in plan.packet_outs if out.at_once])
        batch = _Batch(packet_outs=[out for out in plan.packet_outs if not out.at_once],
                       on_confirmed=on_confirmed)
        waits = False
        for dpid, changes in plan.changes.items():
            if not changes or dpid not in self.datapaths:
                continue  # a disconnected switch is reconciled when it returns
            pending = self._pending_for(dpid)
            pending.chunks.extend(prerendered.messages(changes))
            pending.batches.append(batch)
            waits = True
        if not waits:
            self._orphans.append(batch)
        self._held += 1
        self._turn_end()

    def flush(self) -> None:
        """Write what the turn holds: per switch its messages and one barrier.

        One flush at a time: a write may wait (a switch connection's queue is
        full) and let the app's loop run on; what it sends meanwhile, and the
        packet-outs this flush releases, are written by the flush under way once
        its own writes are done, so no plan's message overtakes an earlier
        plan's on any switch. A flush asked for meanwhile returns at once.
        """
        self._flush_scheduled = False
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._pending or self._orphans:
                self._write_turn()
        finally:
            self._flushing = False

    def _write_turn(self) -> None:
        self._held = 0
        pending, self._pending = self._pending, {}
        orphans, self._orphans = self._orphans, []
        for dpid, part in pending.items():
            datapath = self.datapaths.get(dpid)
            if datapath is None:
                orphans.extend(part.batches)   # gone meanwhile: reconciled when it returns
                continue
            if part.batches:
                part.chunks.append(_BARRIER)
            data, xid = stamped(part.chunks, datapath)
            if part.batches:   # the barrier is the last message: ``xid`` is its id
                for batch in part.batches:
                    batch.waiting.add((dpid, xid))
                self._batches[(dpid, xid)] = part.batches
            datapath.send(data)
        for batch in orphans:
            if not batch.waiting:
                self._release(batch)

    def barrier_reply(self, dpid: int, xid: int) -> None:
        """A switch confirmed everything sent before the barrier ``xid``."""
        key = (dpid, xid)
        for batch in self._batches.pop(key, ()):
            batch.waiting.discard(key)
            if not batch.waiting:
                self._release(batch)
        self._turn_end()

    def forget(self, dpid: int) -> None:
        """A switch disconnected: stop waiting for its barriers, drop what it was owed."""
        part = self._pending.pop(dpid, None)
        if part is not None:
            self._orphans.extend(part.batches)
        for key in [k for k in self._batches if k[0] == dpid]:
            self.barrier_reply(*key)
        self._turn_end()

    def _pending_for(self, dpid: int) -> _Pending:
        part = self._pending.get(dpid)
        if part is None:
            part = self._pending[dpid] = _Pending()
        return part

    def _turn_end(self) -> None:
        """Flush now (no scheduler, or the turn holds too much) or once the turn ends."""
        if not self._pending and not self._orphans:
            return
        if self.schedule is None or self._held >= MAX_PLANS_PER_TURN:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.schedule(self.flush)

    def _release(self, batch: _Batch) -> None:
        self._queue_packet_outs(batch.packet_outs)
        if batch.on_confirmed is not None:
            batch.on_confirmed()

    def _queue_packet_outs(self, packet_outs: List[PacketOut]) -> None:
        encode = openflow_bytes.encoded_packet_out
        for out in packet_outs:
            if out.dpid not in self.datapaths:
                continue
            message = (encode(out.in_port, OFPP_TABLE, out.data) if out.out_port is None
                       else encode(OFPP_CONTROLLER, out.out_port, out.data))
            self._pending_for(out.dpid).chunks.append(message)


class Dispatcher:
    """Sends the engine's plans for the app (in its event loop)."""

    def __init__(self, sender: PlanSender, engine, bus, times,
                 store: Callable[[], Any], changes: Optional[StateChanges] = None) -> None:
        self.sender, self.engine, self.bus, self.times = sender, engine, bus, times
        self._store = store   # the store's sync, once attached (None without a store)
        self.changes = changes or StateChanges()   # told what each plan changed

    def send(self, plan: Plan, now: float,
             on_confirmed: Callable[[], None] | None = None) -> None:
        """Send ``plan`` and tell the state's observers what it changed; once every
        switch applied it, mark its VMs active (noting the time) and run
        ``on_confirmed``. Claim new VMs (store mode) and deliver the
        plan's device messages, sending what their reactions planned."""
        confirms = list(plan.confirms)

        def confirmed() -> None:
            self.times.confirmed(confirms, time.monotonic_ns())
            self.engine.confirm(confirms)
            self.changes.confirmed(confirms)
            if on_confirmed is not None:
                on_confirmed()

        self.sender.send(plan, on_confirmed=confirmed)
        self.changes.plan_sent(plan)
        store = self._store()
        if store is not None:
            store.bindings_changed()   # claims and releases follow every plan
        for message in plan.messages:
            self.send(self.bus.deliver(message, now), now)
