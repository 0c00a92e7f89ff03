"""The rogue-DHCP-server guard and a template's ``allowed_addresses`` on a server (pure).

Rogue-server guard: a VM whose template does not say ``dhcp_server: true``
may not send DHCP server messages (IPv4 udp source port 67) nor DHCPv6 server
messages (udp source port 547). Its template's shared flows in ANTI_SPOOF drop
them above every allow, punted through the server's guard meter
(:data:`~ryu_apps.core.pipeline.IPV6_GUARD_METER`, 10 packets/s) so the app
logs each once per VM and kind (:func:`refusal`). (Router advertisements are
the IPv6 guard's: :mod:`~ryu_apps.core.ipv6_guard`.)

DHCP snooping (``bind_ip: dhcp``, :mod:`~ryu_apps.core.dhcp_snooping`): the
template's shared flows in ANTI_SPOOF pass the VM's DHCP client messages (udp
68 -> 67, any source) with a copy to the controller (a DHCPRELEASE unbinds), and
ARP probes from 0.0.0.0; every other IPv4 and ARP frame is dropped unless the
VM's own flows allow it (its bound address, its ``allowed_addresses``). Each
VM's own OUTPUT flow delivers DHCP server messages (udp 67 -> 68) to it with a
copy to the controller (a DHCPACK binds). Both go through the server's
:data:`~ryu_apps.core.pipeline.DHCP_SNOOP_METER`: never a storm path.

``allowed_addresses``: the template's shared flows in ANTI_SPOOF (matched by
the tag the VM's classifier wrote after proving its port and MAC) allow IPv4
and ARP from each IPv4 prefix (with ``bind_ip``), and IPv6 from each IPv6
prefix (with ``bind_ipv6``), with the advertisements those addresses need: an
NA from the prefix whose target lies in the prefix (``nd_target`` with the
prefix's mask: Open vSwitch takes a masked target, an extension of OpenFlow
1.3). A solicitation from the prefix passes as its source does; the IPv6
guard's shared flows set either message's link-layer option to the VM's MAC
and allow DAD probes (:mod:`~ryu_apps.core.ipv6_guard`). No flow per VM.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from typing import Set

from ryu_apps.core import ipv6_guard
from ryu_apps.core.flowspec import OFPP_CONTROLLER, FlowSpec, MatchValue, Output, flow, \
    make_match
from ryu_apps.core.ipv6_frames import l3_offset
from ryu_apps.core.pipeline import DHCP_SNOOP_METER, IPV6_GUARD_METER, Priority, Table, \
    template_metadata_match
from ryu_apps.core.switch_flows import PACKET_IN_BYTES
from ryu_apps.core.template_model import ETH_ARP, ETH_IPV4, ETH_IPV6, IP_ICMPV6, IP_UDP, \
    Prefix, SwitchSide

DHCP_SERVER_PORT, DHCP_CLIENT_PORT = 67, 68
DHCPV6_SERVER_PORT, DHCPV6_CLIENT_PORT = 547, 546
#: What the rogue-server guard refused, by kind (the app logs each once per VM).
DHCP_SERVER, DHCPV6_SERVER = "DHCP server message", "DHCPv6 server message"
_ICMPV6_NA = 136


def template_flows(dpid: int, template_id: int, side: SwitchSide,
                   cookie: int) -> Set[FlowSpec]:
    """The rogue-server guard every VM of a template that is no DHCP server shares."""
    if side.dhcp_server:
        return set()
    tag = template_metadata_match(template_id)
    punt = (Output(OFPP_CONTROLLER, PACKET_IN_BYTES),)
    return {flow(dpid, Table.ANTI_SPOOF, Priority.DHCP_SERVER_DROP,
                 make_match(metadata=tag, eth_type=ethertype, ip_proto=IP_UDP, udp_src=port),
                 cookie, meter=IPV6_GUARD_METER, actions=punt)
            for ethertype, port in ((ETH_IPV4, DHCP_SERVER_PORT),
                                    (ETH_IPV6, DHCPV6_SERVER_PORT))}


#: Bytes of a snooped DHCP frame sent to the controller: a whole non-jumbo frame (the
#: options snooping reads follow a 236-byte BOOTP header).
DHCP_PUNT_BYTES = 1514


def dhcp_template_flows(dpid: int, template_id: int, cookie: int) -> Set[FlowSpec]:
    """ANTI_SPOOF of a ``bind_ip: dhcp`` template (module docstring): DHCP client messages
    pass, copied to the controller; ARP probes pass; other IPv4 and ARP are dropped."""
    tag = template_metadata_match(template_id)
    table, goto = Table.ANTI_SPOOF, Table.FROM_VM_ACL
    return {
        flow(dpid, table, Priority.DHCP_SNOOP,
             make_match(metadata=tag, eth_type=ETH_IPV4, ip_proto=IP_UDP,
                        udp_src=DHCP_CLIENT_PORT, udp_dst=DHCP_SERVER_PORT),
             cookie, meter=DHCP_SNOOP_METER,
             actions=(Output(OFPP_CONTROLLER, DHCP_PUNT_BYTES),), goto=goto),
        flow(dpid, table, Priority.SPOOF_ALLOW,
             make_match(metadata=tag, eth_type=ETH_ARP, arp_spa="0.0.0.0"), cookie, goto=goto),
        flow(dpid, table, Priority.SPOOF_LEARN, make_match(metadata=tag, eth_type=ETH_IPV4),
             cookie),
        flow(dpid, table, Priority.SPOOF_LEARN, make_match(metadata=tag, eth_type=ETH_ARP),
             cookie)}


def dhcp_delivery(dpid: int, port: int, delivered: int, cookie: int) -> FlowSpec:
    """A ``bind_ip: dhcp`` VM's OUTPUT flow for DHCP server messages: to the VM, and a
    copy to the controller (``delivered``: the metadata its deliveries write)."""
    return flow(dpid, Table.OUTPUT, Priority.DHCP_SNOOP,
                make_match(metadata=delivered, eth_type=ETH_IPV4, ip_proto=IP_UDP,
                           udp_src=DHCP_SERVER_PORT, udp_dst=DHCP_CLIENT_PORT),
                cookie, meter=DHCP_SNOOP_METER,
                actions=(Output(port), Output(OFPP_CONTROLLER, DHCP_PUNT_BYTES)))


@functools.lru_cache(maxsize=4096)
def _value(prefix: Prefix) -> MatchValue:
    """A prefix as a match value (its address, masked unless a host's); computed once
    per prefix (the template's prefixes are the same objects on every server)."""
    if prefix.prefixlen == prefix.max_prefixlen:
        return str(prefix.network_address)
    return (str(prefix.network_address), str(prefix.netmask))


def prefix_flows(dpid: int, template_id: int, side: SwitchSide,
                 cookie: int) -> Set[FlowSpec]:
    """The template's shared allows for its ``allowed_addresses`` (module docstring): each
    prefix's source (IPv4: and ARP), and (IPv6) its NA for a target in the prefix."""
    tag = template_metadata_match(template_id)
    entries: Set[FlowSpec] = set()

    def allow(priority: int, **fields: MatchValue) -> None:
        entries.add(flow(dpid, Table.ANTI_SPOOF, priority, make_match(metadata=tag, **fields),
                         cookie, goto=Table.FROM_VM_ACL))

    for prefix in side.allowed_addresses:
        value = _value(prefix)
        if prefix.version == 4:
            allow(Priority.SPOOF_ALLOW, eth_type=ETH_IPV4, ipv4_src=value)
            allow(Priority.SPOOF_ALLOW, eth_type=ETH_ARP, arp_spa=value)
            continue
        allow(Priority.SPOOF_ALLOW, eth_type=ETH_IPV6, ipv6_src=value)
        allow(Priority.ND_ALLOW, eth_type=ETH_IPV6, ip_proto=IP_ICMPV6, icmpv6_type=_ICMPV6_NA,
              ipv6_src=value, ipv6_nd_target=value)
    return entries


def refusal(frame: bytes) -> tuple[str, str] | None:
    """(kind, detail) of a DHCP or DHCPv6 server message the guard punted, else None.

    Never raises: a frame too short for its UDP header is not one."""
    if len(frame) < 14:
        return None
    ethertype, offset = l3_offset(frame)
    if ethertype == ETH_IPV4 and len(frame) >= offset + 20:
        header = (frame[offset] & 0x0F) * 4
        protocol, udp = frame[offset + 9], offset + header
        source = ".".join(str(b) for b in frame[offset + 12:offset + 16])
        kind, server = DHCP_SERVER, DHCP_SERVER_PORT
    elif ethertype == ETH_IPV6 and len(frame) >= offset + 40:
        protocol, udp = frame[offset + 6], offset + 40
        source = _ipv6_text(frame[offset + 8:offset + 24])
        kind, server = DHCPV6_SERVER, DHCPV6_SERVER_PORT
    else:
        return None
    if protocol != IP_UDP or header_short(frame, udp):
        return None
    if struct.unpack("!H", frame[udp:udp + 2])[0] != server:
        return None
    return kind, f"source {source}"


def header_short(frame: bytes, udp: int) -> bool:
    """Whether the frame ends before the 8-byte UDP header at ``udp``."""
    return udp < 14 or len(frame) < udp + 8


def _ipv6_text(raw: bytes) -> str:
    return str(ipaddress.IPv6Address(raw))


def allowed_by_template(side: SwitchSide, address: str) -> bool:
    """Whether ``address`` lies in one of the side's ``allowed_addresses`` (such an
    address is never bound as the VM's own: it is the template's to allow)."""
    if not side.allowed_addresses:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in prefix for prefix in side.allowed_addresses)


def guard_refusal(frame: bytes, side: SwitchSide | None) -> tuple[str, str, str] | None:
    """(guard, kind, detail) of a frame a server's guards punted from ANTI_SPOOF, or None
    for a frame no guard refused (an IPv4 or ARP frame of a VM whose address is learnt).

    ``side`` is the sender's virtual-switch side (None: unknown VM). A DHCP server's
    own server messages are never refusals; every other punted IPv6 frame is the IPv6
    guard's (:func:`ryu_apps.core.ipv6_guard.refusal`)."""
    if side is None or not side.dhcp_server:
        refused = refusal(frame)
        if refused is not None:
            return ("DHCP",) + refused
    refused = ipv6_guard.refusal(frame)
    return None if refused is None else ("IPv6",) + refused
