"""IPv6 anti-spoofing and the neighbour-discovery guard on a server bridge (pure).

For a template whose virtual switch says ``bind_ipv6: link_local``, a VM may
send IPv6 only from its link-local address, the modified EUI-64 of its MAC
(RFC 4291 appendix A; fixed by the MAC the VM is admitted with, so nothing is
learnt), and from ``::`` only what duplicate address detection and joining
its groups need. ``first_seen`` also binds the first global address (2000::/3
or fc00::/7) the VM sends from: while it has none, such a packet goes to the
controller (:mod:`~ryu_apps.core.ipv6_binding` binds it, or refuses an address
another VM holds); ``dhcpv6`` binds the addresses a trusted DHCPv6 server's
Reply gives it. A bound global address is the VM's own like its link-local.
Its neighbour discovery may only claim what is its own: a
neighbour solicitation from its own address carries its own MAC (or no
source link-layer option), a neighbour advertisement targets its own address
with its own MAC (or no target link-layer option), and a DAD probe from
``::`` targets its own address. Router advertisements and redirects pass only
when the template says ``router: true``. Everything else IPv6 is dropped, and
punted through the server's :data:`~ryu_apps.core.pipeline.IPV6_GUARD_METER`
so the app logs it once per VM and kind (:func:`refusal` names the kind).

The flows live in ANTI_SPOOF: the template's (per server, matched by its
metadata tag) drop, the VM's own (matched by its port) allow::

    IPV6_LEARN (tmpl)    first_seen, no global bound yet (learn6 bit): IPv6 from a
                         global source -> controller (metered)
    ND_ALLOW  (VM)       NS from its addresses (SLL = its MAC or none), DAD NS for
                         them, NA for each (TLL = its MAC or none)
    ND_DROP   (template) every other NS and NA; RA and redirect unless router: punted
    SPOOF_ALLOW (VM)     IPv6 from its link-local and bound global addresses
    SPOOF_ALLOW (tmpl)   MLD reports and router solicitations from ::
    SPOOF_LEARN (tmpl)   every other IPv6: punted (metered), so dropped
"""

from __future__ import annotations

import ipaddress
from typing import Dict, Iterable, Set

from ryu_apps.core.flowspec import OFPP_CONTROLLER, FlowSpec, MatchValue, Output, flow, \
    make_match
from ryu_apps.core.ipv6_frames import parse_ipv6
from ryu_apps.core.pipeline import DHCP_SNOOP_METER, IPV6_GUARD_METER, PACKET_IN_METER, \
    Priority, Table, template_metadata_match
from ryu_apps.core.switch_flows import PACKET_IN_BYTES
from ryu_apps.core.template_model import ETH_IPV6, IP_ICMPV6, IP_UDP, SwitchSide

#: ``bind_ipv6`` modes a template may give (None: IPv6 unguarded).
LINK_LOCAL, FIRST_SEEN, DHCPV6 = "link_local", "first_seen", "dhcpv6"
BIND_IPV6_MODES = (LINK_LOCAL, FIRST_SEEN, DHCPV6)
#: The global unicast (2000::/3) and unique local (fc00::/7) sources a VM may be bound to.
GLOBAL_PREFIXES = (ipaddress.IPv6Network("2000::/3"), ipaddress.IPv6Network("fc00::/7"))

ICMPV6_RS, ICMPV6_RA, ICMPV6_NS, ICMPV6_NA, ICMPV6_REDIRECT = 133, 134, 135, 136, 137
ICMPV6_MLD2_REPORT, ICMPV6_MLD1_REPORT = 143, 131
DHCPV6_CLIENT, DHCPV6_SERVER = 546, 547
#: Bytes of a snooped DHCPv6 frame sent to the controller (a whole non-jumbo frame).
DHCPV6_PUNT_BYTES = 1514
UNSPECIFIED = "::"
NO_LINK_LAYER = "00:00:00:00:00:00"   # OpenFlow's nd_sll/nd_tll when the option is absent


