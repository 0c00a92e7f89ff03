"""Template model and strict validation of parsed template documents."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import itertools
import string
from typing import List, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ryu_apps.core.template_model import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IP_ICMP,
    IP_ICMPV6,
    IP_TCP,
    IP_UDP,
    AclRule,
    Action,
    Bandwidth,
    Direction,
    PortRange,
    TemplateLibrary,
)
from ryu_apps.core.acl_compiler import entry_count, rule_matches
from ryu_apps.core.template_validation import (
    MAX_ACL_RULES,
    TemplateError,
    TemplateValidationError,
    build_library,
)

SOURCE = "templates/web.yaml"


# -- helpers ---------------------------------------------------------------------
def make_template(**overrides) -> dict:
    template = {
        "id": 250, "name": "web", "description": "Public web tier", "vlan": 100,
        "virtual_switch": {"default_action": "deny"},
        "access_port": {"default_action": "allow"},
    }
    template.update(overrides)
    return template


def with_acl(*rules: dict) -> dict:
    return make_template(virtual_switch={"default_action": "deny", "acl": list(rules)})


def rule(**fields) -> dict:
    return {"action": "allow", "direction": "to_vm", **fields}


def build(*templates: dict, defaults: dict | None = None) -> TemplateLibrary:
    document: dict = {"templates": list(templates)}
    if defaults is not None:
        document["defaults"] = defaults
    return build_library([(SOURCE, document)])


def error_lines(documents) -> List[str]:
    with pytest.raises(TemplateValidationError) as raised:
        build_library(documents)
    return [str(error) for error in raised.value.errors]


def only_error(*templates: dict) -> str:
    lines = error_lines([(SOURCE, {"templates": list(templates)})])
    assert len(lines) == 1, lines
    return lines[0]


def parsed_rule(**fields) -> AclRule:
    return build(with_acl(rule(**fields))).get(250).virtual_switch.acl[0]


# -- valid libraries ---------------------------------------------------------------
def test_minimal_template_builds_with_builtin_defaults():
    template = build(make_template()).get(250)
    assert template.name == "web" and template.vlan == 100
    assert template.description == "Public web tier"
    assert template.idle_timeout == 300
    assert template.source == SOURCE
    assert template.virtual_switch.default_action is Action.DENY
    assert template.virtual_switch.acl == () and template.virtual_switch.bandwidth is None
    assert template.virtual_switch.bind_ip is None   # IPv4 unguarded
    assert template.access_port.default_action is Action.ALLOW


def test_full_template_builds_every_field():
    template = build(make_template(
        id="0x00FA", idle_timeout=600,
        virtual_switch={
            "default_action": "deny", "bind_ip": True,
            "acl": [rule(protocol="tcp", src="0.0.0.0/0", dst="10.0.100.0/24",
                         src_port="1024-65535", dst_port=443)],
            "bandwidth": {"rate_kbps": 100000, "burst_kbits": 5000},
        },
        access_port={"default_action": "allow",
                     "acl": [rule(action="deny", direction="from_vm", ethertype="ipv6")],
                     "bandwidth": {"rate_kbps": 500000}},
    )).get(0x00FA)
    assert template.idle_timeout == 600
    assert template.virtual_switch.bind_ip == "first_seen"   # true is its alias
    assert template.virtual_switch.bandwidth == Bandwidth(100000, 5000)
    assert template.access_port.bandwidth == Bandwidth(500000, 50000)
    assert template.virtual_switch.acl == (AclRule(
        Action.ALLOW, Direction.TO_VM, ETH_IPV4, IP_TCP,
        ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("10.0.100.0/24"),
        PortRange(1024, 65535), PortRange(443, 443)),)
    assert template.access_port.acl[0].ethertype == ETH_IPV6
    assert template.access_port.acl[0].direction is Direction.FROM_VM


def test_burst_defaults_to_a_tenth_of_the_rate_and_at_least_one():
    library = build(make_template(virtual_switch={
        "default_action": "allow", "bandwidth": {"rate_kbps": 5}}))
    assert library.get(250).virtual_switch.bandwidth == Bandwidth(5, 1)


def test_defaults_idle_timeout_applies_unless_a_template_overrides_it():
    library = build_library([
        ("a.yaml", {"templates": [make_template(), make_template(
            id=251, name="db", idle_timeout=60)]}),
        ("z.yaml", {"defaults": {"idle_timeout": 900}}),
    ])
    assert library.default_idle_timeout == 900
    assert library.get(250).idle_timeout == 900
    assert library.get(251).idle_timeout == 60
    assert library.sources == ("a.yaml", "z.yaml")


def test_file_may_hold_an_empty_template_list():
    library = build_library([("a.yaml", {"templates": []}),
                             ("b.yaml", {"templates": [make_template()]})])
    assert len(library) == 1


@pytest.mark.parametrize("fields, ethertype", [
    ({"src": "10.0.0.0/8"}, ETH_IPV4),
    ({"dst": "2001:db8::/32"}, ETH_IPV6),
    ({"protocol": "icmp"}, ETH_IPV4),
    ({"protocol": "icmpv6"}, ETH_IPV6),
    ({"protocol": "tcp", "dst_port": 80}, None),
    ({}, None),
    ({"ethertype": "arp"}, ETH_ARP),
    ({"ethertype": "ipv6", "protocol": "udp"}, ETH_IPV6),
])
def test_ethertype_is_inferred(fields, ethertype):
    assert parsed_rule(**fields).ethertype == ethertype


def test_ethertypes_of_a_rule():
    assert parsed_rule(protocol="udp").ethertypes() == (ETH_IPV4, ETH_IPV6)
    assert parsed_rule(protocol="icmp").ethertypes() == (ETH_IPV4,)
    assert parsed_rule().ethertypes() is None


def test_rule_describe():
    assert parsed_rule(protocol="tcp", src="10.0.0.0/8", dst_port="80-81").describe() == (
        "allow to_vm ethertype=ipv4 protocol=tcp src=10.0.0.0/8 dst_port=80-81")
    assert parsed_rule(protocol="udp").describe() == (
        "allow to_vm ethertype=ipv4,ipv6 protocol=udp")
    assert parsed_rule().describe() == "allow to_vm (all traffic)"


def test_library_lookup_and_iteration():
    library = build(make_template(id=300, name="b"), make_template(id=7, name="a"))
    assert [t.template_id for t in library] == [7, 300]
    assert len(library) == 2
    assert 7 in library and 8 not in library
    assert library.get(8) is None
    assert library.by_name("b").template_id == 300
    assert library.by_name("c") is None


def test_library_and_templates_are_read_only():
    library = build(make_template())
    with pytest.raises(TypeError):
        library.templates[1] = library.get(250)
    with pytest.raises(dataclasses.FrozenInstanceError):
        library.get(250).vlan = 5


def test_port_range_contains():
    assert PortRange(1, 10).contains(PortRange(2, 10))
    assert not PortRange(2, 10).contains(PortRange(1, 10))
    assert PortRange(80, 80).contains(80) and not PortRange(80, 80).contains(81)
    with pytest.raises(ValueError):
        PortRange(10, 9)


# -- error reporting ---------------------------------------------------------------
def test_error_names_file_template_field_value_and_expectation():
    line = only_error(with_acl(rule(), rule(direction="from_vm"),
                               rule(protocol="tcp", dst_port="http")))
    assert line == ("templates/web.yaml: template 250 'web': virtual_switch.acl[2].dst_port: "
                    "expected 1-65535 or 'LOW-HIGH', got 'http'")


def test_every_error_is_collected_and_str_is_one_line_each():
    with pytest.raises(TemplateValidationError) as raised:
        build(make_template(vlan=0, description="", access_port={}))
    errors = raised.value.errors
    assert [e.field for e in errors] == ["description", "vlan", "access_port.default_action"]
    assert all(isinstance(e, TemplateError) and e.template == "template 250 'web'"
               for e in errors)
    assert str(raised.value).splitlines() == [str(e) for e in errors]
    assert isinstance(raised.value, ValueError)


def test_one_bad_template_means_no_library():
    with pytest.raises(TemplateValidationError, match="template 251 'db': vlan"):
        build(make_template(), make_template(id=251, name="db", vlan=5000))


def test_template_without_valid_id_and_name_is_named_by_position():
    lines = error_lines([(SOURCE, {"templates": [make_template(), {"vlna": 1}]})])
    assert lines[0] == ("templates/web.yaml: templates[1]: unknown key 'vlna' (expected one "
                        "of: id, name, description, vlan, idle_timeout, virtual_switch, "
                        "access_port); did you mean 'vlan'?")
    assert "templates/web.yaml: templates[1].id: missing required key" in lines


@pytest.mark.parametrize("overrides, expected", [
    ({"vlan": True}, "vlan: expected an integer 1-4094, got true (a boolean)"),
    ({"vlan": "100"}, "vlan: expected an integer 1-4094, got '100'"),
    ({"vlan": 1.5}, "vlan: expected an integer 1-4094, got 1.5"),
    ({"name": 5}, "name: expected a name of 1-32 characters from a-z 0-9 _ - starting with "
                  "a letter or digit, got 5"),
    ({"description": ["x"]}, "description: expected a non-empty string, got a list"),
    ({"idle_timeout": None}, "idle_timeout: expected an integer 1-86400 (seconds), "
                             "got nothing (null)"),
    ({"virtual_switch": "deny"}, "virtual_switch: expected a mapping, got 'deny'"),
    ({"virtual_switch": {"default_action": "deny", "bind_ip": "yes"}},
     "virtual_switch.bind_ip: expected 'first_seen' or 'dhcp' (true means 'first_seen') "
     "or false, got 'yes'"),
    ({"virtual_switch": {"default_action": "permit"}},
     "virtual_switch.default_action: expected one of 'allow', 'deny', got 'permit'"),
    ({"virtual_switch": {"default_action": "deny", "acl": None}},
     "virtual_switch.acl: expected a list of rules, got nothing (null)"),
    ({"virtual_switch": {"default_action": "deny", "acl": ["allow"]}},
     "virtual_switch.acl[0]: expected a mapping (one ACL rule), got 'allow'"),
    ({"access_port": {"default_action": "deny", "bandwidth": 100}},
     "access_port.bandwidth: expected a mapping, got 100"),
    ({"access_port": {"default_action": "deny", "bandwidth": {"rate_kbps": True}}},
     "access_port.bandwidth.rate_kbps: expected an integer 1-100000000, got true (a boolean)"),
])
def test_wrong_types(overrides, expected):
    assert only_error(make_template(**overrides)).endswith(f": {expected}")


@pytest.mark.parametrize("overrides, expected", [
    ({"id": 65536}, "id: expected an integer 0-65535 or a hex string like '0x00FA', got 65536"),
    ({"id": -1}, "id: expected an integer 0-65535 or a hex string like '0x00FA', got -1"),
    ({"id": "0x10000"}, "id: expected an integer 0-65535 or a hex string like '0x00FA', "
                        "got '0x10000'"),
    ({"vlan": 0}, "vlan: expected an integer 1-4094, got 0"),
    ({"vlan": 4095}, "vlan: expected an integer 1-4094, got 4095"),
    ({"idle_timeout": 0}, "idle_timeout: expected an integer 1-86400 (seconds), got 0"),
    ({"idle_timeout": 86401}, "idle_timeout: expected an integer 1-86400 (seconds), got 86401"),
    ({"access_port": {"default_action": "allow", "bandwidth": {"rate_kbps": 0}}},
     "access_port.bandwidth.rate_kbps: expected an integer 1-100000000, got 0"),
    ({"access_port": {"default_action": "allow",
                      "bandwidth": {"rate_kbps": 10, "burst_kbits": 100000001}}},
     "access_port.bandwidth.burst_kbits: expected an integer 0-100000000, got 100000001"),
])
def test_out_of_range_values(overrides, expected):
    assert only_error(make_template(**overrides)).endswith(f": {expected}")


def test_bad_name_and_id_labels_fall_back():
    assert only_error(make_template(name="Web")).startswith(
        "templates/web.yaml: template 250: name: expected a name")
    assert only_error(make_template(id="250")).startswith(
        "templates/web.yaml: template 'web': id: expected an integer 0-65535")
    assert only_error(make_template(id=False)) == (
        "templates/web.yaml: template 'web': id: expected an integer 0-65535 or a hex string "
        "like '0x00FA', got false (a boolean)")


@pytest.mark.parametrize("fields, expected", [
    ({"action": "permit"}, "action: expected one of 'allow', 'deny', got 'permit'"),
    ({"direction": "in"}, "direction: expected one of 'to_vm', 'from_vm', got 'in'"),
    ({"ethertype": "ip"}, "ethertype: expected one of 'ipv4', 'ipv6', 'arp', got 'ip'"),
    ({"protocol": "sctp"}, "protocol: expected one of 'tcp', 'udp', 'icmp', 'icmpv6', "
                           "got 'sctp'"),
    ({"src": "10.0.0.1/8"}, "src: expected an IPv4 or IPv6 prefix like '10.0.0.0/8' or "
                            "'2001:db8::/32', got '10.0.0.1/8': host bits are set "
                            "(did you mean '10.0.0.0/8'?)"),
    ({"dst": "10.0.0.256"}, "dst: expected an IPv4 or IPv6 prefix like '10.0.0.0/8' or "
                            "'2001:db8::/32', got '10.0.0.256'"),
    ({"dst": 167772160}, "dst: expected an IPv4 or IPv6 prefix like '10.0.0.0/8' or "
                         "'2001:db8::/32', got 167772160"),
    ({"protocol": "tcp", "dst_port": 0}, "dst_port: expected 1-65535 or 'LOW-HIGH', got 0"),
    ({"protocol": "tcp", "dst_port": 65536}, "dst_port: expected 1-65535 or 'LOW-HIGH', "
                                             "got 65536"),
    ({"protocol": "tcp", "src_port": "1-70000"}, "src_port: expected 1-65535 or 'LOW-HIGH', "
                                                 "got '1-70000'"),
    ({"protocol": "tcp", "dst_port": True}, "dst_port: expected 1-65535 or 'LOW-HIGH', "
                                            "got true (a boolean)"),
])
def test_bad_rule_fields(fields, expected):
    assert only_error(with_acl(rule(**fields))) == (
        f"templates/web.yaml: template 250 'web': virtual_switch.acl[0].{expected}")


def test_host_address_is_a_full_length_prefix():
    assert parsed_rule(src="10.0.0.1").src == ipaddress.ip_network("10.0.0.1/32")
    assert parsed_rule(dst="2001:db8::1").dst == ipaddress.ip_network("2001:db8::1/128")


def test_missing_required_keys():
    template = make_template(virtual_switch={"acl": [{"direction": "to_vm"}]},
                             access_port={"default_action": "allow", "bandwidth": {}})
    del template["vlan"]
    lines = error_lines([(SOURCE, {"templates": [template]}), ("b.yaml", {})])
    prefix = "templates/web.yaml: template 250 'web': "
    assert lines == [
        prefix + "vlan: missing required key",
        prefix + "virtual_switch.default_action: missing required key",
        prefix + "virtual_switch.acl[0].action: missing required key",
        prefix + "access_port.bandwidth.rate_kbps: missing required key",
        "b.yaml: templates: missing required key",
    ]


def test_unknown_keys_everywhere_with_hints():
    template = make_template(vlna=5, access_port={"default_action": "allow", "bind_ip": True},
                             virtual_switch={"default_action": "deny",
                                             "acl": [rule(dst_prt=80)],
                                             "bandwidth": {"rate_kbps": 1, "burst": 1}})
    lines = error_lines([(SOURCE, {"templates": [template], "templats": []}),
                         ("d.yaml", {"defaults": {"idle": 5}})])
    prefix = "templates/web.yaml: template 250 'web': "
    assert lines == [
        "templates/web.yaml: unknown key 'templats' (expected one of: templates, defaults); "
        "did you mean 'templates'?",
        prefix + "unknown key 'vlna' (expected one of: id, name, description, vlan, "
                 "idle_timeout, virtual_switch, access_port); did you mean 'vlan'?",
        prefix + "virtual_switch.acl[0]: unknown key 'dst_prt' (expected one of: action, "
                 "direction, ethertype, protocol, src, dst, src_port, dst_port, icmp_type, "
                 "icmp_code); did you mean 'dst_port'?",
        prefix + "virtual_switch.bandwidth: unknown key 'burst' (expected one of: rate_kbps, "
                 "burst_kbits); did you mean 'burst_kbits'?",
        prefix + "access_port: unknown key 'bind_ip' (expected one of: default_action, "
                 "stateful, acl, bandwidth)",
        "d.yaml: defaults: unknown key 'idle' (expected one of: idle_timeout)",
    ]


@pytest.mark.parametrize("fields, expected", [
    ({"ethertype": "arp", "protocol": "udp"},
     "protocol: not allowed with ethertype arp (ARP has no IP protocol, addresses or ports)"),
    ({"ethertype": "arp", "src": "10.0.0.0/8"},
     "src: not allowed with ethertype arp (ARP has no IP protocol, addresses or ports)"),
    ({"ethertype": "ipv4", "dst": "2001:db8::/32"},
     "dst: IPv6 prefix 2001:db8::/32 contradicts ethertype ipv4"),
    ({"ethertype": "ipv6", "src": "10.0.0.0/8"},
     "src: IPv4 prefix 10.0.0.0/8 contradicts ethertype ipv6"),
    ({"ethertype": "ipv4", "protocol": "icmpv6"}, "protocol: icmpv6 contradicts ethertype ipv4"),
    ({"ethertype": "ipv6", "protocol": "icmp"}, "protocol: icmp contradicts ethertype ipv6"),
    ({"protocol": "icmp", "dst": "2001:db8::/32"},
     "protocol: icmp is IPv4 only, but dst is IPv6 prefix 2001:db8::/32"),
    ({"protocol": "icmpv6", "src": "10.0.0.0/8"},
     "protocol: icmpv6 is IPv6 only, but src is IPv4 prefix 10.0.0.0/8"),
    ({"src": "10.0.0.0/8", "dst": "2001:db8::/32"},
     "dst: IPv6 prefix 2001:db8::/32 but src is IPv4 prefix 10.0.0.0/8; src and dst must "
     "be the same IP family"),
    ({"dst_port": 80}, "dst_port: ports need protocol tcp or udp, got no protocol"),
    ({"protocol": "icmp", "src_port": 80},
     "src_port: ports need protocol tcp or udp, got protocol icmp"),
    ({"protocol": "tcp", "dst_port": "443-80"},
     "dst_port: port range '443-80' is backwards: low 443 is greater than high 80"),
])
def test_contradictory_rule_fields(fields, expected):
    assert only_error(with_acl(rule(**fields))) == (
        f"templates/web.yaml: template 250 'web': virtual_switch.acl[0].{expected}")


def test_arp_with_ports_reports_each_field():
    lines = error_lines([(SOURCE, {"templates": [with_acl(rule(
        ethertype="arp", protocol="tcp", dst_port=80))]})])
    assert [line.split(": ")[2] for line in lines] == [
        "virtual_switch.acl[0].protocol", "virtual_switch.acl[0].dst_port"]


@pytest.mark.parametrize("rules, expected", [
    ([rule(protocol="tcp", dst_port=80), rule(protocol="tcp", dst_port=80)],
     "acl[1]: duplicate of acl[0]"),
    ([rule(protocol="tcp", src="10.0.0.0/8"), rule(ethertype="ipv4", protocol="tcp",
                                                   src="10.0.0.0/8")],
     "acl[1]: duplicate of acl[0]"),
    ([rule(protocol="tcp"), rule(action="deny", protocol="tcp", dst_port=22)],
     "acl[1]: shadowed by acl[0], which matches all of its traffic first (first match "
     "wins), so it never matches"),
    ([rule(src="0.0.0.0/0"), rule(action="deny", protocol="icmp")],
     "acl[1]: shadowed by acl[0]"),
    ([rule(), rule(ethertype="arp")], "acl[1]: shadowed by acl[0]"),
    ([rule(protocol="udp", dst="10.0.0.0/8", dst_port="1-1000"),
      rule(protocol="udp", dst="10.1.0.0/16", dst_port="53-53")],
     "acl[1]: shadowed by acl[0]"),
    ([rule(protocol="tcp", dst_port=22), rule(protocol="udp", dst_port=53),
      rule(action="deny", protocol="tcp", dst_port=22)],
     "acl[2]: shadowed by acl[0]"),
])
def test_overlapping_rules(rules, expected):
    line = only_error(with_acl(*rules))
    assert line.startswith(f"templates/web.yaml: template 250 'web': virtual_switch.{expected}")


@pytest.mark.parametrize("rules", [
    [rule(protocol="tcp", dst_port=80), rule(protocol="tcp", dst_port=443)],
    [rule(protocol="tcp", dst_port=22),
     rule(direction="from_vm", protocol="tcp", dst_port=22)],
    [rule(protocol="tcp", dst_port=22, src="10.0.0.0/8"), rule(protocol="tcp", dst_port=22)],
    [rule(ethertype="ipv4"), rule(protocol="tcp")],  # tcp over IPv6 still reaches acl[1]
    [rule(protocol="tcp", dst_port="1-65535"), rule(protocol="tcp")],  # port 0
    [rule(src="10.0.0.0/8", dst="10.0.0.0/8"), rule(src="10.0.0.0/8")],
])
def test_rules_that_still_match_are_accepted(rules):
    assert len(build(with_acl(*rules)).get(250).virtual_switch.acl) == len(rules)


def test_duplicate_ids_and_names_across_and_within_files():
    lines = error_lines([
        ("templates/web.yaml", {"templates": [make_template()]}),
        ("templates/db.yaml", {"templates": [
            make_template(id=251, name="db"),
            make_template(id=251, name="web"),
        ]}),
    ])
    assert lines == [
        "templates/db.yaml: template 251 'web': id: duplicate template id 251, "
        "also defined in templates/db.yaml",
        "templates/db.yaml: template 251 'web': name: duplicate template name 'web', "
        "also defined in templates/web.yaml",
    ]
    assert error_lines([
        ("templates/web.yaml", {"templates": [make_template()]}),
        ("templates/db.yaml", {"templates": [make_template(id="0x00FA", name="db")]}),
    ]) == ["templates/db.yaml: template 250 'db': id: duplicate template id 250, "
           "also defined in templates/web.yaml"]


def test_defaults_in_two_files_names_both():
    assert error_lines([
        ("templates/a.yaml", {"defaults": {"idle_timeout": 5}, "templates": [make_template()]}),
        ("templates/b.yaml", {"defaults": {"idle_timeout": 6}}),
    ]) == ["templates/b.yaml: defaults: defaults may appear in only one file of the library, "
           "also defined in templates/a.yaml"]


@pytest.mark.parametrize("document, expected", [
    (None, "x.yaml: file is empty (expected a mapping with a 'templates' list)"),
    ([make_template()], "x.yaml: expected a mapping with a 'templates' list at the top "
                        "level, got a list"),
    ("templates", "x.yaml: expected a mapping with a 'templates' list at the top level, "
                  "got 'templates'"),
    ({"templates": make_template()}, "x.yaml: templates: expected a list of templates, "
                                     "got a mapping"),
    ({"templates": [250]}, "x.yaml: templates[0]: expected a mapping (one template), got 250"),
    ({"defaults": [], "templates": []}, "x.yaml: defaults: expected a mapping, got a list"),
    ({"defaults": {"idle_timeout": -5}, "templates": []},
     "x.yaml: defaults.idle_timeout: expected an integer 1-86400 (seconds), got -5"),
])
def test_bad_file_shapes(document, expected):
    documents = [("x.yaml", document), ("y.yaml", {"templates": [make_template()]})]
    assert error_lines(documents) == [expected]


@pytest.mark.parametrize("documents", [
    [],
    [("d.yaml", {"defaults": {"idle_timeout": 5}})],
    [("a.yaml", {"templates": []})],
])
def test_empty_library_is_an_error(documents):
    with pytest.raises(TemplateValidationError) as raised:
        build_library(documents, origin="templates")
    assert [str(e) for e in raised.value.errors] == [
        "templates: no templates defined: the library is empty"]


def test_empty_library_check_can_be_turned_off_for_partial_reads():
    with pytest.raises(TemplateValidationError) as raised:
        build_library([("a.yaml", None)], require_templates=False)
    assert len(raised.value.errors) == 1


# -- properties ----------------------------------------------------------------------
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
NAMES = st.builds(lambda first, rest: first + rest, st.sampled_from(NAME_CHARS),
                  st.text(alphabet=NAME_CHARS + "_-", max_size=31))
V4_PREFIXES = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "192.0.2.0/24"]
V6_PREFIXES = ["::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1/128"]
DESCRIPTIONS = st.text(alphabet=string.printable + "éß–→", min_size=1).filter(str.strip)
RANGES = ["1", "2", "3", "1-2", "2-3", "1-3"]


def port_value(text: str):
    return int(text) if "-" not in text else text


@st.composite
def raw_rules(draw) -> dict:
    """A raw rule that is valid on its own (no contradictions), as YAML gives it."""
    raw = {"action": draw(st.sampled_from(["allow", "deny"])),
           "direction": draw(st.sampled_from(["to_vm", "from_vm"]))}
    kind = draw(st.sampled_from(["any", "arp", "v4", "v6", "ip"]))
    if kind == "arp":
        raw["ethertype"] = "arp"
    if kind in ("v4", "v6"):
        prefixes = V4_PREFIXES if kind == "v4" else V6_PREFIXES
        icmp = "icmp" if kind == "v4" else "icmpv6"
        if draw(st.booleans()):
            raw["ethertype"] = "ipv4" if kind == "v4" else "ipv6"
        for key in ("src", "dst"):
            if draw(st.booleans()):
                raw[key] = draw(st.sampled_from(prefixes))
        protocol = draw(st.sampled_from([None, "tcp", "udp", icmp]))
        if protocol:
            raw["protocol"] = protocol
    if kind == "ip":
        raw["protocol"] = draw(st.sampled_from(["tcp", "udp"]))
    if raw.get("protocol") in ("tcp", "udp"):
        for key in ("src_port", "dst_port"):
            if draw(st.booleans()):
                raw[key] = port_value(draw(st.sampled_from(RANGES)))
    return raw


class Packet(NamedTuple):
    direction: Direction
    ethertype: int
    protocol: int | None
    src: object
    dst: object
    src_port: int | None
    dst_port: int | None


def _sample_packets() -> List[Packet]:
    """Packets covering every distinguishable case of the prefixes and ranges above."""
    v4 = [ipaddress.ip_address(a) for a in
          ("10.1.2.3", "10.1.2.4", "10.2.0.1", "192.0.2.5", "11.0.0.1")]
    v6 = [ipaddress.ip_address(a) for a in
          ("2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::1", "fd00::1")]
    packets = []
    for direction in Direction:
        packets.append(Packet(direction, ETH_ARP, None, None, None, None, None))
        packets.append(Packet(direction, 0x88CC, None, None, None, None, None))
        for ethertype, addresses in ((ETH_IPV4, v4), (ETH_IPV6, v6)):
            for src, dst in itertools.product(addresses, repeat=2):
                for protocol in (IP_ICMP, IP_ICMPV6, 47):
                    packets.append(Packet(direction, ethertype, protocol, src, dst, None, None))
                for protocol, sport, dport in itertools.product(
                        (IP_TCP, IP_UDP), range(4), range(4)):
                    packets.append(Packet(direction, ethertype, protocol, src, dst,
                                          sport, dport))
    return packets


PACKETS = _sample_packets()


def matches(acl_rule: AclRule, packet: Packet) -> bool:
    """Reference semantics of a rule on one packet, written independently of covers()."""
    if acl_rule.direction is not packet.direction:
        return False
    if acl_rule.ethertype is not None and acl_rule.ethertype != packet.ethertype:
        return False
    if acl_rule.protocol is not None and acl_rule.protocol != packet.protocol:
        return False
    for prefix, address in ((acl_rule.src, packet.src), (acl_rule.dst, packet.dst)):
        if prefix is not None and (address is None or address.version != prefix.version
                                   or address not in prefix):
            return False
    for ports, port in ((acl_rule.src_port, packet.src_port),
                        (acl_rule.dst_port, packet.dst_port)):
        if ports is not None and (port is None or not ports.low <= port <= ports.high):
            return False
    return True


def brute_force_covers(outer: AclRule, inner: AclRule) -> bool:
    inner_traffic = [p for p in PACKETS if matches(inner, p)]
    assert inner_traffic, f"sample packets miss every packet of {inner}"
    return all(matches(outer, p) for p in inner_traffic)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_rules(), raw_rules())
def test_shadowing_agrees_with_brute_force_on_sample_packets(first, second):
    library = build(with_acl(first))
    outer = library.get(250).virtual_switch.acl[0]
    inner = build(with_acl(second)).get(250).virtual_switch.acl[0]
    expected = brute_force_covers(outer, inner)
    assert outer.covers(inner) == expected
    try:
        build(with_acl(first, second))
        reported = False
    except TemplateValidationError as failure:
        (error,) = failure.errors
        assert error.field == "virtual_switch.acl[1]"
        reported = True
    assert reported == expected


@st.composite
def raw_templates(draw) -> dict:
    """A valid raw template whose rules are disjoint (distinct tcp destination ports)."""
    ports = draw(st.lists(st.integers(1, 65535), unique=True, max_size=5))
    acl = [{"action": draw(st.sampled_from(["allow", "deny"])),
            "direction": draw(st.sampled_from(["to_vm", "from_vm"])),
            "protocol": "tcp", "dst_port": port,
            **({"src": draw(st.sampled_from(V4_PREFIXES + V6_PREFIXES))}
               if draw(st.booleans()) else {})}
           for port in ports]
    side = {"default_action": draw(st.sampled_from(["allow", "deny"])), "acl": acl}
    if draw(st.booleans()):
        side["bandwidth"] = {"rate_kbps": draw(st.integers(1, 100_000_000)),
                             "burst_kbits": draw(st.integers(0, 100_000_000))}
    template_id = draw(st.integers(0, 0xFFFF))
    return {
        "id": draw(st.sampled_from([template_id, f"0x{template_id:04X}"])),
        "name": draw(NAMES), "description": draw(DESCRIPTIONS),
        "vlan": draw(st.integers(1, 4094)), "idle_timeout": draw(st.integers(1, 86400)),
        "virtual_switch": {**side, "bind_ip": draw(st.sampled_from(
            [True, False, "first_seen", "dhcp"]))},
        "access_port": {"default_action": "allow"},
    }


@settings(max_examples=60, deadline=None)
@given(raw_templates())
def test_valid_templates_round_trip_through_validation(raw):
    document = {"templates": [copy.deepcopy(raw)]}
    library = build_library([("gen.yaml", document)])
    assert document == {"templates": [raw]}  # input is not modified
    (template,) = list(library)
    raw_id = raw["id"]
    assert template.template_id == (int(raw_id, 16) if isinstance(raw_id, str) else raw_id)
    assert (template.name, template.vlan, template.idle_timeout) == (
        raw["name"], raw["vlan"], raw["idle_timeout"])
    assert template.description == raw["description"].strip()
    side, raw_side = template.virtual_switch, raw["virtual_switch"]
    assert side.default_action.value == raw_side["default_action"]
    assert side.bind_ip == {True: "first_seen", False: None}.get(raw_side["bind_ip"],
                                                                  raw_side["bind_ip"])
    if "bandwidth" in raw_side:
        assert side.bandwidth == Bandwidth(**raw_side["bandwidth"])
    assert [(r.action.value, r.direction.value, r.dst_port.low, r.src and str(r.src))
            for r in side.acl] == [
        (r["action"], r["direction"], r["dst_port"], r.get("src")) for r in raw_side["acl"]]


# -- unreachable rules at scale: the index against the pairwise reference -------------
def reference_reachability(rules: List[AclRule]) -> List[str]:
    """The unreachable-rule messages as the original pairwise scan found them."""
    messages = []
    for index, acl_rule in enumerate(rules):
        for earlier_index in range(index):
            earlier = rules[earlier_index]
            if earlier == acl_rule:
                messages.append(f"acl[{index}]: duplicate of acl[{earlier_index}]")
                break
            if earlier.covers(acl_rule):
                messages.append(f"acl[{index}]: shadowed by acl[{earlier_index}]")
                break
    return messages


def reported_reachability(raw: List[dict]) -> List[str]:
    try:
        build(with_acl(*raw))
        return []
    except TemplateValidationError as failure:
        return [f"{e.field.split('.')[-1]}: {e.message.split(',')[0]}" for e in failure.errors]


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_rules(), min_size=2, max_size=30))
def test_unreachable_rules_agree_with_the_pairwise_reference(raw):
    rules = [build(with_acl(r)).get(250).virtual_switch.acl[0] for r in raw]
    assert reported_reachability(raw) == reference_reachability(rules)


def test_twenty_thousand_rules_report_exactly_the_unreachable_ones():
    rules = [rule(protocol="udp", src="192.0.2.0/24")]
    rules += [rule(protocol="tcp", src=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                   dst_port=1 + i % 65535) for i in range(19994)]
    rules += [rule(protocol="tcp", src="10.0.0.5", dst_port=6),                 # 19995
              rule(action="deny", protocol="udp", src="192.0.2.7", dst_port=53),  # 19996
              rule(protocol="tcp", src="10.0.0.0/8"),                          # 19997
              rule(protocol="tcp", src="10.0.1.2", dst_port=80),               # 19998
              rule(direction="from_vm", protocol="tcp", src="10.0.0.5", dst_port=6)]
    assert len(rules) == MAX_ACL_RULES
    assert reported_reachability(rules) == [
        "acl[19995]: duplicate of acl[6]",
        "acl[19996]: shadowed by acl[0]",
        "acl[19998]: shadowed by acl[19997]"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(raw_rules())
def test_entry_count_is_the_number_of_compiled_matches(raw):
    parsed = build(with_acl(raw)).get(250).virtual_switch.acl[0]
    assert entry_count(parsed) == len(rule_matches(parsed))
