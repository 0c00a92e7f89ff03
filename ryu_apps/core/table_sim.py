"""An OpenFlow 1.3 table model: which flow a packet matches, and where it goes (pure).

The one model of dynprov's pipeline semantics, shared by the policy trace
(:mod:`ryu_apps.core.trace`) and the unit tests' fake switches
(``tests/support/fake_switches.py``): a masked match over the fields the core
emits, the highest priority wins, instructions run in OpenFlow order (meter,
apply-actions, write-metadata, goto), a resubmit is a call that comes back
with what it changed (as in OVS), and a ``ct`` action consults a small model of
Open vSwitch's connection tracker (:class:`ConnectionTable`). :func:`run_tables`
records every flow a packet passed, so a trace can show each table and the flow that decided.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    OFPVID_PRESENT,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    ApplyActions,
    Conntrack,
    FlowSpec,
    GotoTable,
    Move,
    Output,
    OutputField,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    WriteMetadata,
)

#: Resubmits nested deeper than this are a loop.
MAX_DEPTH = 16
TCP_SYN, TCP_ACK = 0x02, 0x10


@dataclass(frozen=True)
class Packet:
    """The header fields the model looks at (None: header absent)."""

    eth_src: str
    eth_dst: str
    eth_type: int = 0x0800
    vlan_vid: int = 0  # 0: untagged; else OFPVID_PRESENT | vid
    ip_proto: Optional[int] = None
    ipv4_src: Optional[str] = None
    ipv4_dst: Optional[str] = None
    tcp_src: Optional[int] = None
    tcp_dst: Optional[int] = None
    udp_src: Optional[int] = None
    udp_dst: Optional[int] = None
    arp_spa: Optional[str] = None
    metadata: int = 0
    ipv6_src: Optional[str] = None
    ipv6_dst: Optional[str] = None
    icmpv4_type: Optional[int] = None
    icmpv4_code: Optional[int] = None
    icmpv6_type: Optional[int] = None
    icmpv6_code: Optional[int] = None
    ipv6_nd_target: Optional[str] = None
    ipv6_nd_sll: Optional[str] = None   # OpenFlow: 00:00:00:00:00:00 when the option is absent
    ipv6_nd_tll: Optional[str] = None
    ct_state: int = 0                   # set by a ct action that recirculates
    tcp_flags: Optional[int] = None     # None: an ordinary segment (the ct model)


class ConnectionTable:
    """A small model of Open vSwitch's connection tracker on one switch: connections
    by zone and 5-tuple. A packet of a committed connection's original direction is
    +new until a reply was seen, then +est; a reply is +est+rpl; an unknown SYN-ACK
    is +inv (like OVS, an unknown mid-stream segment may start a connection)."""

    def __init__(self) -> None:
        #: (zone, original 5-tuple) -> whether a reply was seen
        self.connections: Dict[tuple, bool] = {}

    def track(self, action: Conntrack, packet: Packet) -> Tuple[Packet, bool]:
        """The packet after ``action``, and whether it recirculates."""
        forward = (action.zone,) + five_tuple(packet)
        backward = (action.zone,) + five_tuple(packet, swapped=True)
        if action.commit:
            if not packet.ct_state & CT_TRK:
                raise ValueError(f"ct(commit) of an untracked packet: {packet}")
            if packet.ct_state & CT_NEW and forward not in self.connections:
                self.connections[forward] = False
            return packet, False
        if forward in self.connections:
            state = CT_EST if self.connections[forward] else CT_NEW
        elif backward in self.connections:
            self.connections[backward] = True
            state = CT_EST | CT_RPL
        elif packet.tcp_flags is not None and packet.tcp_flags & TCP_SYN \
                and packet.tcp_flags & TCP_ACK:
            state = CT_INV
        else:
            state = CT_NEW
        return replace(packet, ct_state=CT_TRK | state), action.table is not None


def five_tuple(packet: Packet, swapped: bool = False) -> tuple:
    """(source, destination, protocol, source port, destination port) of an IP packet."""
    src = packet.ipv4_src or packet.ipv6_src
    dst = packet.ipv4_dst or packet.ipv6_dst
    if src is None or dst is None:
        raise ValueError(f"ct of a packet without IP: {packet}")
    sport = packet.tcp_src if packet.tcp_src is not None else packet.udp_src
    dport = packet.tcp_dst if packet.tcp_dst is not None else packet.udp_dst
    if swapped:
        src, dst, sport, dport = dst, src, dport, sport
    return (src, dst, packet.ip_proto, sport, dport)


def as_int(name: str, value) -> int:
    """A match field's value (MAC, address or number) as an integer."""
    if (name.startswith("eth_") and name != "eth_type") or name in ("ipv6_nd_sll",
                                                                     "ipv6_nd_tll"):
        return int(value.replace(":", ""), 16)
    if name.startswith("ipv6_"):
        return int(ipaddress.IPv6Address(value))
    if name.startswith(("ipv4_", "arp_")):
        return int(ipaddress.IPv4Address(value))
    return int(value)


