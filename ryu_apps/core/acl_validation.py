"""Validation of one side's ACL: rule fields, their consistency, shadowing, limits (pure)."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from functools import partial
from typing import Callable, Dict, Mapping, Tuple

from ryu_apps.core.acl_compiler import entry_count
from ryu_apps.core.acl_cover import CoverIndex
from ryu_apps.core.template_errors import MAX_ERRORS
from ryu_apps.core.template_model import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IP_ICMP,
    IP_ICMPV6,
    IP_TCP,
    IP_UDP,
    MAX_PORT,
    MIN_PORT,
    AclRule,
    Action,
    Direction,
    PortRange,
    Prefix,
)
from ryu_apps.core.validation_checks import (
    Scope,
    T,
    as_mapping,
    check_keys,
    choice,
    int_in_range,
    is_int,
    join_path,
    parse_field,
    show,
)

PORT_RANGE_PATTERN = re.compile(r"(\d{1,5})-(\d{1,5})")

#: ACL rules on one side of a template (both directions together).
MAX_ACL_RULES = 20_000
#: OpenFlow entries one side's ACL compiles to (every VM of the template gets them).
MAX_ACL_ENTRIES = 50_000

RULE_KEYS = ("action", "direction", "ethertype", "protocol", "src", "dst",
             "src_port", "dst_port", "icmp_type", "icmp_code")

ETHERTYPES = {"ipv4": ETH_IPV4, "ipv6": ETH_IPV6, "arp": ETH_ARP}
PROTOCOLS = {"tcp": IP_TCP, "udp": IP_UDP, "icmp": IP_ICMP, "icmpv6": IP_ICMPV6}
PORT_PROTOCOLS = (IP_TCP, IP_UDP)
FAMILY_ETHERTYPE = {4: ETH_IPV4, 6: ETH_IPV6}
ICMP_FAMILY = {IP_ICMP: 4, IP_ICMPV6: 6}
#: ICMP type names an ACL rule may give instead of a number, per protocol.
ICMP_TYPE_NAMES: Dict[int, Dict[str, int]] = {
    IP_ICMP: {"echo-reply": 0, "destination-unreachable": 3, "redirect": 5,
              "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10,
              "time-exceeded": 11, "parameter-problem": 12},
    IP_ICMPV6: {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
                "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
                "router-solicitation": 133, "router-advertisement": 134,
                "neighbor-solicitation": 135, "neighbor-advertisement": 136,
                "redirect": 137},
}
ACTIONS = {a.value: a for a in Action}
DIRECTIONS = {d.value: d for d in Direction}


def parse_acl(scope: Scope, path: str, value: object) -> Tuple[AclRule, ...] | None:
    """One side's ACL, every rule checked and reachable, or None (errors reported)."""
    if not isinstance(value, list):
        scope.error(path, f"expected a list of rules, got {show(value)}")
        return None
    if len(value) > MAX_ACL_RULES:
        scope.error(path, f"{len(value):,} rules, more than the limit of {MAX_ACL_RULES:,} "
                          "per side")
        return None
    mark = scope.mark()
    parsed: Dict[int, AclRule] = {}
    reachable = CoverIndex()
    for index, entry in enumerate(value):
        if len(scope.errors) > MAX_ERRORS:
            break
        rule = _rule(scope, f"{path}[{index}]", entry)
        if rule is not None:
            _check_reachable(scope, f"{path}[{index}]", index, rule, parsed, reachable)
            parsed[index] = rule
    if not scope.clean_since(mark):
        return None
    entries = sum(entry_count(rule) for rule in parsed.values())
    if entries > MAX_ACL_ENTRIES:
        scope.error(path, f"compiles to {entries:,} OpenFlow entries, more than the limit of "
                          f"{MAX_ACL_ENTRIES:,} per side (a port range is split into "
                          "value/mask entries, and tcp or udp without an ethertype counts "
                          "for IPv4 and IPv6)")
        return None
    return tuple(parsed.values())


def _check_reachable(scope: Scope, path: str, index: int, rule: AclRule,
                     earlier_rules: Mapping[int, AclRule], reachable: CoverIndex) -> None:
    """Report a rule that repeats, or never matches because an earlier rule wins.

    The first earlier rule that covers ``rule`` is named ("duplicate" when the
    two are equal). It is found in ``reachable``, which holds only the earlier
    rules that were not themselves covered: covering is transitive, so the
    first rule covering this one is never a covered one.
    """
    first = reachable.first_cover(rule)
    if first is None:
        reachable.add(rule, index)
    elif earlier_rules[first] == rule:
        scope.error(path, f"duplicate of acl[{first}]")
    else:
        scope.error(path, f"shadowed by acl[{first}], which matches all of its traffic "
                          "first (first match wins), so it never matches")



