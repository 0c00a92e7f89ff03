"""A small OpenFlow 1.3 pipeline simulator for testing plans without a switch.

Holds the flow tables and meters a sequence of plans produces on each switch,
applying adds and strict deletes like a switch would, and traces a packet
through the tables (goto, write-metadata, resubmit) and across links,
reporting where copies of it leave the fabric. It understands exactly the
match fields and actions the core emits, and refuses (AssertionError) any flow
its table's contract (``ryu_apps.core.pipeline.CONTRACTS``) does not allow.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Set, Tuple

from ryu_apps.core.fabric import SHARED_FABRIC, Fabric, PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.pipeline import contract_violations
from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    OFPVID_PRESENT,
    ApplyActions,
    FlowSpec,
    GotoTable,
    Meter,
    MeterSpec,
    Output,
    PopVlan,
    PushVlan,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    Conntrack,
    Resubmit,
    SetField,
    WriteMetadata,
)

TCP_SYN, TCP_ACK = 0x02, 0x10


@dataclass(frozen=True)
class Packet:
    """The header fields the simulator looks at (None: header absent)."""

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


def tcp(src_mac, dst_mac, src_ip, dst_ip, dst_port, src_port=40000) -> Packet:
    """A TCP segment between two IPv4 hosts."""
    return Packet(src_mac, dst_mac, 0x0800, ip_proto=6, ipv4_src=src_ip, ipv4_dst=dst_ip,
                  tcp_src=src_port, tcp_dst=dst_port)


def _as_int(name: str, value) -> int:
    if (name.startswith("eth_") and name != "eth_type") or name in ("ipv6_nd_sll",
                                                                     "ipv6_nd_tll"):
        return int(value.replace(":", ""), 16)
    if name.startswith("ipv6_"):
        return int(ipaddress.IPv6Address(value))
    if name.startswith(("ipv4_", "arp_")):
        return int(ipaddress.IPv4Address(value))
    return int(value)


def _field_matches(name: str, expected, packet: Packet, in_port: int) -> bool:
    actual = in_port if name == "in_port" else getattr(packet, name)
    if actual is None:
        return False
    value, mask = expected if isinstance(expected, tuple) else (expected, None)
    actual_int, value_int = _as_int(name, actual), _as_int(name, value)
    if mask is None:
        return actual_int == value_int
    mask_int = _as_int(name, mask)
    return actual_int & mask_int == value_int & mask_int


def _kinds(spec: FlowSpec) -> Tuple[List[str], List[int], List[int]]:
    """(action kinds, goto tables, resubmit tables) of a flow."""
    actions: List[str] = []
    goto: List[int] = []
    resubmit: List[int] = []
    for instruction in spec.instructions:
        if isinstance(instruction, Meter):
            actions.append("meter")
        elif isinstance(instruction, WriteMetadata):
            actions.append("write_metadata")
        elif isinstance(instruction, GotoTable):
            goto.append(instruction.table_id)
        elif isinstance(instruction, ApplyActions):
            for action in instruction.actions:
                if isinstance(action, Resubmit):
                    resubmit.append(action.table_id)
                elif isinstance(action, Conntrack):
                    assert action.table in (None, spec.table_id), \
                        f"ct recirculates to table {action.table}, not its own: {spec}"
                    actions.append("ct_commit" if action.commit else "ct")
                elif isinstance(action, Output):
                    actions.append("controller" if action.port == OFPP_CONTROLLER
                                   else "output")
                elif isinstance(action, SetField):
                    actions.append(f"set:{action.name}")
                else:
                    actions.append({PushVlan: "push_vlan", PopVlan: "pop_vlan"}.get(
                        type(action), type(action).__name__))
    return actions, goto, resubmit


def check_contract(spec: FlowSpec) -> None:
    """Fail loudly when a flow breaks its table's contract."""
    actions, goto, resubmit = _kinds(spec)
    problems = contract_violations(spec.table_id, [name for name, _ in spec.match],
                                   actions, goto, resubmit)
    assert not problems, f"flow {spec} breaks its table's contract: {'; '.join(problems)}"