def field_matches(name: str, expected, packet: Packet, in_port: int) -> bool:
    """Whether one (possibly masked) match field holds for the packet."""
    actual = in_port if name == "in_port" else getattr(packet, name)
    if actual is None:
        return False
    value, mask = expected if isinstance(expected, tuple) else (expected, None)
    actual_int, value_int = as_int(name, actual), as_int(name, value)
    if mask is None:
        return actual_int == value_int
    mask_int = as_int(name, mask)
    return actual_int & mask_int == value_int & mask_int


def best_match(flows: Iterable[FlowSpec], table_id: int, packet: Packet,
               in_port: int) -> Optional[FlowSpec]:
    """The highest-priority flow of ``table_id`` that matches (ties: first found)."""
    best = None
    for spec in flows:
        if spec.table_id != table_id or (best is not None and spec.priority <= best.priority):
            continue
        if all(field_matches(n, v, packet, in_port) for n, v in spec.match):
            best = spec
    return best


@dataclass(frozen=True)
class Step:
    """One table a packet passed: the flow it matched (None: no flow, dropped there)."""

    table_id: int
    flow: Optional[FlowSpec]
    packet: Packet


Lookup = Callable[[int, Packet, int], Optional[FlowSpec]]


@dataclass
class Run:
    """What one switch did with a packet: the tables passed and the copies sent."""

    steps: List[Step]
    outputs: List[Tuple[int, Packet]]
    packet: Packet
    #: The switch's connection tracker (a fresh one when the caller keeps none).
    connections: ConnectionTable


def run_tables(lookup: Lookup, in_port: int, packet: Packet, table_id: int = 0,
               depth: int = 0, run: Optional[Run] = None,
               connections: Optional[ConnectionTable] = None) -> Run:
    """Send ``packet`` through one switch's tables from ``table_id``; ``lookup(table,
    packet, in_port)`` finds the flow a table matches; ``connections`` is the
    switch's connection tracker (kept by the caller across packets)."""
    if depth >= MAX_DEPTH:
        raise ValueError(f"resubmit loop: nested deeper than {MAX_DEPTH} in table {table_id}")
    run = run if run is not None else Run([], [], packet, connections or ConnectionTable())
    while True:
        spec = lookup(table_id, packet, in_port)
        run.steps.append(Step(table_id, spec, packet))
        if spec is None:
            break
        next_table = None
        for instruction in spec.instructions:
            if isinstance(instruction, GotoTable):
                if instruction.table_id <= table_id:
                    raise ValueError(f"goto from table {table_id} to {instruction.table_id} "
                                     "does not go forward")
                next_table = instruction.table_id
            elif isinstance(instruction, WriteMetadata):
                mask = instruction.mask
                packet = replace(packet, metadata=(packet.metadata & ~mask)
                                 | (instruction.value & mask))
            elif isinstance(instruction, ApplyActions):
                packet = _apply(lookup, instruction.actions, packet, in_port, run, depth)
        if next_table is None:
            break
        table_id = next_table
    run.packet = packet
    return run


def _apply(lookup: Lookup, actions, packet: Packet, in_port: int, run: Run,
           depth: int) -> Packet:
    for action in actions:
        if isinstance(action, PushVlan):
            packet = replace(packet, vlan_vid=OFPVID_PRESENT)
        elif isinstance(action, PopVlan):
            packet = replace(packet, vlan_vid=0)
        elif isinstance(action, SetField):
            packet = replace(packet, **{action.name: action.value})
        elif isinstance(action, Resubmit):   # what the called tables change stays, as in OVS
            packet = run_tables(lookup, in_port, packet, action.table_id, depth + 1,
                                run).packet
        elif isinstance(action, Conntrack):
            packet, recirculate = run.connections.track(action, packet)
            if recirculate and action.table is not None:   # ct(table=T): on in table T
                packet = run_tables(lookup, in_port, packet, action.table, depth + 1,
                                    run).packet
        elif isinstance(action, Move):
            packet = _move(action, packet)
        elif isinstance(action, Output) and action.port != in_port:
            run.outputs.append((action.port, packet))
        elif isinstance(action, OutputField):
            port = field_bits(action, packet)
            if port != in_port:
                run.outputs.append((port, packet))
    return packet


#: Neighbour-discovery link-layer fields: Open vSwitch rewrites one only where the
#: message carries that option (OpenFlow reads an absent one as all zeros).
_ND_OPTIONS = {"ipv6_nd_sll": 135, "ipv6_nd_tll": 136}
_NO_OPTION = "00:00:00:00:00:00"


def _move(action: Move, packet: Packet) -> Packet:
    """The packet after a whole-field copy (the model knows MAC fields and metadata)."""
    value = getattr(packet, action.src)
    option_of = _ND_OPTIONS.get(action.dst)
    if option_of is not None and (packet.icmpv6_type != option_of
                                  or getattr(packet, action.dst) in (None, _NO_OPTION)):
        return packet
    return replace(packet, **{action.dst: value})


def field_bits(action: OutputField, packet: Packet) -> int:
    """The port an output-from-field action reads."""
    value = as_int(action.field, getattr(packet, action.field))
    return (value >> action.start) & ((1 << action.n_bits) - 1)


def to_controller(port: int) -> bool:
    """Whether an output port is the controller."""
    return port == OFPP_CONTROLLER
