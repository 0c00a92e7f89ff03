"""The conformance sweep's oracle on hand-written cases from docs/templates.md."""

from ryu_apps.lab.sweep_oracle import Endpoint, Oracle, Packet, Probe, judge, rule_matches

WEB, DB, MGMT = 250, 252, 254
ARP = [{"action": "allow", "direction": d, "ethertype": "arp"} for d in ("to_vm", "from_vm")]


def _template(template_id, vlan, vswitch, port=None):
    return {"id": template_id, "name": f"t{template_id}", "description": "d", "vlan": vlan,
            "virtual_switch": vswitch, "access_port": port or {"default_action": "allow"}}


#: The default library's shape: a stateful web tier without mirror rules, a stateless
#: database with them (docs/templates.md, "The default library").
LIBRARY = {"templates": [
    _template(WEB, 100, {"default_action": "deny", "stateful": True, "acl": ARP + [
        {"action": "allow", "direction": "to_vm", "protocol": "tcp", "dst_port": 443},
        {"action": "allow", "direction": "from_vm", "protocol": "tcp", "dst": "10.0.200.0/24",
         "dst_port": 5432},
        {"action": "allow", "direction": "to_vm", "protocol": "icmp"},
        {"action": "allow", "direction": "from_vm", "protocol": "icmp"}]}),
    _template(DB, 100, {"default_action": "deny", "acl": ARP + [
        {"action": "allow", "direction": "to_vm", "protocol": "tcp", "src": "10.0.100.0/24",
         "dst_port": 5432},
        {"action": "allow", "direction": "from_vm", "protocol": "tcp", "dst": "10.0.100.0/24",
         "src_port": 5432},
        {"action": "allow", "direction": "to_vm", "protocol": "icmp", "icmp_type": "echo-request"},
        {"action": "allow", "direction": "from_vm", "protocol": "tcp", "dst_port": "8000-8099"}]},
              {"default_action": "allow", "acl": [
                  {"action": "deny", "direction": "to_vm", "src": "10.0.100.9"}]}),
    _template(MGMT, 300, {"default_action": "allow"})]}

VMS = [Endpoint("web1", WEB, "10.0.100.1", (1, 1)), Endpoint("db2", DB, "10.0.200.2", (1, 1)),
       Endpoint("web3", WEB, "10.0.100.3", (1, 2)), Endpoint("mgmt4", MGMT, "10.0.30.4", (1, 2)),
       Endpoint("db6", DB, "10.0.200.6", (2, 1)), Endpoint("web9", WEB, "10.0.100.9", (2, 2))]


def _oracle(vms=VMS, library=LIBRARY):
    return Oracle(library, vms)


def test_web_reaches_postgres_and_its_replies_pass_by_the_database_mirror_rule():
    verdict = _oracle().verdict("web3", "db2", Probe("tcp", 5432, 40000))
    assert verdict.passes and verdict.forward
    reply = [s for s in verdict.steps if s.vm == "db2" and s.direction == "from_vm"]
    assert reply[0].rule == 3          # acl[3]: the mirror rule (src_port 5432)
    assert [s.why for s in verdict.steps if s.vm == "web3" and s.direction == "to_vm"
            and s.side == "virtual_switch"] == ["established reply"]


def test_a_reply_looking_syn_to_the_stateful_tier_is_judged_like_a_new_connection():
    # docs: "a reply-looking packet without a connection ... is judged by the rules"
    verdict = _oracle().verdict("db6", "web1", Probe("tcp", 8080, 5432))
    assert not verdict.forward and not verdict.passes
    assert "web1's template 250 virtual_switch to_vm default" in verdict.reason


def test_first_match_and_default_action_decide():
    oracle = _oracle()
    assert oracle.verdict("web3", "db2", Probe("tcp", 22, 40001)).reason == (
        "request: deny by web3's template 250 virtual_switch from_vm default")
    assert oracle.verdict("db6", "db2", Probe("tcp", 8080, 40002)).reason == (
        "request: deny by db2's template 252 virtual_switch to_vm default")   # not web's /24
    library = {"templates": [_template(1, 10, {"default_action": "allow", "acl": [
        {"action": "deny", "direction": "to_vm", "protocol": "tcp", "dst_port": "80-90"},
        {"action": "allow", "direction": "to_vm", "protocol": "tcp", "dst_port": 80}]})]}
    vms = [Endpoint("a", 1, "10.0.0.1", (1, 1)), Endpoint("b", 1, "10.0.0.2", (1, 2))]
    verdict = Oracle(library, vms).verdict("a", "b", Probe("tcp", 80, 40000))
    assert verdict.reason == "request: deny by b's template 1 virtual_switch to_vm acl[0]"


