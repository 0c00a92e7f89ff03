"""JSON views of dynprov's state for the REST API (pure: no Ryu, no I/O).

Each function turns engine objects (bindings, templates, switches, links,
refusals, flows read back from a switch) into plain dicts and lists that
``json.dumps`` accepts. Switches appear as ``{"dpid": "<16 hex digits>",
"name": ...}``; times as ISO 8601 UTC strings plus the unix time.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ryu_apps.core import ipv6_guard
from ryu_apps.core.binding import Binding
from ryu_apps.core.cookies import Owner, decode_cookie
from ryu_apps.core.fabric import SHARED_FABRIC, PortRef, SwitchInfo
from ryu_apps.core.flowspec import (
    OFPP_ANY,
    OFPP_CONTROLLER,
    OFPP_TABLE,
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
    Conntrack,
    SetField,
    WriteMetadata,
)
from ryu_apps.core.identifiers import IdentifierError, Mac, normalise_mac
from ryu_apps.core.template_model import Bandwidth, SwitchSide, Template

Json = Dict[str, Any]
Switches = Mapping[int, SwitchInfo]

_PORT_NAMES = {OFPP_CONTROLLER: "CONTROLLER", OFPP_TABLE: "TABLE", OFPP_ANY: "ANY",
               0xFFFFFFF8: "IN_PORT", 0xFFFFFFFA: "NORMAL", 0xFFFFFFFB: "FLOOD",
               0xFFFFFFFC: "ALL", 0xFFFFFFFE: "LOCAL"}


class ViewError(ValueError):
    """A client sent something unusable; the message says what was expected."""


@dataclass(frozen=True)
class FlowStat:
    """One flow entry read back from a switch, with its counters."""

    spec: FlowSpec
    packets: int
    bytes: int
    duration: float  # seconds since the entry was installed


# -- input ------------------------------------------------------------------------
def canonical_mac(text: str) -> Mac:
    """``00:fa:00:00:00:01`` from a MAC in any case, with ``:`` or ``-`` (a ViewError if none)."""
    try:
        return normalise_mac(text)
    except IdentifierError as error:
        raise ViewError(str(error)) from None


def parse_template_id(text: str) -> int:
    """A template id from ``250`` or ``0x00FA``."""
    value = None
    if re.fullmatch(r"\d+", text):
        value = int(text)
    elif re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
        value = int(text, 16)
    if value is None or value > 0xFFFF:
        raise ViewError(f"{text!r} is not a template id: expected 0..65535, "
                        "in decimal (250) or hex (0x00FA)")
    return value


def parse_flag(text: Optional[str], name: str, default: bool) -> bool:
    """A boolean query parameter: 1/0, true/false, yes/no (absent: ``default``)."""
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ViewError(f"query parameter {name}={text!r}: expected true or false")


# -- small pieces -----------------------------------------------------------------
def dpid_text(dpid: int) -> str:
    """A datapath id as 16 hex digits, the way OVS prints it."""
    return f"{dpid:016x}"


def iso_utc(unix_time: float) -> str:
    """``2024-05-01T12:00:03.250Z`` (milliseconds, UTC)."""
    moment = datetime.datetime.fromtimestamp(unix_time, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def switch_ref(dpid: int, switches: Switches) -> Json:
    """``{"dpid", "name"}``; name is None for a switch dynprov does not manage."""
    info = switches.get(dpid)
    return {"dpid": dpid_text(dpid), "name": info.name if info else None}


def port_ref(ref: Optional[PortRef], switches: Switches) -> Optional[Json]:
    """``{"dpid", "name", "port"}`` of one switch port, or None."""
    if ref is None:
        return None
    return {**switch_ref(ref.dpid, switches), "port": ref.port}


def owner_view(owner: Optional[Owner]) -> Optional[Json]:
    """What a decoded cookie says; None for a cookie that is not dynprov's."""
    if owner is None:
        return None
    return {"kind": owner.kind.name.lower(), "owner_id": owner.owner_id,
            "template_id": owner.template_id, "description": owner.describe()}


# -- bindings ---------------------------------------------------------------------
def binding_view(binding: Binding, switches: Switches,
                 access: Optional[PortRef], template: Optional[Template] = None) -> Json:
    """One VM binding; ``counters`` is filled in by :func:`with_counters`. ``ip`` is its
    bound IPv4 (``ip_source``: how it was bound, first_seen, dhcp or pinned); ``ipv6``
    the addresses its template's IPv6 guard lets it send from (its link-local, then its
    bound global ones); ``ipv6_bound`` its bound global ones."""
    return {
        "binding_id": binding.binding_id,
        "mac": binding.mac,
        "template_id": binding.template_id,
        "template_name": binding.template_name,
        "vlan": binding.vlan,
        "server": port_ref(PortRef(binding.dpid, binding.port), switches),
        "access": port_ref(access, switches),
        "state": binding.state.value,
        "since": iso_utc(binding.since),
        "since_unix": binding.since,
        "detected_by": binding.detected_by.value,
        "ip": binding.ip,
        "ip_source": binding.ip_source if binding.ip else None,
        "ipv6": _guarded_ipv6(binding, template),
        "ipv6_bound": list(binding.ipv6),
        "cookie": f"0x{binding.owner.cookie:016x}",
        "counters": None,
        "counters_error": "not requested",
    }


