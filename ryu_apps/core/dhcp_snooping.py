"""DHCP snooping: a ``bind_ip: dhcp`` VM's IPv4 address bound from a DHCPACK (pure).

The pipeline copies to the controller, through one meter per server bridge
(:func:`~ryu_apps.core.address_guard.dhcp_delivery`,
:func:`~ryu_apps.core.address_guard.dhcp_template_flows`), the DHCP server
messages delivered to such a VM and the client messages it sends;
:func:`snooped` decides on each, as a switch's DHCP snooping does:

- a DHCPACK binds VM ``chaddr`` to ``yiaddr`` only if (a) it came from an allowed
  server: a VM whose template says ``dhcp_server: true``, or a link port (uplink or
  inter-switch: the trusted-port convention; a rogue VM's answers never get that far,
  the rogue-server guard drops them at its own port); (b) ``chaddr`` is a VM bound on
  this server bridge with a ``bind_ip: dhcp`` template and the frame was for it (its
  MAC or broadcast); (c) ``yiaddr`` is a unicast address no other VM is bound to
  (a conflict is refused and noted, the VM keeps what it had);
- a DHCPNAK from an allowed server, the VM's DHCPRELEASE of its address or its
  DHCPDECLINE of it, and the end of the lease (:func:`expire`, from the engine's
  tick) unbind the address; a repeated ACK only extends the lease.

The binding changes through :func:`~ryu_apps.core.binding_ops.store` like a first-seen
one: its anti-spoofing and delivery flows follow through the one reconciliation path.
DHCPv6 (another helper's parser) plugs in beside the IPv4 branch of :func:`snooped`
and :func:`punted`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import TYPE_CHECKING, Optional

from ryu_apps.core import address_guard, binding_ops, dhcp, dhcpv6
from ryu_apps.core.binding import IP_DHCP, IP_FIRST_SEEN, Binding
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.pipeline import Table
from ryu_apps.core.template_model import Template

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
#: A lease time that never ends (RFC 2131: 0xffffffff).
INFINITE_LEASE = 0xFFFFFFFF


def punted(table_id: Optional[int], frame: bytes) -> bool:
    """Whether a packet-in is a snooping copy: a client message a ``bind_ip: dhcp`` VM
    sent (ANTI_SPOOF), or a server message delivered to one (OUTPUT). (The rogue-server
    guard's punts, server messages in ANTI_SPOOF, are not.)"""
    found = dhcp.udp_payload(frame)
    if found is None:
        found6 = dhcpv6.from_frame(frame)   # DHCPv6: core/ipv6_binding.py decides
        if found6 is None:
            return False
        return (table_id == Table.ANTI_SPOOF and found6.to_server) or \
            (table_id == Table.OUTPUT and found6.to_client)
    ports = found[:2]
    if table_id == Table.ANTI_SPOOF:
        return ports == (dhcp.CLIENT_PORT, dhcp.SERVER_PORT)
    return table_id == Table.OUTPUT and ports == (dhcp.SERVER_PORT, dhcp.CLIENT_PORT)


def snooped(st: "EngineState", dpid: int, in_port: int, frame: bytes, now: float,
            plan: Plan) -> None:
    """A snooped DHCP frame that came in at ``in_port`` of server bridge ``dpid``."""
    message = dhcp.parse_dhcp(frame)
    if message is None:
        plan.notes.append(f"DHCP snooping on {st.name(dpid)} port {in_port}: not a "
                          "well-formed DHCP message; ignored")
        return
    if message.from_server:
        _server_message(st, dpid, in_port, message, now, plan)
    elif message.from_client:
        _client_message(st, dpid, in_port, message, plan)


def _server_message(st: "EngineState", dpid: int, in_port: int,
                    message: dhcp.DhcpMessage, now: float, plan: Plan) -> None:
    """A DHCPACK binds, a DHCPNAK unbinds (module docstring); other messages do nothing."""
    if message.message_type not in (dhcp.ACK, dhcp.NAK):
        return
    binding = st.table.bindings.get(message.chaddr)
    template = st.template_of(binding) if binding is not None else None
    if binding is None or template is None or binding.dpid != dpid \
            or not template.virtual_switch.binds_from_dhcp:
        return   # not a snooped VM here (a copy for another VM of a flooded answer)
    what = f"{message.name} for VM {binding.mac} from {message.ip_src}"
    if message.eth_dst not in (binding.mac, BROADCAST_MAC):
        plan.notes.append(f"DHCP snooping: {what} was sent to {message.eth_dst}, not to "
                          "the VM: ignored")
        return
    distrust = untrusted(st, dpid, in_port)
    if distrust is not None:
        plan.notes.append(f"DHCP snooping: {what} refused: {distrust}")
        return
    if message.message_type == dhcp.NAK:
        release(st, binding, plan, f"{message.name} from {message.ip_src}")
        return
    _bind(st, binding, message, now, plan, what)


def untrusted(st: "EngineState", dpid: int, in_port: int) -> Optional[str]:
    """Why a DHCP server message that came in at this port is not believed, or None."""
    sender = st.table.at_port(dpid, in_port)
    if sender is not None:
        template = st.template_of(sender)
        if template is not None and template.virtual_switch.dhcp_server:
            return None
        return (f"it came from VM {sender.mac}, whose template "
                f"'{sender.template_name}' is no DHCP server (dhcp_server: true)")
    if st.topo.fabric.is_link_port(dpid, in_port):
        return None
    return f"it came in at port {in_port} of {st.name(dpid)}, neither a VM nor a link port"


def _bind(st: "EngineState", binding: Binding, message: dhcp.DhcpMessage, now: float,
          plan: Plan, what: str) -> None:
    """Bind the VM to ``yiaddr`` (or only extend its lease: the same address again)."""
    address = message.yiaddr
    problem = unusable(st, binding, address)
    if problem is not None:
        plan.notes.append(f"DHCP snooping: {what} refused: yiaddr {address} {problem}; "
                          f"the VM keeps {binding.ip or 'no address'}")
        return
    lease = message.lease_time
    st.ports.time_lease(binding.mac, address,
                        None if lease is None or lease == INFINITE_LEASE else now + lease)
    if binding.ip == address and binding.ip_source == IP_DHCP:
        return   # a renewal (or the same ACK again): nothing to change
    binding_ops.store(st, replace(binding, ip=address, ip_source=IP_DHCP))
    lasting = "no end" if lease in (None, INFINITE_LEASE) else f"{lease} s"
    plan.notes.append(f"VM {binding.mac} bound to IP {address} ({what}, lease {lasting})")


def unusable(st: "EngineState", binding: Binding, address: str) -> Optional[str]:
    """Why ``address`` cannot be the VM's own, or None."""
    try:
        parsed = ipaddress.IPv4Address(address)
    except ValueError:
        return "is no IPv4 address"
    if parsed.is_unspecified or parsed.is_multicast or parsed.is_loopback \
            or parsed.is_reserved or parsed == ipaddress.IPv4Address("255.255.255.255"):
        return "is not a unicast address"
    template = st.template_of(binding)
    if template is not None and address_guard.allowed_by_template(template.virtual_switch,
                                                                  address):
        return "lies in the template's allowed_addresses (never a VM's own)"
    other = st.table.ip_holder(address, binding.mac)
    if other is not None:
        return f"is bound to VM {other.mac} (binding {other.binding_id}): a conflict"
    return None


def _client_message(st: "EngineState", dpid: int, in_port: int,
                    message: dhcp.DhcpMessage, plan: Plan) -> None:
    """The VM's DHCPRELEASE of its address, or DHCPDECLINE of it, unbinds it."""
    binding = st.table.at_port(dpid, in_port)
    if binding is None or binding.mac != message.eth_src or binding.mac != message.chaddr:
        return
    if message.message_type == dhcp.RELEASE and message.ciaddr == binding.ip:
        release(st, binding, plan, f"its {message.name}")
    elif message.message_type == dhcp.DECLINE and message.requested_ip == binding.ip:
        release(st, binding, plan, f"its {message.name}")


def release(st: "EngineState", binding: Binding, plan: Plan, why: str) -> None:
    """Unbind the VM's DHCP-bound address (an address bound otherwise stays)."""
    if binding.ip is None or binding.ip_source != IP_DHCP:
        return
    st.ports.leases.pop(binding.mac, None)
    binding_ops.store(st, replace(binding, ip=None, ip_source=None))
    plan.notes.append(f"VM {binding.mac} unbound from IP {binding.ip}: {why}")


def expire(st: "EngineState", now: float, plan: Plan) -> None:
    """Unbind the addresses whose DHCP lease ended (the engine's tick): from the VM's
    binding, its pre-provisioned one, and the address a VM handed over by another
    process is expected with."""
    for mac, (address, until) in list(st.ports.leases.items()):
        if until > now:
            continue
        del st.ports.leases[mac]
        for binding in (st.table.bindings.get(mac), st.table.incoming.get(mac)):
            if binding is not None and binding.ip == address:
                release(st, binding, plan, "its DHCP lease ended")
        if st.ports.expected_ips.get(mac) == address \
                and st.ports.expected_ip_sources.get(mac) == IP_DHCP:
            del st.ports.expected_ips[mac]
            st.ports.expected_ip_sources.pop(mac, None)
            plan.notes.append(f"VM {mac}, handed over by another process, will not be "
                              f"bound to IP {address} here: its DHCP lease ended before "
                              "it arrived")


def reloaded(st: "EngineState", binding: Binding, template: Template, plan: Plan) -> Binding:
    """The binding once its template (changed by a reload) is in force: a template that
    now binds from DHCP unbinds an address bound otherwise (the VM asks its server
    again; an address bound from DHCP stays under any mode, until its lease ends)."""
    if not template.virtual_switch.binds_from_dhcp or binding.ip is None \
            or binding.ip_source == IP_DHCP:
        return binding
    changed = replace(binding, ip=None, ip_source=None)
    binding_ops.store(st, changed)
    plan.notes.append(f"VM {binding.mac} unbound from IP {binding.ip}: its template "
                      f"'{template.name}' binds from DHCP now")
    return changed


def restored_ip_source(template: Template, ip: Optional[str]) -> Optional[str]:
    """How a VM's address read back from its switch's flows was bound: as its template
    binds (its lease is unknown until the VM renews it)."""
    if ip is None:
        return None
    return IP_DHCP if template.virtual_switch.binds_from_dhcp else IP_FIRST_SEEN