def test_vlans_isolate_whatever_the_rules():
    verdict = _oracle().verdict("mgmt4", "web3", Probe("icmp"))
    assert not verdict.passes and verdict.reason == "different VLANs 300 and 100"


def test_a_stateless_side_needs_the_reply_rule_too():
    # db allows echo requests in but no ICMP out: the request arrives, the reply does not
    verdict = _oracle().verdict("web3", "db6", Probe("icmp"))
    assert verdict.forward and not verdict.passes
    assert verdict.reason.startswith("reply: deny by db6's template 252 virtual_switch from_vm")


def test_access_port_rules_apply_across_servers():
    # db's access port denies what comes from 10.0.100.9 (web9, another server)
    verdict = _oracle().verdict("web9", "db6", Probe("tcp", 5432, 40003))
    assert not verdict.forward
    assert "db6's template 252 access_port to_vm acl[0]" in verdict.reason


def test_on_one_server_port_rules_apply_only_under_the_template_merge():
    lone = [Endpoint("web9", WEB, "10.0.100.9", (1, 1)), Endpoint("db2", DB, "10.0.200.2", (1, 1))]
    oracle = _oracle(lone)
    # web and db share VLAN 100 on server (1, 1) and their access ports differ: merged
    assert oracle.merged((1, 1), 100)
    assert not oracle.verdict("web9", "db2", Probe("tcp", 5432, 40004)).forward
    same = {"templates": [dict(t, access_port=LIBRARY["templates"][1]["access_port"])
                          for t in LIBRARY["templates"]]}
    unmerged = _oracle(lone, same)
    assert not unmerged.merged((1, 1), 100)    # equal port sides: no merge, rules not crossed
    assert unmerged.verdict("web9", "db2", Probe("tcp", 5432, 40004)).passes


def test_rule_fields():
    packet = Packet("tcp", "10.0.0.1", "10.0.0.2", 40000, 8080)
    assert rule_matches({"direction": "to_vm", "action": "allow"}, packet)   # matches all
    assert not rule_matches({"ethertype": "arp"}, packet)
    assert not rule_matches({"protocol": "tcp", "dst": "fd00::/64"}, packet)
    assert rule_matches({"protocol": "tcp", "dst": "10.0.0.2"}, packet)      # a /32
    assert rule_matches({"protocol": "tcp", "dst_port": "8000-8080"}, packet)  # inclusive
    assert not rule_matches({"protocol": "tcp", "dst_port": "8081-8099"}, packet)
    assert not rule_matches({"protocol": "udp"}, packet)
    assert not rule_matches({"protocol": "tcp", "src_port": 80}, packet)
    echo = Packet("icmp", "10.0.0.1", "10.0.0.2", icmp_type=8)
    assert rule_matches({"protocol": "icmp", "icmp_type": "echo-request"}, echo)
    assert rule_matches({"protocol": "icmp", "icmp_type": 8, "icmp_code": 0}, echo)
    assert not rule_matches({"protocol": "icmp", "icmp_type": "echo-reply"}, echo)
    assert rule_matches({"protocol": "icmp", "icmp_type": "echo-reply"}, echo.reply())
    assert not rule_matches({"protocol": "icmp", "dst_port": 1}, echo)


def test_rules_of_the_other_direction_are_skipped():
    template = _template(1, 10, {"default_action": "deny", "acl": [
        {"action": "allow", "direction": "from_vm", "protocol": "udp"}]})
    step = judge(template, "virtual_switch", "to_vm", Packet("udp", "10.0.0.1", "10.0.0.2", 1, 2))
    assert (step.action, step.rule, step.why) == ("deny", None, "default")


def test_a_stateful_default_allow_passes_its_replies():
    # Docs: "an IPv4 or IPv6 packet a rule allows is committed"; the default action is no
    # rule. Read as the code does (conntrack.stateful_entries commits the default allow too).
    library = {"templates": [
        _template(1, 10, {"default_action": "allow", "stateful": True, "acl": [
            {"action": "deny", "direction": "to_vm", "protocol": "tcp"}]}),
        _template(2, 10, {"default_action": "allow"})]}
    vms = [Endpoint("a", 1, "10.0.0.1", (1, 1)), Endpoint("b", 2, "10.0.0.2", (1, 2))]
    verdict = Oracle(library, vms).verdict("a", "b", Probe("tcp", 80, 40000))
    assert verdict.passes
    assert not Oracle(library, vms).verdict("b", "a", Probe("tcp", 80, 40000)).forward


