"""A policy trace over the engine's state: VMs by name (:mod:`ryu_apps.core.trace_names`),
over IPv4 or IPv6, through its desired flows (pure)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Dict, Optional, Set, Tuple

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.fabric import SHARED_FABRIC, PortRef
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.rule_origin import PortGroup, RuleOrigin, flow_origin, port_side_template
from ryu_apps.core.table_sim import ConnectionTable
from ryu_apps.core.template_model import Template
from ryu_apps.core.trace import Trace, TraceError, parse_probe, trace
from ryu_apps.core.trace_names import find_vm, with_address

__all__ = ["find_vm", "port_groups", "trace_vms"]


def trace_vms(engine, src: str, dst: str, probe_text: str, src_ip: Optional[str] = None,
              dst_ip: Optional[str] = None, family: Optional[int] = None) -> Trace:
    """Trace ``src`` to ``dst`` (each named by MAC, IPv4, IPv6 or OVSDB iface-id) for
    ``probe_text`` (``tcp/443`` ...) over IPv4 or IPv6 (``family``; None: IPv6 for
    icmpv6 or when an address given is IPv6, else IPv4) through the desired flows (a
    TraceError names the field that was wrong). ``src_ip``/``dst_ip``: the address a VM
    sends from, when the controller does not know it (an IPv4 its template does not
    bind, a global IPv6); one of the other family is an error when ``family`` is
    given, and unused otherwise."""
    given = {"src": src, "dst": dst, "src_ip": src_ip, "dst_ip": dst_ip}
    probe = parse_probe(probe_text, family if family is not None else _family(given))
    for name in ("src_ip", "dst_ip"):
        version = _version(given[name])
        if family is not None and version is not None and version != family:
            raise TraceError(name, f"{name}: {given[name]!r} is an IPv{version} address; "
                                   f"the trace is over IPv{probe.family}")
    source = with_address(find_vm(engine, src, "src"), src_ip, "src_ip")
    target = with_address(find_vm(engine, dst, "dst"), dst_ip, "dst_ip")
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


def _version(text: Optional[str]) -> Optional[int]:
    """4 or 6 when ``text`` is an IP address (a ``%scope`` ignored), else None."""
    try:
        return ipaddress.ip_address((text or "").strip().split("%", 1)[0]).version
    except ValueError:
        return None


def _family(given: Dict[str, Optional[str]]) -> Optional[int]:
    """IPv6 when any address given is IPv6; None (the protocol's own) otherwise."""
    return 6 if any(_version(text) == 6 for text in given.values()) else None


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
