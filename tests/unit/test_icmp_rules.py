"""ICMP and ICMPv6 type and code in ACL rules: validation, compilation, shadowing."""

from __future__ import annotations

import pytest

from ryu_apps.core.acl_compiler import entry_count, rule_matches
from ryu_apps.core.template_model import ETH_IPV4, ETH_IPV6, IP_ICMP, IP_ICMPV6
from tests.unit.test_template_validation import (
    build,
    error_lines,
    only_error,
    parsed_rule,
    rule,
    with_acl,
)

PREFIX = "templates/web.yaml: template 250 'web': virtual_switch.acl"


def test_type_and_code_compile_to_the_family_s_icmp_fields():
    echo = parsed_rule(protocol="icmp", icmp_type=8, icmp_code=0)
    assert (echo.ethertype, echo.icmp_type, echo.icmp_code) == (ETH_IPV4, 8, 0)
    assert rule_matches(echo) == [{"eth_type": ETH_IPV4, "ip_proto": IP_ICMP,
                                   "icmpv4_type": 8, "icmpv4_code": 0}]
    ns = parsed_rule(protocol="icmpv6", icmp_type="neighbor-solicitation",
                     src="fe80::/10")
    assert rule_matches(ns) == [{"eth_type": ETH_IPV6, "ip_proto": IP_ICMPV6,
                                 "ipv6_src": ("fe80::", "ffc0::"), "icmpv6_type": 135}]
    assert entry_count(ns) == len(rule_matches(ns)) == 1


def test_type_names_are_per_family():
    assert parsed_rule(protocol="icmp", icmp_type="echo-request").icmp_type == 8
    assert parsed_rule(protocol="icmpv6", icmp_type="echo-request").icmp_type == 128
    assert parsed_rule(protocol="icmpv6", icmp_type="router-advertisement").icmp_type == 134


def test_a_type_without_its_protocol_is_refused_with_a_hint():
    assert only_error(with_acl(rule(protocol="tcp", icmp_type=8))) == (
        f"{PREFIX}[0].icmp_type: needs protocol icmp or icmpv6, got protocol tcp "
        "(did you mean protocol icmp?)")
    assert only_error(with_acl(rule(icmp_type=135))) == (
        f"{PREFIX}[0].icmp_type: needs protocol icmp or icmpv6, got no protocol "
        "(did you mean protocol icmpv6?)")
    assert only_error(with_acl(rule(ethertype="ipv6", icmp_type="neighbor-advertisement"))) \
        == (f"{PREFIX}[0].icmp_type: needs protocol icmp or icmpv6, got no protocol "
            "(did you mean protocol icmpv6?)")


def test_a_code_without_a_type_is_refused():
    assert only_error(with_acl(rule(protocol="icmp", icmp_code=3))) == (
        f"{PREFIX}[0].icmp_code: needs an icmp_type (a code without its type matches "
        "nothing meaningful)")


@pytest.mark.parametrize("key, value, expected", [
    ("icmp_type", 256, "expected 0-255 or a type name like 'echo-request', got 256"),
    ("icmp_type", -1, "expected 0-255 or a type name like 'echo-request', got -1"),
    ("icmp_type", True, "expected 0-255 or a type name like 'echo-request', "
                        "got true (a boolean)"),
    ("icmp_code", 300, "expected an integer 0-255, got 300"),
    ("icmp_code", "x", "expected an integer 0-255, got 'x'"),
])
def test_out_of_range_values_are_located(key, value, expected):
    fields = {"protocol": "icmp", "icmp_type": 3, key: value}
    assert only_error(with_acl(rule(**fields))) == f"{PREFIX}[0].{key}: {expected}"


def test_an_unknown_type_name_gets_a_did_you_mean():
    message = only_error(with_acl(rule(protocol="icmpv6",
                                       icmp_type="neighbour-advertisement")))
    assert message.startswith(f"{PREFIX}[0].icmp_type: unknown icmpv6 type "
                              "'neighbour-advertisement' (expected 0-255 or one of: ")
    assert message.endswith("; did you mean 'neighbor-advertisement'?")
    assert "did you mean" not in only_error(with_acl(rule(protocol="icmp",
                                                          icmp_type="nonsense")))


def test_an_ipv6_prefix_where_icmp_wants_ipv4_is_refused():
    assert only_error(with_acl(rule(protocol="icmp", icmp_type=8, dst="2001:db8::/32"))) \
        == (f"{PREFIX}[0].protocol: icmp is IPv4 only, but dst is IPv6 prefix "
            "2001:db8::/32")
    assert only_error(with_acl(rule(ethertype="ipv4", src="2001:db8::/32"))) == (
        f"{PREFIX}[0].src: IPv6 prefix 2001:db8::/32 contradicts ethertype ipv4")


def test_type_and_code_with_arp_are_refused():
    lines = error_lines([("templates/web.yaml", {"templates": [with_acl(
        rule(ethertype="arp", icmp_type=1))]})])
    assert lines == [f"{PREFIX}[0].icmp_type: needs protocol icmp or icmpv6, got no "
                     "protocol (did you mean protocol icmp?)"]


def test_shadowing_knows_type_and_code():
    # A rule without a type covers every type; one with a type covers only it.
    assert only_error(with_acl(rule(protocol="icmpv6"),
                               rule(protocol="icmpv6", icmp_type=135))) == (
        f"{PREFIX}[1]: shadowed by acl[0], which matches all of its traffic first "
        "(first match wins), so it never matches")
    assert only_error(with_acl(rule(protocol="icmp", icmp_type=3),
                               rule(protocol="icmp", icmp_type=3, icmp_code=1))) == (
        f"{PREFIX}[1]: shadowed by acl[0], which matches all of its traffic first "
        "(first match wins), so it never matches")
    assert only_error(with_acl(rule(protocol="icmp", icmp_type=8),
                               rule(protocol="icmp", icmp_type="echo-request"))) == (
        f"{PREFIX}[1]: duplicate of acl[0]")
    # Different types, or a narrower rule first: both reachable.
    library = build(with_acl(rule(protocol="icmpv6", icmp_type=135),
                             rule(protocol="icmpv6", icmp_type=136),
                             rule(protocol="icmp", icmp_type=3, icmp_code=1),
                             rule(protocol="icmp", icmp_type=3),
                             rule(protocol="icmpv6")))
    assert len(library.get(250).virtual_switch.acl) == 5


def test_covers_agrees_with_the_index():
    broad = parsed_rule(protocol="icmpv6")
    typed = parsed_rule(protocol="icmpv6", icmp_type=135)
    coded = parsed_rule(protocol="icmpv6", icmp_type=135, icmp_code=0)
    assert broad.covers(typed) and typed.covers(coded) and broad.covers(coded)
    assert not typed.covers(broad) and not coded.covers(typed)
    assert "icmp_type=135 icmp_code=0" in coded.describe()