def test_arp_is_judged_by_arp_rules_and_rules_of_every_frame_both_ways_untracked():
    arp = Packet("arp", "10.0.0.1", "10.0.0.2")
    assert rule_matches({"ethertype": "arp"}, arp)
    assert rule_matches({"action": "deny", "direction": "to_vm"}, arp)   # every frame
    assert not rule_matches({"ethertype": "ipv4"}, arp)
    assert not rule_matches({"src": "10.0.0.0/8"}, arp)                  # an IPv4 rule
    assert not rule_matches({"protocol": "tcp"}, arp)
    oracle = _oracle()
    assert oracle.verdict("web1", "web3", Probe("arp")).passes         # ARP rules both ways
    library = {"templates": [_template(1, 10, {"default_action": "deny", "stateful": True,
                                               "acl": ARP[:1]})]}
    vms = [Endpoint("a", 1, "10.0.0.1", (1, 1)), Endpoint("b", 1, "10.0.0.2", (1, 2))]
    verdict = Oracle(library, vms).verdict("a", "b", Probe("arp"))
    # the request leaves a by no rule: the stateful side's default denies ARP
    assert verdict.reason == "request: deny by a's template 1 virtual_switch from_vm default"


def test_ipv6_rules_by_family_as_docs_templates_md_writes_them():
    # "a rule with an IPv6 prefix is an IPv6 rule, ... one rule for both where none is"
    tcp6 = Packet("tcp", "fd00:0:0:100::1", "fd00:0:0:200::2", 40000, 443)
    tcp4 = Packet("tcp", "10.0.100.1", "10.0.200.2", 40000, 443)
    both = {"action": "allow", "direction": "to_vm", "protocol": "tcp", "dst_port": 443}
    v4 = dict(both, dst="10.0.200.0/24")
    v6 = dict(both, dst="fd00:0:0:200::/64")
    assert rule_matches(both, tcp6) and rule_matches(both, tcp4)
    assert not rule_matches(v4, tcp6) and rule_matches(v4, tcp4)
    assert rule_matches(v6, tcp6) and not rule_matches(v6, tcp4)
    assert rule_matches({"action": "deny", "direction": "to_vm", "ethertype": "ipv6"}, tcp6)
    assert not rule_matches({"action": "deny", "direction": "to_vm", "ethertype": "ipv6"}, tcp4)
    assert not rule_matches({"action": "deny", "direction": "to_vm", "ethertype": "ipv4"}, tcp6)
    echo6 = Packet("icmpv6", "fd00::1", "fd00::2", icmp_type=128)
    assert not rule_matches({"action": "allow", "direction": "to_vm", "protocol": "icmp"}, echo6)
    assert rule_matches({"action": "allow", "direction": "to_vm", "protocol": "icmpv6",
                         "icmp_type": "echo-request"}, echo6)
    assert not rule_matches({"action": "allow", "direction": "to_vm", "protocol": "icmpv6",
                             "icmp_type": 8}, echo6)
    assert echo6.reply().icmp_type == 129
    assert not rule_matches({"action": "allow", "direction": "to_vm", "ethertype": "ipv6"},
                            Packet("arp", "10.0.0.1", "10.0.0.2"))


def test_an_icmpv6_echo_needs_its_reply_allowed_on_a_stateless_side():
    def oracle(to_vm_icmpv6):
        library = {"templates": [_template(1, 10, {"default_action": "deny", "acl": [
            dict({"action": "allow", "direction": "to_vm", "protocol": "icmpv6"},
                 **to_vm_icmpv6),
            {"action": "allow", "direction": "from_vm", "protocol": "icmpv6"},
            {"action": "allow", "direction": "to_vm", "protocol": "icmp"}]})]}
        return Oracle(library, [Endpoint("a", 1, "10.0.0.1", (1, 1), "fd00::1"),
                                Endpoint("b", 1, "10.0.0.2", (1, 2), "fd00::2")])

    assert oracle({}).verdict("a", "b", Probe("icmp6")).passes
    only_requests = oracle({"icmp_type": "echo-request"}).verdict("a", "b", Probe("icmp6"))
    assert only_requests.forward and not only_requests.passes
    assert only_requests.reason == "reply: deny by a's template 1 virtual_switch to_vm default"
    assert not oracle({}).verdict("a", "b", Probe("icmp")).passes   # ICMP out: default deny
    verdict = oracle({}).verdict("a", "b", Probe("tcp6", 22, 40000))
    assert verdict.reason == "request: deny by a's template 1 virtual_switch from_vm default"


