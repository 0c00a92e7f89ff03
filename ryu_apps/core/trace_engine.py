"""A policy trace over the engine's state: VMs by MAC or IPv4, its desired flows (pure)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Dict, Optional, Set, Tuple

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.fabric import SHARED_FABRIC, PortRef
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.mac_address import IdentifierError, normalise_mac
from ryu_apps.core.rule_origin import PortGroup, RuleOrigin, flow_origin, port_side_template
from ryu_apps.core.table_sim import ConnectionTable
from ryu_apps.core.template_model import Template
from ryu_apps.core.trace import Endpoint, Trace, TraceError, parse_probe, trace


def find_vm(engine, text: str, field_name: str) -> Endpoint:
    """The VM a user named by MAC or bound IPv4 address (a TraceError naming the field)."""
    text = text.strip()
    binding = None
    try:
        binding = engine.bindings.get(normalise_mac(text))
    except IdentifierError:
        matches = [b for b in engine.bindings.values() if text and _ipv4(b) == text]
        binding = matches[0] if len(matches) == 1 else None
    if binding is None:
        raise TraceError(field_name, f"{field_name}: no provisioned VM has MAC or IPv4 "
                                     f"{text!r} (dynprov bindings lists them)")
    if binding.dpid not in engine.fabric.switches:
        raise TraceError(field_name, f"{field_name}: VM {binding.mac} is on switch "
                                     f"{binding.dpid:016x}, which is not connected")
    return Endpoint(binding.mac, binding.dpid, binding.port, _ipv4(binding),
                    binding.template_name)


def _with_ip(end: Endpoint, text: Optional[str], field_name: str) -> Endpoint:
    if text is None:
        return end
    try:
        address = str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise TraceError(field_name, f"{field_name}: {text!r} is not an IPv4 address") from None
    if end.ipv4 is not None and end.ipv4 != address:
        raise TraceError(field_name, f"{field_name}: VM {end.mac} is bound to {end.ipv4}, "
                                     f"not {address}")
    return replace(end, ipv4=address)


def _ipv4(binding) -> Optional[str]:
    """A VM's bound IPv4, else the one its first frame carried."""
    return binding.ip or binding.seen_ip


def trace_vms(engine, src: str, dst: str, probe_text: str, src_ip: Optional[str] = None,
              dst_ip: Optional[str] = None) -> Trace:
    """Trace ``src`` to ``dst`` for ``probe_text`` (``tcp/443`` ...) through the desired
    flows (a TraceError names the field that was wrong). ``src_ip``/``dst_ip`` stand for
    the IPv4 of a VM whose template does not bind it (the controller may not know it)."""
    probe = parse_probe(probe_text)
    source = _with_ip(find_vm(engine, src, "src"), src_ip, "src_ip")
    target = _with_ip(find_vm(engine, dst, "dst"), dst_ip, "dst_ip")
    if source.mac == target.mac:
        raise TraceError("dst", f"dst: {target.mac} is the source VM itself")

    def peer(dpid: int, port: int) -> Optional[Tuple[int, int]]:
        other = engine.fabric.peer(PortRef(dpid, port))
        if other is None or other.dpid == SHARED_FABRIC:
            return None
        return other.dpid, other.port

    groups = port_groups(engine)

    def origin(spec: FlowSpec) -> Optional[RuleOrigin]:
        library = engine.library_of_switch(spec.dpid) or engine.library
        owner = decode_cookie(spec.cookie)
        behind: Tuple[Template, ...] = ()
        if owner is not None and owner.kind is CookieKind.PORT_GROUP:
            port, vlan = divmod(owner.owner_id, 1 << 12)
            template = groups.get((spec.dpid, port, vlan))
            behind = (template,) if template is not None else ()
        return flow_origin(library, owner, spec.table_id, spec.priority, behind)

    connections: Dict[int, ConnectionTable] = {}   # the answer finds the packet's state
    result = trace(source, target, probe, engine.desired.on_switch, peer, origin, connections)
    result.reply = trace(target, source, replace(probe, reply=True), engine.desired.on_switch,
                         peer, origin, connections)
    return result


def port_groups(engine) -> Dict[PortGroup, Template]:
    """Each access port VLAN with VMs behind it: the template whose port side it holds
    (none where their templates' port sides differ)."""
    behind: Dict[PortGroup, Set[Template]] = {}
    for binding in engine.bindings.values():
        access, template = engine.access_port_of(binding), engine.template_of(binding)
        if access is not None and template is not None:
            behind.setdefault((access.dpid, access.port, binding.vlan), set()).add(template)
    found = {group: port_side_template(templates) for group, templates in behind.items()}
    return {group: template for group, template in found.items() if template is not None}
