"""The VMs a trace is asked about, named as an operator or a hypervisor names them (pure).

A VM is named by its MAC, its IPv4 (bound, or seen in its first frames), its
IPv6 link-local address (from its MAC; a ``%scope`` is ignored), or the
``external_ids:iface-id`` its interface carries in the server's OVSDB (the
name libvirt, Nova and OVN give it; several ports with one iface-id, as
during a live migration, still name one VM when they hold the same MAC).
A name no provisioned VM has, or several VMs share, is a
:class:`~ryu_apps.core.trace.TraceError` naming the field and the candidates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Dict, List, Optional

from ryu_apps.core.ipv6_guard import link_local
from ryu_apps.core.mac_address import IdentifierError, normalise_mac
from ryu_apps.core.trace import Endpoint, TraceError

WHAT = "MAC, IPv4, IPv6 or OVSDB iface-id"


def find_vm(engine, text: str, field_name: str) -> Endpoint:
    """The VM a user named (a TraceError naming the field when none or several match)."""
    text = text.strip()
    binding = _named(engine, text, field_name)
    if binding.dpid not in engine.fabric.switches:
        raise TraceError(field_name, f"{field_name}: VM {binding.mac} is on switch "
                                     f"{binding.dpid:016x}, which is not connected")
    return Endpoint(binding.mac, binding.dpid, binding.port, ipv4_of(binding),
                    binding.template_name)


def _named(engine, text: str, field_name: str):
    try:
        mac: Optional[str] = normalise_mac(text)
    except IdentifierError:
        mac = None
    if mac is not None:
        binding = engine.bindings.get(mac)
        if binding is None:
            raise _unknown(field_name, text)
        return binding
    found: Dict[str, object] = {}
    address = _address(text)
    for binding in list(engine.bindings.values()):
        if address is not None and address in _addresses(binding):
            found[binding.mac] = binding
    for mac in macs_of_iface_id(engine, text):
        if mac in engine.bindings:
            found[mac] = engine.bindings[mac]
    if len(found) > 1:
        raise TraceError(field_name, f"{field_name}: {text!r} names {len(found)} VMs "
                                     f"({', '.join(sorted(found))}); name one by its MAC")
    if not found:
        raise _unknown(field_name, text)
    return next(iter(found.values()))


def _unknown(field_name: str, text: str) -> TraceError:
    return TraceError(field_name, f"{field_name}: no provisioned VM has {WHAT} {text!r} "
                                  f"(dynprov bindings lists them)")


def _address(text: str) -> Optional[str]:
    """An IP address in canonical form (a ``%scope`` dropped); None if not one."""
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


def _addresses(binding) -> List[str]:
    found = [link_local(binding.mac)]
    ipv4 = ipv4_of(binding)
    if ipv4 is not None:
        found.append(ipv4)
    return found


def macs_of_iface_id(engine, iface_id: str) -> List[str]:
    """The MACs attached (OVSDB) to the ports whose interface has this iface-id."""
    ports = engine.state.ports
    return sorted({ports.attachments[key] for key, name in ports.iface_ids.items()
                   if name == iface_id and key in ports.attachments})


def ipv4_of(binding) -> Optional[str]:
    """A VM's bound IPv4, else the one its first frame carried."""
    return binding.ip or binding.seen_ip


def with_address(end: Endpoint, text: Optional[str], field_name: str) -> Endpoint:
    """``end`` sending from a given IPv4 or IPv6 address (an IPv4 must agree with the
    bound one; an IPv6 is taken as given, and the IPv6 guard decides)."""
    if text is None:
        return end
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        raise TraceError(field_name, f"{field_name}: {text!r} is not an IPv4 or IPv6 "
                                     "address") from None
    if address.version == 6:
        return replace(end, ipv6=str(address))
    if end.ipv4 is not None and end.ipv4 != str(address):
        raise TraceError(field_name, f"{field_name}: VM {end.mac} is bound to {end.ipv4}, "
                                     f"not {address}")
    return replace(end, ipv4=str(address))