def _rule(scope: Scope, path: str, value: object) -> AclRule | None:
    fields = as_mapping(scope, path, value, "a mapping (one ACL rule)")
    if fields is None:
        return None
    mark = scope.mark()
    check_keys(scope, path, fields, RULE_KEYS, ("action", "direction"))
    fields_mark = scope.mark()

    def parse_key(key: str, parse: Callable[[Scope, str, object], T]) -> T | None:
        return parse_field(scope, path, fields, key, parse)

    action = parse_key("action", partial(choice, choices=ACTIONS))
    direction = parse_key("direction", partial(choice, choices=DIRECTIONS))
    ethertype = parse_key("ethertype", partial(choice, choices=ETHERTYPES))
    protocol = parse_key("protocol", partial(choice, choices=PROTOCOLS))
    src, dst = parse_key("src", parse_prefix), parse_key("dst", parse_prefix)
    src_port, dst_port = parse_key("src_port", _port_range), parse_key("dst_port", _port_range)
    icmp_type, icmp_code = parse_key("icmp_type", _icmp_value), parse_key("icmp_code", _icmp_code)
    if not scope.clean_since(fields_mark) or action is None or direction is None:
        return None   # None: reported as missing
    rule = AclRule(action, direction, ethertype, protocol, src, dst, src_port, dst_port)
    _check_consistency(scope, path, rule)
    if not scope.clean_since(mark):
        return None
    if icmp_type is not None or icmp_code is not None:
        with_icmp = _with_icmp(scope, path, rule, icmp_type, icmp_code)
        if with_icmp is None:
            return None
        rule = with_icmp
    return dataclasses.replace(rule, ethertype=_inferred_ethertype(rule))


def _check_consistency(scope: Scope, path: str, rule: AclRule) -> None:
    """Contradictions between the fields of one rule (the rule is as written)."""
    if rule.ethertype == ETH_ARP:
        for key in ("protocol", "src", "dst", "src_port", "dst_port"):
            if getattr(rule, key) is not None:
                scope.error(join_path(path, key), "not allowed with ethertype arp "
                                              "(ARP has no IP protocol, addresses or ports)")
        return
    _check_families(scope, path, rule)
    for key in ("src_port", "dst_port"):
        if getattr(rule, key) is not None and rule.protocol not in PORT_PROTOCOLS:
            got = ("no protocol" if rule.protocol is None
                   else f"protocol {_protocol_name(rule.protocol)}")
            scope.error(join_path(path, key), f"ports need protocol tcp or udp, got {got}")


def _with_icmp(scope: Scope, path: str, rule: AclRule, icmp_type: int | str | None,
               icmp_code: int | None) -> AclRule | None:
    """The rule with its ICMP type and code, or None when they do not fit it (reported)."""
    if icmp_type is None:
        scope.error(join_path(path, "icmp_code"), "needs an icmp_type (a code without "
                                                  "its type matches nothing meaningful)")
        return None
    protocol = rule.protocol
    if protocol not in ICMP_FAMILY:
        got = "no protocol" if protocol is None else f"protocol {_protocol_name(protocol)}"
        hint = f" (did you mean protocol {_likely_icmp(icmp_type)}?)"
        scope.error(join_path(path, "icmp_type"),
                    f"needs protocol icmp or icmpv6, got {got}{hint}")
        return None
    if isinstance(icmp_type, str):
        names = ICMP_TYPE_NAMES[protocol]
        if icmp_type not in names:
            message = (f"unknown {_protocol_name(protocol)} type {icmp_type!r} (expected "
                       f"0-255 or one of: {', '.join(names)})")
            close = difflib.get_close_matches(icmp_type, list(names), n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]!r}?"
            scope.error(join_path(path, "icmp_type"), message)
            return None
        icmp_type = names[icmp_type]
    return dataclasses.replace(rule, icmp_type=icmp_type, icmp_code=icmp_code)


def _likely_icmp(icmp_type: int | str) -> str:
    """icmpv6 for a type only ICMPv6 has (128 and up, or an ICMPv6-only name), else icmp."""
    if isinstance(icmp_type, int):
        return "icmpv6" if icmp_type >= 128 else "icmp"
    v4, v6 = ICMP_TYPE_NAMES[IP_ICMP], ICMP_TYPE_NAMES[IP_ICMPV6]
    return "icmpv6" if icmp_type in v6 and icmp_type not in v4 else "icmp"


def _icmp_code(scope: Scope, path: str, value: object) -> int | None:
    return int_in_range(scope, path, value, 0, 255)


def _icmp_value(scope: Scope, path: str, value: object) -> int | str | None:
    """0-255, or a type name (checked once the protocol is known)."""
    if is_int(value) and 0 <= value <= 255:
        return value
    if isinstance(value, str) and 0 < len(value) <= 64 and value.strip() == value:
        return value
    scope.error(path, f"expected 0-255 or a type name like 'echo-request', got {show(value)}")
    return None


