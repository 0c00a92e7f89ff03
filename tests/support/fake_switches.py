"""A tiny OpenFlow 1.3 pipeline simulator for testing plans without a switch.

Holds the flow tables a sequence of plans produces on each switch, applying
adds and strict deletes like a switch would, and traces a packet through the
tables and across links, reporting where copies of it leave the fabric.
Supports exactly the match fields and actions the core emits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Set, Tuple

from ryu_apps.core.fabric import Fabric, PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    OFPVID_PRESENT,
    ApplyActions,
    FlowSpec,
    GotoTable,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetField,
)


@dataclass(frozen=True)
class Packet:
    """The header fields the simulator looks at."""

    eth_src: str
    eth_dst: str
    eth_type: int = 0x0800
    vlan_vid: int = 0  # 0: untagged; else OFPVID_PRESENT | vid


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def _field_matches(name: str, expected, packet: Packet, in_port: int) -> bool:
    if name == "in_port":
        return in_port == expected
    actual = getattr(packet, name)
    if isinstance(expected, tuple):
        value, mask = expected
        if name.startswith("eth_"):
            return _mac_int(actual) & _mac_int(mask) == _mac_int(value) & _mac_int(mask)
        return actual & mask == value & mask
    if name.startswith("eth_") and name != "eth_type":
        return actual.lower() == expected.lower()
    return actual == expected


class FakeSwitches:
    """Flow tables of every switch, fed by plans."""

    def __init__(self) -> None:
        self.tables: Dict[int, Dict[tuple, FlowSpec]] = {}
        self.flow_mods = 0

    def apply(self, plan: Plan) -> None:
        """Apply a plan's adds and deletes, as a switch would."""
        for dpid, changes in plan.changes.items():
            table = self.tables.setdefault(dpid, {})
            for spec in changes.adds:
                table[spec.key] = spec
                self.flow_mods += 1
            for spec in changes.deletes:
                if table.get(spec.key) is not None and table[spec.key].cookie == spec.cookie:
                    del table[spec.key]
                self.flow_mods += 1

    def flows(self, dpid: int) -> Set[FlowSpec]:
        """Flows installed on a switch."""
        return set(self.tables.get(dpid, {}).values())

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
                if best is None or spec.priority > best.priority:
                    best = spec
        return best

    def run_pipeline(self, dpid: int, in_port: int,
                     packet: Packet) -> List[Tuple[int, Packet]]:
        """(out port, packet as sent) for every copy the switch emits."""
        outputs: List[Tuple[int, Packet]] = []
        table_id = 0
        while True:
            spec = self.lookup(dpid, table_id, packet, in_port)
            if spec is None:
                return outputs
            next_table = None
            for instruction in spec.instructions:
                if isinstance(instruction, Meter):
                    continue
                if isinstance(instruction, GotoTable):
                    next_table = instruction.table_id
                elif isinstance(instruction, ApplyActions):
                    packet = self._apply_actions(instruction.actions, packet,
                                                 in_port, outputs)
            if next_table is None:
                return outputs
            table_id = next_table

    @staticmethod
    def _apply_actions(actions, packet: Packet, in_port: int, outputs) -> Packet:
        for action in actions:
            if isinstance(action, PushVlan):
                packet = replace(packet, vlan_vid=OFPVID_PRESENT)
            elif isinstance(action, PopVlan):
                packet = replace(packet, vlan_vid=0)
            elif isinstance(action, SetField):
                packet = replace(packet, **{action.name: action.value})
            elif isinstance(action, Output) and action.port != in_port:
                outputs.append((action.port, packet))
        return packet

    def trace(self, fabric: Fabric, dpid: int, in_port: int, packet: Packet,
              max_hops: int = 32) -> List[Tuple[int, int, Packet]]:
        """Follow a packet across links; (dpid, port, packet) where copies leave.

        Copies sent to the controller are reported with port OFPP_CONTROLLER.
        Raises AssertionError on a forwarding loop.
        """
        delivered: List[Tuple[int, int, Packet]] = []
        frontier = [(dpid, in_port, packet, 0)]
        while frontier:
            here, port, pkt, hops = frontier.pop()
            assert hops <= max_hops, "forwarding loop"
            for out_port, out_pkt in self.run_pipeline(here, port, pkt):
                peer = fabric.peer(PortRef(here, out_port))
                if peer is None or out_port == OFPP_CONTROLLER:
                    delivered.append((here, out_port, out_pkt))
                else:
                    frontier.append((peer.dpid, peer.port, out_pkt, hops + 1))
        return delivered
