"""Send a plan to the switches and release its packet-outs once it is confirmed.

:class:`PlanSender` talks to the switches; :class:`Dispatcher` is what sending
a plan means to the app: once every switch confirmed it, its VMs are active;
its messages to other network devices are delivered, and their plans sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Protocol, Set, Tuple

from ryu_apps.app import openflow_bytes
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER, OFPP_TABLE


@dataclass
class _Batch:
    """Barriers still awaited before a plan's packet-outs may be sent."""

    waiting: Set[Tuple[int, int]] = field(default_factory=set)
    packet_outs: List[PacketOut] = field(default_factory=list)
    on_confirmed: Callable[[], None] | None = None


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


class PlanSender:
    """Flow-mods and meter-mods per switch, a barrier each; packet-outs after all.

    A switch's part of a plan goes out as one write: its messages, encoded once
    per spec, each with its own transaction id, then the barrier.
    """

    def __init__(self, datapaths: Mapping[int, Datapath], logger) -> None:
        self.datapaths = datapaths
        self.logger = logger
        self._batches: Dict[Tuple[int, int], _Batch] = {}

    def send(self, plan: Plan, on_confirmed: Callable[[], None] | None = None) -> None:
        """Send the plan; ``on_confirmed`` runs when every switch has applied it."""
        for note in plan.notes:
            self.logger.info("%s", note)
        for warning in plan.warnings:
            self.logger.warning("%s", warning)
        now = [out for out in plan.packet_outs if out.at_once]
        if now:
            self._send_packet_outs(now)
        batch = _Batch(packet_outs=[out for out in plan.packet_outs if not out.at_once],
                       on_confirmed=on_confirmed)
        for dpid, changes in plan.changes.items():
            datapath = self.datapaths.get(dpid)
            if datapath is None or not changes:
                continue  # a disconnected switch is reconciled when it returns
            chunks = [openflow_bytes.with_xid(message, next_xid(datapath))
                      for message in openflow_bytes.encoded_messages(changes)]
            xid = next_xid(datapath)
            chunks.append(openflow_bytes.with_xid(_BARRIER, xid))
            datapath.send(b"".join(chunks))
            batch.waiting.add((dpid, xid))
            self._batches[(dpid, xid)] = batch
        if not batch.waiting:
            self._release(batch)

    def barrier_reply(self, dpid: int, xid: int) -> None:
        """A switch confirmed everything sent before the barrier ``xid``."""
        key = (dpid, xid)
        batch = self._batches.pop(key, None)
        if batch is None:
            return
        batch.waiting.discard(key)
        if not batch.waiting:
            self._release(batch)

    def forget(self, dpid: int) -> None:
        """A switch disconnected: stop waiting for its barriers."""
        for key in [k for k in self._batches if k[0] == dpid]:
            self.barrier_reply(*key)

    def _release(self, batch: _Batch) -> None:
        self._send_packet_outs(batch.packet_outs)
        if batch.on_confirmed is not None:
            batch.on_confirmed()

    def _send_packet_outs(self, packet_outs: List[PacketOut]) -> None:
        for out in packet_outs:
            datapath = self.datapaths.get(out.dpid)
            if datapath is not None:
                encode = openflow_bytes.encoded_packet_out
                message = (encode(out.in_port, OFPP_TABLE, out.data) if out.out_port is None
                           else encode(OFPP_CONTROLLER, out.out_port, out.data))
                datapath.send(openflow_bytes.with_xid(message, next_xid(datapath)))


class Dispatcher:
    """Sends the engine's plans for the app (in its event loop)."""

    def __init__(self, sender: PlanSender, engine, bus, times,
                 store: Callable[[], Any]) -> None:
        self.sender, self.engine, self.bus, self.times = sender, engine, bus, times
        self._store = store   # the store's sync, once attached (None without a store)

    def send(self, plan: Plan, now: float,
             on_confirmed: Callable[[], None] | None = None) -> None:
        """Send ``plan``; once every switch applied it, mark its VMs active (noting the
        time) and run ``on_confirmed``. Claim new VMs (store mode) and deliver the
        plan's device messages, sending what their reactions planned."""
        confirms = list(plan.confirms)

        def confirmed() -> None:
            self.times.confirmed(confirms, time.monotonic_ns())
            self.engine.confirm(confirms)
            if on_confirmed is not None:
                on_confirmed()

        self.sender.send(plan, on_confirmed=confirmed)
        store = self._store()
        if store is not None:
            store.bindings_changed()   # claims and releases follow every plan
        for message in plan.messages:
            self.send(self.bus.deliver(message, now), now)