def _check_families(scope: Scope, path: str, rule: AclRule) -> None:
    """IP family agreement between ethertype, src, dst and icmp/icmpv6."""
    if rule.src is not None and rule.dst is not None and rule.src.version != rule.dst.version:
        scope.error(join_path(path, "dst"), f"{_describe_prefix(rule.dst)} but src is "
                                        f"{_describe_prefix(rule.src)}; src and dst must "
                                        "be the same IP family")
        return
    if rule.ethertype is not None:
        for key in ("src", "dst"):
            prefix = getattr(rule, key)
            if prefix is not None and FAMILY_ETHERTYPE[prefix.version] != rule.ethertype:
                scope.error(join_path(path, key), f"{_describe_prefix(prefix)} contradicts "
                                              f"ethertype {_ethertype_name(rule.ethertype)}")
    protocol = rule.protocol
    if protocol is None or protocol not in ICMP_FAMILY:
        return
    icmp_family = ICMP_FAMILY[protocol]
    if rule.ethertype is not None and FAMILY_ETHERTYPE[icmp_family] != rule.ethertype:
        scope.error(join_path(path, "protocol"), f"{_protocol_name(protocol)} contradicts "
                                             f"ethertype {_ethertype_name(rule.ethertype)}")
        return
    prefix = rule.src if rule.src is not None else rule.dst
    if prefix is not None and prefix.version != icmp_family:
        key = "src" if rule.src is not None else "dst"
        scope.error(join_path(path, "protocol"), f"{_protocol_name(protocol)} is "
                                             f"IPv{icmp_family} only, but {key} is "
                                             f"{_describe_prefix(prefix)}")


def _inferred_ethertype(rule: AclRule) -> int | None:
    """Explicit ethertype, else the prefixes' family, else icmp's, else None (any)."""
    if rule.ethertype is not None:
        return rule.ethertype
    prefix = rule.src if rule.src is not None else rule.dst
    if prefix is not None:
        return FAMILY_ETHERTYPE[prefix.version]
    if rule.protocol in ICMP_FAMILY:
        return FAMILY_ETHERTYPE[ICMP_FAMILY[rule.protocol]]
    return None


def parse_prefix(scope: Scope, path: str, value: object,
                 like: str = "'10.0.0.0/8' or '2001:db8::/32'") -> Prefix | None:
    """An IPv4 or IPv6 prefix (an address is a /32 or /128) without host bits, or a
    located error (with "did you mean" when only host bits are wrong); ``like``: the
    examples the error shows."""
    expected = f"expected an IPv4 or IPv6 prefix like {like}"
    if not isinstance(value, str) or len(value) > 64:   # no address is longer
        scope.error(path, f"{expected}, got {show(value)}")
        return None
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        scope.error(path, f"{expected}, got {show(value)}")
        return None
    scope.error(path, f"{expected}, got {show(value)}: host bits are set "
                      f"(did you mean '{network}'?)")
    return None


def _port_range(scope: Scope, path: str, value: object) -> PortRange | None:
    if is_int(value) and MIN_PORT <= value <= MAX_PORT:
        return PortRange(value, value)
    match = PORT_RANGE_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if MIN_PORT <= low <= MAX_PORT and MIN_PORT <= high <= MAX_PORT:
            if low <= high:
                return PortRange(low, high)
            scope.error(path, f"port range {value!r} is backwards: low {low} "
                              f"is greater than high {high}")
            return None
    scope.error(path, f"expected {MIN_PORT}-{MAX_PORT} or 'LOW-HIGH', got {show(value)}")
    return None



def _describe_prefix(prefix: Prefix) -> str:
    return f"IPv{prefix.version} prefix {prefix}"


def _ethertype_name(ethertype: int) -> str:
    return next(name for name, value in ETHERTYPES.items() if value == ethertype)


def _protocol_name(protocol: int) -> str:
    return next(name for name, value in PROTOCOLS.items() if value == protocol)


# -- stateful (core/conntrack.py) ----------------------------------------------
def parse_stateful(scope: Scope, path: str, side: Mapping, vswitch: bool) -> bool:
    """The side's ``stateful`` key (false when absent): a boolean, and only on the
    virtual switch (the access switch's port ACL has no connection tracking)."""
    if "stateful" not in side:
        return False
    value = side["stateful"]
    where = join_path(path, "stateful")
    if not isinstance(value, bool):
        scope.error(where, f"expected true or false, got {show(value)}")
        return False
    if value and not vswitch:
        scope.error(where, "stateful: true is only for virtual_switch (connections are "
                           "tracked on the server's bridge, where the VM's both directions "
                           "pass; the access switch keeps stateless port rules); move it "
                           "to virtual_switch")
        return False
    return value
