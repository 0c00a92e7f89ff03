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
Its neighbour discovery may only claim what is its own: a neighbour
advertisement comes from one of its addresses and targets that address, a
neighbour solicitation comes from one of its addresses (its source check), and
a DAD probe comes from ``::`` without a source link-layer option to a
solicited-node group (ff02::1:ff00:0/104). The link-layer option is not
enumerated but normalised: after the ACL table's checks a shared flow copies
the frame's Ethernet source (proven by the classifier: port and MAC) into the
solicitation's source or the advertisement's target link-layer option, so an
NS or NA leaves with the VM's own MAC whatever it claimed; a message without
the option leaves without it (Open vSwitch only rewrites an option that is
there, and fixes the ICMPv6 checksum). Like OVN, the DAD probe is not tied to
the VM's own address: during another VM's DAD window a VM may probe for its
address too, which only makes that VM's DAD see a duplicate (docs/security.md).
Router advertisements and redirects pass only when the template says
``router: true``. Everything else IPv6 is dropped, and punted through the
server's :data:`~ryu_apps.core.pipeline.IPV6_GUARD_METER` so the app logs it
once per VM and kind (:func:`refusal` names the kind).

The flows live in ANTI_SPOOF (the template's, per server and matched by its
metadata tag; the VM's own, matched by its port) and FROM_VM_ACL::

    IPV6_LEARN (tmpl)    first_seen, no global bound yet (learn6 bit): IPv6 from a
                         global source -> controller (metered)
    ND_ALLOW  (VM)       NA from each of its addresses for that address
    ND_ALLOW  (tmpl)     DAD probe: NS from ::, no SLL, to a solicited-node group
    ND_DROP   (template) every other NA; RA and redirect unless router: punted
    SPOOF_ALLOW (VM)     IPv6 from its link-local and bound global addresses (so its NS)
    SPOOF_ALLOW (tmpl)   MLD reports and router solicitations from ::
    SPOOF_LEARN (tmpl)   every other IPv6: punted (metered), so dropped
    FROM_VM_ACL ND_NORMALISE (tmpl): NS -> SLL := eth_src, NA -> TLL := eth_src, pass

A VM's own are two flows per address (a web VM: its link-local's source and
NA).
"""

from __future__ import annotations

import ipaddress
from typing import Dict, Iterable, Set

from ryu_apps.core.flowspec import OFPP_CONTROLLER, FlowSpec, MatchValue, Move, Output, \
    flow, make_match
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
#: Solicited-node multicast groups (RFC 4291 2.7.1), where DAD probes go.
SOLICITED_NODE = ("ff02::1:ff00:0", "ffff:ffff:ffff:ffff:ffff:ffff:ff00:0")
#: The shared actions that set an NS's or NA's link-layer option to the sender's MAC.
SET_SLL = Move("eth_src", "ipv6_nd_sll", 48)
SET_TLL = Move("eth_src", "ipv6_nd_tll", 48)


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
    # fe80:0:0:0:g4:g5:g6:g7; g5 ends in ff and g6 starts with fe, so never 0: the
    # longest run of zero groups is always the one after fe80 (with g4 when it is 0),
    # which is how ipaddress compresses it (RFC 5952).
    head = ((raw[0] ^ 0x02) << 8) | raw[1]
    tail = f"{(raw[2] << 8) | 0xFF:x}:{0xFE00 | raw[3]:x}:{(raw[4] << 8) | raw[5]:x}"
    return f"fe80::{head:x}:{tail}" if head else f"fe80::{tail}"


def _icmpv6(**fields: MatchValue) -> Dict[str, MatchValue]:
    return dict(eth_type=ETH_IPV6, ip_proto=IP_ICMPV6, **fields)


def template_flows(dpid: int, template_id: int, side: SwitchSide, cookie: int,
                   goto: int = Table.FROM_VM_ACL) -> Set[FlowSpec]:
    """The guard's ANTI_SPOOF flows every VM of a guarded template shares on one server."""
    if not guarded(side):
        return set()
    tag = template_metadata_match(template_id)
    table = Table.ANTI_SPOOF
    dropped = [ICMPV6_NA]
    if not side.router:
        dropped += [ICMPV6_RA, ICMPV6_REDIRECT]
    punt = (Output(OFPP_CONTROLLER, PACKET_IN_BYTES),)
    entries = {flow(dpid, table, Priority.ND_DROP,
                    make_match(metadata=tag, **_icmpv6(icmpv6_type=kind)), cookie,
                    meter=IPV6_GUARD_METER, actions=punt)
               for kind in dropped}
    entries.add(flow(dpid, table, Priority.ND_ALLOW,
                     make_match(metadata=tag, ipv6_src=UNSPECIFIED, ipv6_dst=SOLICITED_NODE,
                                ipv6_nd_sll=NO_LINK_LAYER, **_icmpv6(icmpv6_type=ICMPV6_NS)),
                     cookie, goto=goto))
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


def normalise_flows(dpid: int, template_id: int, side: SwitchSide, cookie: int,
                    goto: int = Table.FROM_VM_PORT_ACL) -> Set[FlowSpec]:
    """FROM_VM_ACL of a guarded template: the NS and NA its VMs' guard let through pass
    the ACL (as OVN's ACL stages pass ND), their link-layer option set to the sender's
    MAC, which the classifier proved (a message without the option keeps none)."""
    if not guarded(side):
        return set()
    tag = template_metadata_match(template_id)
    return {flow(dpid, Table.FROM_VM_ACL, Priority.ND_NORMALISE,
                 make_match(metadata=tag, **_icmpv6(icmpv6_type=kind)), cookie,
                 actions=(action,), goto=goto)
            for kind, action in ((ICMPV6_NS, SET_SLL), (ICMPV6_NA, SET_TLL))}


def vm_flows(dpid: int, port: int, mac: str, side: SwitchSide, cookie: int,
             goto: int = Table.FROM_VM_ACL, bound: Iterable[str] = ()) -> Set[FlowSpec]:
    """A guarded VM's own allows: its link-local and ``bound`` global addresses as
    sources, and an NA for each."""
    if not guarded(side):
        return set()
    mac = mac.lower()
    table = Table.ANTI_SPOOF
    entries: Set[FlowSpec] = set()
    if side.bind_ipv6 == DHCPV6:   # its DHCPv6 client messages, copied (a Release unbinds)
        entries.add(flow(dpid, table, Priority.DHCP_SNOOP,
                         make_match(in_port=port, eth_type=ETH_IPV6, ipv6_src=link_local(mac),
                                    ip_proto=IP_UDP, udp_src=DHCPV6_CLIENT,
                                    udp_dst=DHCPV6_SERVER),
                         cookie, meter=DHCP_SNOOP_METER,
                         actions=(Output(OFPP_CONTROLLER, DHCPV6_PUNT_BYTES),), goto=goto))
    for address in own_addresses(mac, bound if side.bind_ipv6 != LINK_LOCAL else ()):
        # make_match's order (sorted by field name), spelt out: built per VM
        entries.add(flow(dpid, table, Priority.SPOOF_ALLOW,
                         (("eth_type", ETH_IPV6), ("in_port", port), ("ipv6_src", address)),
                         cookie, goto=goto))
        entries.add(flow(dpid, table, Priority.ND_ALLOW,
                         (("eth_type", ETH_IPV6), ("icmpv6_type", ICMPV6_NA),
                          ("in_port", port), ("ip_proto", IP_ICMPV6),
                          ("ipv6_nd_target", address), ("ipv6_src", address)),
                         cookie, goto=goto))
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