def _sources_library(bind_ip):
    side = {"default_action": "allow", "bind_ip": bind_ip}
    if bind_ip is not False:
        side["allowed_addresses"] = ["10.0.9.0/24", "10.0.8.7"]
    return {"templates": [
        _template(WEB, 100, side),
        _template(DB, 100, {"default_action": "allow", "acl": [
            {"action": "deny", "direction": "to_vm", "src": "10.0.8.7"}]})]}


SOURCE_VMS = [Endpoint("web1", WEB, "10.0.100.1", (1, 1)),
              Endpoint("db2", DB, "10.0.200.2", (1, 2))]


def test_a_bound_vm_sends_from_its_allowed_addresses_only_and_the_rules_judge_them():
    # docs/templates.md: bind_ip: the VM sends IPv4 only from its bound address;
    # allowed_addresses: addresses it may also send from
    for bind_ip in (True, "first_seen"):
        oracle = Oracle(_sources_library(bind_ip), SOURCE_VMS)
        inside = oracle.verdict("web1", "db2", Probe("udp", 53, 40000, "10.0.9.200"))
        assert inside.forward and inside.passes and "allowed address" in inside.reason
        spoofed = oracle.verdict("web1", "db2", Probe("udp", 53, 40000, "10.0.10.1"))
        assert not spoofed.forward and "neither bound nor allowed" in spoofed.reason
        denied = oracle.verdict("web1", "db2", Probe("udp", 53, 40000, "10.0.8.7"))
        assert not denied.forward and "db2's template 252 virtual_switch to_vm" in denied.reason


def test_without_the_ipv4_guard_a_vm_sends_from_any_address():
    oracle = Oracle(_sources_library(False), SOURCE_VMS)
    anywhere = oracle.verdict("web1", "db2", Probe("udp", 53, 40000, "10.0.10.1"))
    assert anywhere.forward and "no IPv4 guard" in anywhere.reason
    assert not oracle.verdict("web1", "db2", Probe("udp", 53, 40000, "10.0.8.7")).forward


def _guarded_oracle(bind_ipv6):
    side = {"default_action": "allow", "bind_ipv6": bind_ipv6,
            "allowed_addresses": ["fd00:0:9::/64"]}
    library = {"templates": [
        _template(WEB, 100, side),
        _template(DB, 100, {"default_action": "allow", "acl": [
            {"action": "deny", "direction": "to_vm", "src": "fd00:0:9::7"}]})]}
    return Oracle(library, [Endpoint("web1", WEB, "10.0.100.1", (1, 1), "fd00:0:100::1"),
                            Endpoint("db2", DB, "10.0.200.2", (1, 2), "fd00:0:200::2")])


def test_the_ipv6_guard_passes_own_link_local_bound_and_allowed_sources_only():
    # docs/templates.md bind_ipv6, docs/security.md "IPv6 anti-spoofing"
    for mode in ("link_local", "first_seen"):
        oracle = _guarded_oracle(mode)
        inside = oracle.verdict("web1", "db2", Probe("udp6", 53, 40000, "fd00:0:9::200"))
        assert inside.forward and "allowed address" in inside.reason
        spoofed = oracle.verdict("web1", "db2", Probe("udp6", 53, 40000, "fd00:0:10::1"))
        assert not spoofed.forward and f"bind_ipv6: {mode}" in spoofed.reason
        denied = oracle.verdict("web1", "db2", Probe("udp6", 53, 40000, "fd00:0:9::7"))
        assert not denied.forward and "db2's template 252 virtual_switch to_vm" in denied.reason
        ipv4 = oracle.verdict("web1", "db2", Probe("udp", 53, 40000, "10.0.9.1"))
        assert ipv4.forward and "no IPv4 guard" in ipv4.reason   # bind_ip's, not this guard's
    own = _guarded_oracle("first_seen").verdict("web1", "db2", Probe("udp6", 53, 40000))
    assert own.passes   # its bound global address
    link_local = _guarded_oracle("link_local")
    request = link_local.verdict("web1", "db2", Probe("icmp6"))
    assert not request.forward and request.reason.startswith("request: source fd00:0:100::1")
    reply = link_local.verdict("db2", "web1", Probe("tcp6", 22, 40000))
    assert reply.forward and not reply.passes and reply.reason.startswith("reply: source")


def test_without_the_ipv6_guard_a_vm_sends_ipv6_from_any_address():
    oracle = _guarded_oracle(False)
    anywhere = oracle.verdict("web1", "db2", Probe("udp6", 53, 40000, "fd00:0:10::1"))
    assert anywhere.forward and "no IPv6 guard" in anywhere.reason
    assert oracle.verdict("web1", "db2", Probe("icmp6")).passes