def guarded(side: SwitchSide) -> bool:
    """Whether a template's virtual switch guards the IPv6 its VMs send."""
    return side.bind_ipv6 is not None


def learns(side: SwitchSide) -> bool:
    """Whether a template binds its VMs' first global IPv6 source (``first_seen``)."""
    return side.bind_ipv6 == FIRST_SEEN


def is_global(address: str) -> bool:
    """Whether ``address`` is an IPv6 address a VM may be bound to (global or unique local)."""
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return any(parsed in prefix for prefix in GLOBAL_PREFIXES)


def link_local(mac: str) -> str:
    """The modified-EUI-64 link-local address of ``mac`` (``fe80::...``)."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"expected a 48-bit MAC, got {mac!r}")
    eui = bytes([raw[0] ^ 0x02]) + raw[1:3] + b"\xff\xfe" + raw[3:6]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def _icmpv6(**fields: MatchValue) -> Dict[str, MatchValue]:
    return dict(eth_type=ETH_IPV6, ip_proto=IP_ICMPV6, **fields)


def template_flows(dpid: int, template_id: int, side: SwitchSide, cookie: int,
                   goto: int = Table.FROM_VM_ACL) -> Set[FlowSpec]:
    """The guard's flows every VM of a guarded template shares on one server."""
    if not guarded(side):
        return set()
    tag = template_metadata_match(template_id)
    table = Table.ANTI_SPOOF
    dropped = [ICMPV6_NS, ICMPV6_NA]
    if not side.router:
        dropped += [ICMPV6_RA, ICMPV6_REDIRECT]
    punt = (Output(OFPP_CONTROLLER, PACKET_IN_BYTES),)
    entries = {flow(dpid, table, Priority.ND_DROP,
                    make_match(metadata=tag, **_icmpv6(icmpv6_type=kind)), cookie,
                    meter=IPV6_GUARD_METER, actions=punt)
               for kind in dropped}
    for kind in (ICMPV6_RS, ICMPV6_MLD1_REPORT, ICMPV6_MLD2_REPORT):
        entries.add(flow(dpid, table, Priority.SPOOF_ALLOW,
                         make_match(metadata=tag, ipv6_src=UNSPECIFIED,
                                    **_icmpv6(icmpv6_type=kind)), cookie, goto=goto))
    entries.add(flow(dpid, table, Priority.SPOOF_LEARN,
                     make_match(metadata=tag, eth_type=ETH_IPV6), cookie,
                     meter=IPV6_GUARD_METER, actions=punt))
    if learns(side):
        learning = template_metadata_match(template_id, learn_ipv6=True)
        entries |= {flow(dpid, table, Priority.IPV6_LEARN,
                         make_match(metadata=learning, eth_type=ETH_IPV6,
                                    ipv6_src=(str(prefix.network_address),
                                              str(prefix.netmask))),
                         cookie, meter=PACKET_IN_METER, actions=punt)
                    for prefix in GLOBAL_PREFIXES}
    return entries


