"""Compile template ACL rules into OpenFlow match fields (pure).

One rule may need several flow entries: a rule with a protocol but no
ethertype matches IPv4 and IPv6, and a TCP/UDP port range is split into the
fewest value/mask pairs that cover it exactly. All entries of one rule share
its priority; rules count down from the top of the ACL band, so the order of
the YAML list is the match order, and the side's default action sits below.
"""

from __future__ import annotations

import itertools
from typing import Dict, Iterable, List, Sequence, Tuple

from ryu_apps.core.template_model import (
    ETH_IPV4,
    ETH_IPV6,
    IP_TCP,
    IP_UDP,
    Action,
    AclRule,
    Direction,
    PortRange,
)

Fields = Dict[str, object]

#: Priorities inside an ACL table: first rule highest, default lowest.
ACL_TOP_PRIORITY = 40000
ACL_DEFAULT_PRIORITY = 1000
MAX_RULES = ACL_TOP_PRIORITY - ACL_DEFAULT_PRIORITY - 1


def port_range_masks(ports: PortRange) -> List[Tuple[int, int]]:
    """The fewest (value, mask) pairs over 16-bit ports that match exactly the range."""
    pairs: List[Tuple[int, int]] = []
    low, high = ports.low, ports.high
    while low <= high:
        size = low & -low if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        pairs.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return pairs


def _port_values(ports: PortRange | None) -> List[object]:
    if ports is None:
        return [None]
    if ports.low == ports.high:
        return [ports.low]
    return [pair if pair[1] != 0xFFFF else pair[0] for pair in port_range_masks(ports)]


def _address_field(ethertype: int, which: str) -> str:
    family = "ipv4" if ethertype == ETH_IPV4 else "ipv6"
    return f"{family}_{which}"


def _prefix_value(prefix) -> object:
    if prefix.prefixlen == prefix.max_prefixlen:
        return str(prefix.network_address)
    return (str(prefix.network_address), str(prefix.netmask))


def rule_matches(rule: AclRule) -> List[Fields]:
    """Every OpenFlow match (as OXM fields) that together express the rule."""
    ethertypes = rule.ethertypes()
    if ethertypes is None:
        return [{}]
    matches: List[Fields] = []
    for ethertype in ethertypes:
        if ethertype not in (ETH_IPV4, ETH_IPV6):
            matches.append({"eth_type": ethertype})
            continue
        base: Fields = {"eth_type": ethertype}
        if rule.protocol is not None:
            base["ip_proto"] = rule.protocol
        for which, prefix in (("src", rule.src), ("dst", rule.dst)):
            if prefix is not None and prefix.prefixlen > 0:
                base[_address_field(ethertype, which)] = _prefix_value(prefix)
        icmp = "icmpv4" if ethertype == ETH_IPV4 else "icmpv6"
        if rule.icmp_type is not None:
            base[f"{icmp}_type"] = rule.icmp_type
        if rule.icmp_code is not None:
            base[f"{icmp}_code"] = rule.icmp_code
        matches.extend(_with_ports(base, rule))
    return matches


def entry_count(rule: AclRule) -> int:
    """How many entries :func:`rule_matches` gives for ``rule``, without building them."""
    ethertypes = rule.ethertypes()
    if ethertypes is None:
        return 1
    per_ip = 1
    if rule.protocol in (IP_TCP, IP_UDP):
        per_ip = len(_port_values(rule.src_port)) * len(_port_values(rule.dst_port))
    return sum(per_ip if ethertype in (ETH_IPV4, ETH_IPV6) else 1 for ethertype in ethertypes)


def _with_ports(base: Fields, rule: AclRule) -> List[Fields]:
    if rule.protocol not in (IP_TCP, IP_UDP):
        return [base]
    name = "tcp" if rule.protocol == IP_TCP else "udp"
    combos = itertools.product(_port_values(rule.src_port), _port_values(rule.dst_port))
    out = []
    for src, dst in combos:
        fields = dict(base)
        if src is not None:
            fields[f"{name}_src"] = src
        if dst is not None:
            fields[f"{name}_dst"] = dst
        out.append(fields)
    return out


def rules_for(acl: Sequence[AclRule], direction: Direction) -> List[AclRule]:
    """The rules of one direction, in order."""
    return [rule for rule in acl if rule.direction is direction]


def acl_entries(rules: Iterable[AclRule],
                default_action: Action) -> List[Tuple[int, Fields, Action]]:
    """(priority, match fields, action) for each entry, default last."""
    entries = []
    for index, rule in enumerate(rules):
        if index >= MAX_RULES:
            raise ValueError(f"an ACL holds at most {MAX_RULES} rules")
        for fields in rule_matches(rule):
            entries.append((ACL_TOP_PRIORITY - index, fields, rule.action))
    entries.append((ACL_DEFAULT_PRIORITY, {}, default_action))
    return entries
