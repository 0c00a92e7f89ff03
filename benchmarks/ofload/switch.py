"""One emulated OpenFlow 1.3 switch on a TCP connection to the controller.

It answers what a controller asks of a fresh switch (hello, features, echo,
config, port and switch descriptions, empty flow and meter statistics,
barriers), counts what the controller sends, delivers LLDP packet-outs to the linked
emulated switch as packet-ins (so the controller discovers links; there is no
data plane, other frames are only counted), and hands
flow-mods, meter-mods, packet-outs and barriers to an observer.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Dict, Optional, Protocol

from benchmarks.ofload import wire
from benchmarks.ofload.topology import SwitchPlan

OFPP_MAX = 0xFFFFFF00
LLDP_ETHERTYPE = b"\x88\xcc"


class Observer(Protocol):
    """What the load driver is told about each switch's traffic."""

    def flow_mod(self, switch: "EmulatedSwitch", data: bytes, offset: int,
                 length: int) -> None: ...
    def meter_mod(self, switch: "EmulatedSwitch", msg: bytes) -> None: ...
    def packet_out(self, switch: "EmulatedSwitch", msg: bytes) -> None: ...
    def barrier(self, switch: "EmulatedSwitch") -> None: ...


class Counters:
    """Messages one switch received from, or sent to, the controller."""

    __slots__ = ("flow_mods", "meter_mods", "packet_outs", "barriers", "packet_ins",
                 "probes_delivered", "other")

    def __init__(self) -> None:
        self.flow_mods = self.meter_mods = self.packet_outs = self.barriers = 0
        self.packet_ins = self.probes_delivered = self.other = 0

    def as_dict(self) -> dict:
        """The counters by name."""
        return {name: getattr(self, name) for name in self.__slots__}


class EmulatedSwitch(asyncio.Protocol):
    """A switch: its plan, the connection, its counters."""

    def __init__(self, plan: SwitchPlan, observer: Observer,
                 deliver: Callable[[int, int, bytes], None]) -> None:
        self.plan = plan
        self.dpid = plan.dpid
        self.observer = observer
        self._deliver = deliver
        self.counters = Counters()
        self.transport: Optional[asyncio.Transport] = None
        self._buffer = bytearray()
        self._xid = 0
        self.in_main = asyncio.get_event_loop().create_future()   # port desc answered
        self.synced = asyncio.get_event_loop().create_future()    # meter stats answered
        self.closed = asyncio.get_event_loop().create_future()
        self._handlers: Dict[int, Callable[[bytes, int], None]] = {
            wire.HELLO: self._ignore,
            wire.ECHO_REQUEST: self._echo,
            wire.FEATURES_REQUEST: self._features,
            wire.GET_CONFIG_REQUEST: self._get_config,
            wire.SET_CONFIG: self._ignore,
            wire.MULTIPART_REQUEST: self._multipart,
            wire.BARRIER_REQUEST: self._barrier,
            wire.METER_MOD: self._meter_mod,
            wire.PACKET_OUT: self._packet_out,
            wire.ROLE_REQUEST: self._role,
        }
        self._port_desc = b"".join(
            wire.port_body(port, (0x0E0000000000 | (self.dpid & 0xFFFFFF) << 8 | port & 0xFF)
                           .to_bytes(6, "big"), f"{plan.name}-p{port}")
            for port in plan.ports)
        self._desc = wire.desc_body(plan.dp_desc)

    # -- connection ---------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(wire.hello(self.next_xid()))

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        bounds, used = wire.message_bounds(data)
        if used < len(data):
            self._buffer += data[used:]
        handlers, counters, observer = self._handlers, self.counters, self.observer
        for offset, length in bounds:
            msg_type = data[offset + 1]
            if msg_type == wire.FLOW_MOD:   # most of the traffic: read in place
                counters.flow_mods += 1
                observer.flow_mod(self, data, offset, length)
                continue
            handler = handlers.get(msg_type)
            if handler is None:
                counters.other += 1
            else:
                handler(data[offset:offset + length],
                        int.from_bytes(data[offset + 4:offset + 8], "big"))

    def next_xid(self) -> int:
        """A fresh transaction id for a message this switch starts."""
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        return self._xid

    def send(self, data: bytes) -> None:
        """Write bytes to the controller."""
        self.transport.write(data)

    def packet_in(self, in_port: int, frame: bytes) -> None:
        """Send a table-miss PACKET_IN (slow path; the driver pre-encodes its own)."""
        self.counters.packet_ins += 1
        self.transport.write(wire.packet_in(self.next_xid(), in_port, frame))

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()

    # -- handlers -----------------------------------------------------------
    def _ignore(self, msg: bytes, xid: int) -> None:
        pass

    def _echo(self, msg: bytes, xid: int) -> None:
        self.transport.write(wire.echo_reply(msg))

    def _features(self, msg: bytes, xid: int) -> None:
        self.transport.write(wire.features_reply(xid, self.dpid))

    def _get_config(self, msg: bytes, xid: int) -> None:
        self.transport.write(wire.get_config_reply(xid))

    def _role(self, msg: bytes, xid: int) -> None:
        self.transport.write(wire.role_reply(msg))

    def _multipart(self, msg: bytes, xid: int) -> None:
        mp_type = wire.read_multipart_type(msg)
        if mp_type == wire.MP_PORT_DESC:
            self.transport.write(wire.multipart_reply(xid, mp_type, self._port_desc))
            if not self.in_main.done():
                self.in_main.set_result(True)
        elif mp_type == wire.MP_DESC:
            self.transport.write(wire.multipart_reply(xid, mp_type, self._desc))
        else:   # flow, meter config and the rest: a fresh switch holds nothing
            self.transport.write(wire.multipart_reply(xid, mp_type))
            if mp_type == wire.MP_METER_CONFIG and not self.synced.done():
                self.synced.set_result(True)

    def _barrier(self, msg: bytes, xid: int) -> None:
        self.transport.write(wire.barrier_reply(xid))
        self.counters.barriers += 1
        self.observer.barrier(self)

    def _meter_mod(self, msg: bytes, xid: int) -> None:
        self.counters.meter_mods += 1
        self.observer.meter_mod(self, msg)

    def _packet_out(self, msg: bytes, xid: int) -> None:
        self.counters.packet_outs += 1
        self.observer.packet_out(self, msg)
        if _is_probe(msg):
            _in_port, outputs, frame = wire.read_packet_out(msg)
            for port in outputs:
                if port < OFPP_MAX:
                    self._deliver(self.dpid, port, frame)


def _is_probe(msg: bytes) -> bool:
    """True when a PACKET_OUT carries an LLDP frame (only those cross emulated links)."""
    actions_len = int.from_bytes(msg[16:18], "big")
    ethertype_at = 24 + actions_len + 12
    return msg[ethertype_at:ethertype_at + 2] == LLDP_ETHERTYPE
