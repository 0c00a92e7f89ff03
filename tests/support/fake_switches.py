"""A small OpenFlow 1.3 pipeline simulator for testing plans without a switch.

Holds the flow tables and meters a sequence of plans produces on each switch,
applying adds and strict deletes like a switch would, and traces a packet
through the tables (goto, write-metadata, resubmit) and across links,
reporting where copies of it leave the fabric. It understands exactly the
match fields and actions the core emits, and refuses (AssertionError) any flow
its table's contract (``ryu_apps.core.pipeline.CONTRACTS``) does not allow.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Set, Tuple

from ryu_apps.core.fabric import SHARED_FABRIC, Fabric, PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.pipeline import contract_violations
from ryu_apps.core.table_sim import (  # noqa: F401  (TCP_* for the tests)
    TCP_ACK,
    TCP_SYN,
    ConnectionTable,
    Packet,
    field_matches,
    run_tables,
)
from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    ApplyActions,
    Conntrack,
    FlowSpec,
    GotoTable,
    Meter,
    MeterSpec,
    Move,
    Output,
    OutputField,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    WriteMetadata,
)


def tcp(src_mac, dst_mac, src_ip, dst_ip, dst_port, src_port=40000) -> Packet:
    """A TCP segment between two IPv4 hosts."""
    return Packet(src_mac, dst_mac, 0x0800, ip_proto=6, ipv4_src=src_ip, ipv4_dst=dst_ip,
                  tcp_src=src_port, tcp_dst=dst_port)


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
                elif isinstance(action, Output):
                    actions.append("controller" if action.port == OFPP_CONTROLLER
                                   else "output")
                elif isinstance(action, SetField):
                    actions.append(f"set:{action.name}")
                elif isinstance(action, Move):
                    actions.append(f"move:{action.dst}")
                elif isinstance(action, OutputField):
                    actions.append("output_field")
                elif isinstance(action, Conntrack):
                    assert action.table in (None, spec.table_id), \
                        f"ct recirculates to table {action.table}, not its own: {spec}"
                    actions.append("ct_commit" if action.commit else "ct")
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
        #: switch -> its connection tracker (the shared model's)
        self.conntrack: Dict[int, ConnectionTable] = {}

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
            if all(field_matches(n, v, packet, in_port) for n, v in spec.match):
                assert best is None or spec.priority != best.priority, \
                    f"ambiguous overlap at priority {spec.priority}: {spec} / {best}"
                if best is None or spec.priority > best.priority:
                    best = spec
        return best

    def run_pipeline(self, dpid: int, in_port: int, packet: Packet, table_id: int = 0,
                     depth: int = 0, connections: Optional[Dict[int, ConnectionTable]] = None
                     ) -> Tuple[List[Tuple[int, Packet]], Packet]:
        """(out port, packet as sent) for every copy, and the packet at the end (the
        shared model :func:`ryu_apps.core.table_sim.run_tables`, on these tables);
        ``connections``: the switches' connection trackers (default: the ones these
        switches keep across packets)."""
        trackers = self.conntrack if connections is None else connections
        def lookup(table: int, pkt: Packet, port: int) -> Optional[FlowSpec]:
            spec = self.lookup(dpid, table, pkt, port)
            for instruction in spec.instructions if spec is not None else ():
                if isinstance(instruction, Meter):
                    assert instruction.meter_id in self.meters.get(dpid, {}), \
                        f"flow uses missing meter {instruction.meter_id}"
            return spec
        try:
            run = run_tables(lookup, in_port, packet, table_id, depth,
                             connections=trackers.setdefault(dpid, ConnectionTable()))
        except ValueError as error:   # a resubmit loop or a backward goto
            raise AssertionError(str(error)) from None
        return run.outputs, run.packet

    def trace(self, fabric: Fabric, dpid: int, in_port: int, packet: Packet,
              max_hops: int = 32, unsolicited: bool = False) -> List[Tuple[int, int, Packet]]:
        """Follow a packet across links; (dpid, port, packet) where copies leave.

        ``unsolicited``: trace it through empty connection trackers (as the first packet
        of its connection, whatever earlier traces committed) and leave the switches'
        own trackers as they were.

        Copies sent to the controller are reported with port OFPP_CONTROLLER,
        copies sent out of a shared uplink (toward other processes' switches)
        with that port; the metadata of delivered copies is reset to 0 for easy
        comparison.
        """
        delivered: List[Tuple[int, int, Packet]] = []
        trackers: Optional[Dict[int, ConnectionTable]] = {} if unsolicited else None
        frontier = [(dpid, in_port, packet, 0)]
        while frontier:
            here, port, pkt, hops = frontier.pop()
            assert hops <= max_hops, "forwarding loop"
            outputs, _ = self.run_pipeline(here, port, replace(pkt, metadata=0, ct_state=0),
                                           connections=trackers)
            for out_port, out_pkt in outputs:
                out_pkt = replace(out_pkt, metadata=0, ct_state=0)
                peer = fabric.peer(PortRef(here, out_port))
                if peer is None or out_port == OFPP_CONTROLLER or peer.dpid == SHARED_FABRIC:
                    delivered.append((here, out_port, out_pkt))
                else:
                    frontier.append((peer.dpid, peer.port, out_pkt, hops + 1))
        return delivered