def _guarded_ipv6(binding: Binding, template: Optional[Template]) -> List[str]:
    if template is None or not ipv6_guard.guarded(template.virtual_switch):
        return []
    return list(ipv6_guard.own_addresses(binding.mac, binding.ipv6))


def binding_counters(binding: Binding, stats: Iterable[FlowStat]) -> Json:
    """Packets and bytes the VM sent and the unicast it was sent, from its flows.

    ``sent``: the binding's table-0 entry on its server bridge (``in_port`` and
    ``eth_src`` = the VM), i.e. every frame the VM sent with its own MAC,
    counted before anti-spoofing, ACLs and bandwidth limits. ``received``: the
    binding's entry on its server bridge that matches ``eth_dst`` = the VM,
    i.e. unicast frames delivered toward the VM's port, counted before its
    ``to_vm`` ACL; broadcast and multicast (flooded by the VLAN's shared
    flows) are not in it. Either is None when its entry is not on the switch.
    """
    mine = [s for s in stats if _owned_by(s.spec, binding)]
    sent = [s for s in mine if s.spec.match_dict().get("eth_src") == binding.mac
            and s.spec.match_dict().get("in_port") == binding.port]
    received = [s for s in mine if s.spec.match_dict().get("eth_dst") == binding.mac]
    return {"sent": _sum(sent), "received": _sum(received)}


def with_counters(view: Json, counters: Optional[Json], error: Optional[str]) -> Json:
    """The binding view with its counters, or None and why they are missing."""
    return {**view, "counters": counters, "counters_error": None if counters else error}


def _owned_by(spec: FlowSpec, binding: Binding) -> bool:
    owner = decode_cookie(spec.cookie)
    return (spec.dpid == binding.dpid and owner is not None
            and owner.kind is binding.owner.kind and owner.owner_id == binding.binding_id)


def _sum(stats: List[FlowStat]) -> Optional[Json]:
    if not stats:
        return None
    return {"packets": sum(s.packets for s in stats), "bytes": sum(s.bytes for s in stats)}


# -- flows ------------------------------------------------------------------------
def flow_view(stat: FlowStat, switches: Switches) -> Json:
    """One flow entry as it is on its switch, with its decoded cookie."""
    spec = stat.spec
    return {
        "switch": switch_ref(spec.dpid, switches),
        "table": spec.table_id,
        "priority": spec.priority,
        "match": {name: _match_value(value) for name, value in spec.match},
        "instructions": [instruction_text(i) for i in spec.instructions],
        "idle_timeout": spec.idle_timeout,
        "hard_timeout": spec.hard_timeout,
        "packets": stat.packets,
        "bytes": stat.bytes,
        "duration": round(stat.duration, 3),
        "cookie": f"0x{spec.cookie:016x}",
        "owner": owner_view(decode_cookie(spec.cookie)),
    }


def sorted_flows(stats: Iterable[FlowStat]) -> List[FlowStat]:
    """Flows by switch, table, then descending priority (the order a lookup sees)."""
    return sorted(stats, key=lambda s: (s.spec.dpid, s.spec.table_id, -s.spec.priority,
                                        repr(s.spec.match)))


def _match_value(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{_scalar(value[0])}/{_scalar(value[1])}"
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (int, str, float)) or value is None:
        return value
    return str(value)


def instruction_text(instruction: Any) -> str:
    """One instruction in ``ovs-ofctl``'s words, e.g. ``goto_table:1``."""
    if isinstance(instruction, Meter):
        return f"meter:{instruction.meter_id}"
    if isinstance(instruction, ApplyActions):
        return f"apply_actions({','.join(action_text(a) for a in instruction.actions)})"
    if isinstance(instruction, WriteMetadata):
        return f"write_metadata:{instruction.value:#x}/{instruction.mask:#x}"
    if isinstance(instruction, GotoTable):
        return f"goto_table:{instruction.table_id}"
    return f"unknown:{_unknown_name(instruction)}"


