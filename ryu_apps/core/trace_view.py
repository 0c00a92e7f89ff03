"""A policy trace as JSON and as text (pure): verdict, path, tables, rules, drift."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

from ryu_apps.core.cookies import decode_cookie
from ryu_apps.core.flowspec import (
    ApplyActions,
    FlowSpec,
    GotoTable,
    Meter,
    Move,
    Output,
    OutputField,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    WriteMetadata,
)
from ryu_apps.core.pipeline import Table
from ryu_apps.core.trace import Endpoint, Hop, Trace

#: A switch's name from its datapath id.
Names = Callable[[int], str]


def describe_flow(spec: Optional[FlowSpec]) -> str:
    """``priority=40000 eth_type=2048,ip_proto=6,tcp_dst=443 -> goto:6``; ``no flow``."""
    if spec is None:
        return "no flow matched: dropped"
    match = ",".join(f"{name}={_value(value)}" for name, value in spec.match) or "any"
    actions = [_instruction(i) for i in spec.instructions]
    return f"priority={spec.priority} {match} -> {', '.join(actions) or 'drop'}"


def _value(value) -> str:
    if isinstance(value, tuple):
        first, mask = value
        return f"{first:#x}/{mask:#x}" if isinstance(first, int) else f"{first}/{mask}"
    return str(value)


def _instruction(instruction) -> str:
    if isinstance(instruction, GotoTable):
        return f"goto:{_table(instruction.table_id)}"
    if isinstance(instruction, Meter):
        return f"meter:{instruction.meter_id:#x}"
    if isinstance(instruction, WriteMetadata):
        return f"metadata:{instruction.value:#x}"
    if isinstance(instruction, ApplyActions):
        return ", ".join(_action(a) for a in instruction.actions)
    return type(instruction).__name__


def _action(action) -> str:
    if isinstance(action, Output):
        return "controller" if action.port == 0xFFFFFFFD else f"output:{action.port}"
    if isinstance(action, SetField):
        return f"set:{action.name}={action.value}"
    if isinstance(action, Resubmit):
        return f"resubmit:{_table(action.table_id)}"
    if isinstance(action, Move):
        return f"move:{action.src}->{action.dst}"
    if isinstance(action, OutputField):
        return f"output:{action.field}[{action.start}..{action.start + action.n_bits - 1}]"
    return {PushVlan: "push_vlan", PopVlan: "pop_vlan"}.get(type(action), str(action))


def _table(table_id: int) -> str:
    try:
        return Table(table_id).name
    except ValueError:
        return str(table_id)


def trace_json(result: Trace, names: Names, drift: Optional[List[str]] = None) -> Dict:
    """The JSON answer of a trace (``drift``: what the switches disagree on, if checked)."""
    deciding = result.deciding
    return {
        "src": _end_json(result.src),
        "dst": _end_json(result.dst),
        "probe": str(result.probe),
        "family": result.probe.family,
        "verdict": result.verdict,
        "decided_by": deciding.as_dict() if deciding else None,
        "to_controller": result.to_controller,
        "path": [_hop_json(hop, names) for hop in result.hops],
        "reply": _reply_json(result.reply, names),
        "connects": result.connects,
        "drift": drift,
    }


def _end_json(end: Endpoint) -> Dict:
    return {"mac": end.mac, "ipv4": end.ipv4, "ipv6": end.ipv6_address,
            "template": end.template}


def _reply_json(reply: Optional[Trace], names: Names) -> Optional[Dict]:
    if reply is None:
        return None
    deciding = reply.deciding
    return {"probe": str(reply.probe), "verdict": reply.verdict,
            "decided_by": deciding.as_dict() if deciding else None,
            "path": [_hop_json(hop, names) for hop in reply.hops]}


def _hop_json(hop: Hop, names: Names) -> Dict:
    return {
        "switch": {"dpid": f"{hop.dpid:016x}", "name": names(hop.dpid)},
        "in_port": hop.in_port,
        "vlan": hop.packet.vlan_vid & 0xFFF or None,
        "tables": [{"table": _table(s.table_id), "flow": describe_flow(s.flow),
                    "priority": s.flow.priority if s.flow else None,
                    "cookie": f"{s.flow.cookie:#x}" if s.flow else None,
                    "owner": _owner(s.flow),
                    "rule": s.origin.as_dict() if s.origin else None} for s in hop.steps],
        "outputs": list(hop.outputs),
    }


def _owner(spec: Optional[FlowSpec]) -> Optional[str]:
    owner = decode_cookie(spec.cookie) if spec is not None else None
    return owner.describe() if owner is not None else None


def address_of(end: Endpoint, family: int) -> str:
    """The address a VM sends from in a trace over ``family``."""
    return end.ipv6_address if family == 6 else (end.ipv4 or "no IPv4")


def trace_text(result: Trace, names: Names, drift: Optional[List[str]] = None) -> str:
    """The trace for a terminal."""
    src, dst, family = result.src, result.dst, result.probe.family
    lines = [f"trace {src.mac} ({address_of(src, family)}, '{src.template}') -> "
             f"{dst.mac} ({address_of(dst, family)}, '{dst.template}') {result.probe}"
             f"{' over IPv6' if family == 6 else ''}: {result.verdict.upper()}"]
    deciding = result.deciding
    lines.append(f"  decided by: {deciding.label() if deciding else 'no template rule'}")
    for hop in result.hops:
        vlan = hop.packet.vlan_vid & 0xFFF
        lines.append(f"  {names(hop.dpid)} in_port {hop.in_port}"
                     f"{f' vlan {vlan}' if vlan else ''}:")
        for step in hop.steps:
            lines.append(f"    {_table(step.table_id):<17} {describe_flow(step.flow)}")
            if step.origin is not None:
                lines.append(f"    {'':<17} rule: {step.origin.label()}")
        lines.append(f"    sent out of: {', '.join(map(str, hop.outputs)) or 'nothing'}")
    if result.reply is not None:
        reply = result.reply.deciding
        lines.append(f"  reply {result.reply.probe}: {result.reply.verdict.upper()}, decided "
                     f"by {reply.label() if reply else 'no template rule'}")
    if drift is not None:
        lines.append("  switches agree with the desired flows" if not drift
                     else "  DRIFT: " + "; ".join(drift))
    return "\n".join(lines)