class FakeSwitches:
    """Flow tables and meters of every switch, fed by plans."""

    def __init__(self) -> None:
        self.tables: Dict[int, Dict[tuple, FlowSpec]] = {}
        self.meters: Dict[int, Dict[int, MeterSpec]] = {}
        #: switch -> (zone, original 5-tuple) -> whether a reply was seen
        self.conntrack: Dict[int, Dict[tuple, bool]] = {}

    def apply(self, plan: Plan) -> None:
        """Apply a plan's adds, then its deletes, as the app sends them."""
        for dpid, changes in plan.changes.items():
            table = self.tables.setdefault(dpid, {})
            meters = self.meters.setdefault(dpid, {})
            for spec in changes.adds:
                if isinstance(spec, MeterSpec):
                    meters[spec.meter_id] = spec
                else:
                    check_contract(spec)
                    table[spec.key] = spec
            for spec in changes.deletes:
                if isinstance(spec, MeterSpec):
                    meters.pop(spec.meter_id, None)
                elif table.get(spec.key) is not None and table[spec.key].cookie == spec.cookie:
                    del table[spec.key]

    def flows(self, dpid: int) -> Set[FlowSpec]:
        """Flows installed on a switch."""
        return set(self.tables.get(dpid, {}).values())

    def entries(self, dpid: int) -> Set:
        """Flows and meters installed on a switch."""
        return self.flows(dpid) | set(self.meters.get(dpid, {}).values())

    def all_flows(self) -> Set[FlowSpec]:
        """Every installed flow on every switch."""
        return {f for t in self.tables.values() for f in t.values()}

    def lookup(self, dpid: int, table_id: int, packet: Packet,
               in_port: int) -> Optional[FlowSpec]:
        """The highest-priority matching flow of one table."""
        best = None
        for spec in self.tables.get(dpid, {}).values():
            if spec.table_id != table_id:
                continue
            if all(_field_matches(n, v, packet, in_port) for n, v in spec.match):
                assert best is None or spec.priority != best.priority, \
                    f"ambiguous overlap at priority {spec.priority}: {spec} / {best}"
                if best is None or spec.priority > best.priority:
                    best = spec
        return best

    def run_pipeline(self, dpid: int, in_port: int, packet: Packet,
                     table_id: int = 0, depth: int = 0) -> Tuple[List[Tuple[int, Packet]], Packet]:
        """(out port, packet as sent) for every copy, and the packet at the end."""
        assert depth < 16, "resubmit loop"
        outputs: List[Tuple[int, Packet]] = []
        while True:
            spec = self.lookup(dpid, table_id, packet, in_port)
            if spec is None:
                return outputs, packet
            next_table = None
            for instruction in spec.instructions:
                if isinstance(instruction, Meter):
                    assert instruction.meter_id in self.meters.get(dpid, {}), \
                        f"flow uses missing meter {instruction.meter_id}"
                elif isinstance(instruction, GotoTable):
                    assert instruction.table_id > table_id, "goto must go forward"
                    next_table = instruction.table_id
                elif isinstance(instruction, WriteMetadata):
                    mask = instruction.mask
                    packet = replace(packet, metadata=(packet.metadata & ~mask)
                                     | (instruction.value & mask))
                elif isinstance(instruction, ApplyActions):
                    packet = self._apply_actions(dpid, instruction.actions, packet,
                                                 in_port, outputs, depth)
            if next_table is None:
                return outputs, packet
            table_id = next_table

    def _apply_actions(self, dpid, actions, packet: Packet, in_port: int, outputs,
                       depth: int) -> Packet:
        for action in actions:
            if isinstance(action, PushVlan):
                packet = replace(packet, vlan_vid=OFPVID_PRESENT)
            elif isinstance(action, PopVlan):
                packet = replace(packet, vlan_vid=0)
            elif isinstance(action, SetField):
                packet = replace(packet, **{action.name: action.value})
            elif isinstance(action, Resubmit):   # what the called tables change stays, as in OVS
                more, packet = self.run_pipeline(dpid, in_port, packet, action.table_id,
                                                 depth + 1)
                outputs.extend(more)
            elif isinstance(action, Conntrack):
                packet, recirculate = self._conntrack(dpid, action, packet)
                if recirculate:
                    more, packet = self.run_pipeline(dpid, in_port, packet, action.table,
                                                     depth + 1)
                    outputs.extend(more)
            elif isinstance(action, Output) and action.port != in_port:
                outputs.append((action.port, packet))
        return packet

    def _conntrack(self, dpid: int, action: Conntrack, packet: Packet) -> Tuple[Packet, bool]:
        """A small model of Open vSwitch's conntrack: connections by zone and 5-tuple;
        a packet of a committed connection's original direction is +new until a
        reply was seen, then +est; a reply is +est+rpl; an unknown SYN-ACK is
        +inv (like OVS, an unknown mid-stream segment may start a connection)."""
        table = self.conntrack.setdefault(dpid, {})
        forward = (action.zone,) + _five_tuple(packet)
        backward = (action.zone,) + _five_tuple(packet, swapped=True)
        if action.commit:
            assert packet.ct_state & CT_TRK, "ct(commit) of an untracked packet"
            if packet.ct_state & CT_NEW and forward not in table:
                table[forward] = False
            return packet, False
        if forward in table:
            state = CT_EST if table[forward] else CT_NEW
        elif backward in table:
            table[backward] = True
            state = CT_EST | CT_RPL
        elif packet.tcp_flags is not None and packet.tcp_flags & TCP_SYN \
                and packet.tcp_flags & TCP_ACK:
            state = CT_INV
        else:
            state = CT_NEW
        return replace(packet, ct_state=CT_TRK | state), action.table is not None

    def trace(self, fabric: Fabric, dpid: int, in_port: int, packet: Packet,
              max_hops: int = 32) -> List[Tuple[int, int, Packet]]:
        """Follow a packet across links; (dpid, port, packet) where copies leave.

        Copies sent to the controller are reported with port OFPP_CONTROLLER,
        copies sent out of a shared uplink (toward other processes' switches)
        with that port; the metadata of delivered copies is reset to 0 for easy
        comparison.
        """
        delivered: List[Tuple[int, int, Packet]] = []
        frontier = [(dpid, in_port, packet, 0)]
        while frontier:
            here, port, pkt, hops = frontier.pop()
            assert hops <= max_hops, "forwarding loop"
            outputs, _ = self.run_pipeline(here, port, replace(pkt, metadata=0, ct_state=0))
            for out_port, out_pkt in outputs:
                out_pkt = replace(out_pkt, metadata=0, ct_state=0)
                peer = fabric.peer(PortRef(here, out_port))
                if peer is None or out_port == OFPP_CONTROLLER or peer.dpid == SHARED_FABRIC:
                    delivered.append((here, out_port, out_pkt))
                else:
                    frontier.append((peer.dpid, peer.port, out_pkt, hops + 1))
        return delivered


def _five_tuple(packet: Packet, swapped: bool = False) -> tuple:
    """(source, destination, protocol, source port, destination port) of an IP packet."""
    src = packet.ipv4_src or packet.ipv6_src
    dst = packet.ipv4_dst or packet.ipv6_dst
    assert src is not None and dst is not None, f"ct of a packet without IP: {packet}"
    sport = packet.tcp_src if packet.tcp_src is not None else packet.udp_src
    dport = packet.tcp_dst if packet.tcp_dst is not None else packet.udp_dst
    if swapped:
        src, dst, sport, dport = dst, src, dport, sport
    return (src, dst, packet.ip_proto, sport, dport)