def vm_flows(dpid: int, port: int, mac: str, side: SwitchSide, cookie: int,
             meter: int | None = None, goto: int = Table.FROM_VM_ACL,
             bound: Iterable[str] = ()) -> Set[FlowSpec]:
    """A guarded VM's own allows: its link-local and ``bound`` global addresses, and
    its own ND for each."""
    if not guarded(side):
        return set()
    mac = mac.lower()
    table = Table.ANTI_SPOOF

    def allow(priority: int, **fields: MatchValue) -> FlowSpec:
        return flow(dpid, table, priority, make_match(in_port=port, **fields), cookie,
                    meter=meter, goto=goto)

    entries: Set[FlowSpec] = set()
    if side.bind_ipv6 == DHCPV6:   # its DHCPv6 client messages, copied (a Release unbinds)
        entries.add(flow(dpid, table, Priority.DHCP_SNOOP,
                         make_match(in_port=port, eth_type=ETH_IPV6, ipv6_src=link_local(mac),
                                    ip_proto=IP_UDP, udp_src=DHCPV6_CLIENT,
                                    udp_dst=DHCPV6_SERVER),
                         cookie, meter=DHCP_SNOOP_METER if meter is None else meter,
                         actions=(Output(OFPP_CONTROLLER, DHCPV6_PUNT_BYTES),), goto=goto))
    for address in own_addresses(mac, bound if side.bind_ipv6 != LINK_LOCAL else ()):
        entries.add(allow(Priority.SPOOF_ALLOW, eth_type=ETH_IPV6, ipv6_src=address))
        for own_mac in (mac, NO_LINK_LAYER):
            entries.add(allow(Priority.ND_ALLOW, ipv6_src=address, ipv6_nd_sll=own_mac,
                              **_icmpv6(icmpv6_type=ICMPV6_NS)))
            entries.add(allow(Priority.ND_ALLOW, ipv6_src=address, ipv6_nd_target=address,
                              ipv6_nd_tll=own_mac, **_icmpv6(icmpv6_type=ICMPV6_NA)))
        entries.add(allow(Priority.ND_ALLOW, ipv6_src=UNSPECIFIED, ipv6_nd_target=address,
                          ipv6_nd_sll=NO_LINK_LAYER, **_icmpv6(icmpv6_type=ICMPV6_NS)))
    return entries


def dhcpv6_delivery(dpid: int, port: int, delivered: int, side: SwitchSide,
                    cookie: int) -> Set[FlowSpec]:
    """A ``bind_ipv6: dhcpv6`` VM's OUTPUT flow for DHCPv6 server messages: to the VM and a
    copy to the controller (``delivered``: the metadata its deliveries write), metered."""
    if side.bind_ipv6 != DHCPV6:
        return set()
    return {flow(dpid, Table.OUTPUT, Priority.DHCP_SNOOP,
                 make_match(metadata=delivered, eth_type=ETH_IPV6, ip_proto=IP_UDP,
                            udp_src=DHCPV6_SERVER, udp_dst=DHCPV6_CLIENT),
                 cookie, meter=DHCP_SNOOP_METER,
                 actions=(Output(port), Output(OFPP_CONTROLLER, DHCPV6_PUNT_BYTES)))}


def own_addresses(mac: str, bound: Iterable[str] = ()) -> tuple[str, ...]:
    """The IPv6 addresses a guarded VM may send from: its link-local, then ``bound``."""
    return (link_local(mac),) + tuple(bound)


#: What the guard refused, by kind (the app logs each once per VM).
SPOOFED_SOURCE, NS_CLAIM, NA_CLAIM = "spoofed source", "neighbour solicitation", \
    "neighbour advertisement"
ROUTER_ADVERTISEMENT, REDIRECT = "router advertisement", "redirect"


def refusal(frame: bytes) -> tuple[str, str] | None:
    """(kind, detail) of an IPv6 frame the guard punted; None if it is not IPv6.

    The kind is the message type the guard refused (or a spoofed source for any
    other packet); the detail says what the frame claimed."""
    info = parse_ipv6(frame)
    if info is None:
        return None
    detail = f"source {info.src}"
    if info.icmp_type == ICMPV6_RA:
        return ROUTER_ADVERTISEMENT, detail
    if info.icmp_type == ICMPV6_REDIRECT:
        return REDIRECT, detail
    if info.icmp_type in (ICMPV6_NS, ICMPV6_NA):
        option = "source" if info.icmp_type == ICMPV6_NS else "target"
        lladdr = info.nd_lladdr or "none"
        detail += f", target {info.nd_target}, {option} link-layer address {lladdr}"
        return (NS_CLAIM if info.icmp_type == ICMPV6_NS else NA_CLAIM), detail
    return SPOOFED_SOURCE, detail