def action_text(action: Any) -> str:
    """One action in ``ovs-ofctl``'s words, e.g. ``set_field:4196->vlan_vid``."""
    if isinstance(action, Output):
        port = _PORT_NAMES.get(action.port, str(action.port))
        suffix = f":{action.max_len}" if action.port == OFPP_CONTROLLER else ""
        return f"output:{port}{suffix}"
    if isinstance(action, PushVlan):
        return f"push_vlan:{action.ethertype:#06x}"
    if isinstance(action, PopVlan):
        return "pop_vlan"
    if isinstance(action, SetField):
        return f"set_field:{_match_value(action.value)}->{action.name}"
    if isinstance(action, Resubmit):
        return f"resubmit(,{action.table_id})"
    if isinstance(action, Conntrack):
        parts = ["commit"] if action.commit else []
        parts.append(f"zone={action.zone}")
        if action.table is not None:
            parts.append(f"table={action.table}")
        return f"ct({','.join(parts)})"
    if isinstance(action, Move):
        return f"move:{action.src}->{action.dst}"
    if isinstance(action, OutputField):
        return f"output:{action.field}[{action.start}..{action.start + action.n_bits - 1}]"
    return f"unknown:{_unknown_name(action)}"


def _unknown_name(item: Any) -> str:
    if isinstance(item, tuple) and len(item) == 2:
        return str(item[1])
    return type(item).__name__


# -- templates --------------------------------------------------------------------
def template_view(template: Template) -> Json:
    """One template of the library in force."""
    return {
        "template_id": template.template_id,
        "hex": f"0x{template.template_id:04X}",
        "name": template.name,
        "description": template.description,
        "vlan": template.vlan,
        "idle_timeout": template.idle_timeout,
        "source": template.source,
        "virtual_switch": side_view(template.virtual_switch),
        "access_port": side_view(template.access_port),
    }


def side_view(side: SwitchSide) -> Json:
    """ACL (first match wins), default action, bandwidth limit of one side."""
    return {
        "default_action": side.default_action.value,
        "acl": [rule.describe() for rule in side.acl],
        "bandwidth": _bandwidth_view(side.bandwidth),
        "bind_ip": side.bind_ip or False,
        "bind_ipv6": side.bind_ipv6,
        "router": side.router,
        "dhcp_server": side.dhcp_server,
        "allowed_addresses": [str(prefix) for prefix in side.allowed_addresses],
    }


def _bandwidth_view(bandwidth: Optional[Bandwidth]) -> Optional[Json]:
    if bandwidth is None:
        return None
    return {"rate_kbps": bandwidth.rate_kbps, "burst_kbits": bandwidth.burst_kbits}


# -- switches, links, refusals ------------------------------------------------------
def switch_view(info: SwitchInfo, connected: bool, bindings: int) -> Json:
    """A managed switch: its role, name, whether it is connected now."""
    return {"dpid": dpid_text(info.dpid), "name": info.name, "role": info.role.value,
            "connected": connected, "bindings": bindings}


def link_view(a: PortRef, b: PortRef, switches: Switches, on_tree: bool) -> Json:
    """A link discovered by LLDP, or a shared uplink found by beacons (``b`` null,
    ``shared_fabric`` true); ``on_tree`` when forwarding uses it."""
    shared = b.dpid == SHARED_FABRIC
    return {"a": port_ref(a, switches), "b": None if shared else port_ref(b, switches),
            "shared_fabric": shared, "on_tree": on_tree}


def refusal_view(refusal: Any, switches: Switches) -> Json:
    """A MAC that was not provisioned, and why."""
    dpid = getattr(refusal, "dpid", 0)
    since = getattr(refusal, "since", None)
    return {
        "mac": refusal.mac,
        "template_id": refusal.template_id,
        "reason": refusal.reason,
        "switch": switch_ref(dpid, switches) if dpid else None,
        "port": getattr(refusal, "port", None) or None,
        "count": getattr(refusal, "count", None),
        "since": iso_utc(since) if since else None,
        "since_unix": since or None,
    }


def security_view(engine, probes: dict) -> dict:
    """What the defences of issue 11 did so far: LLDP probes, links, moves, quarantines."""
    moves = engine.moves
    quarantine = engine.quarantine
    return {
        "identity_policy": engine.identity_default.value,
        "lldp_probes": probes,
        "links_refused": dict(engine.links.refused),
        "moves": dict(moves.counts),
        "move_conflicts_waiting": [
            {"mac": c.mac, "switch": f"{c.dpid:016x}", "port": c.port, "since": c.since,
             "probed": c.deadline is not None} for c in sorted(
                moves.candidates.values(), key=lambda c: c.mac)],
        "quarantined_macs": len(quarantine.refused),
        "ports_lldp_dropped": [{"switch": f"{d:016x}", "port": p, "probes": n}
                               for (d, p), n in sorted(quarantine.lldp_refusals.items())],
    }
