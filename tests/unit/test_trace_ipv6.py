"""The policy trace over IPv6 (tcp, udp, icmpv6 echo) through the IPv6 guard and a stateful
template: its verdict, and its answer's, agree with the fake switches (their conntrack
model included); a VM is named by MAC, IPv4, IPv6 or OVSDB iface-id; bad input for the
family gets a clear error naming the field."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from ryu_apps.core.ipv6_guard import link_local
from ryu_apps.core.template_validation import build_library
from ryu_apps.core.trace import TraceError, build_packet, parse_probe
from ryu_apps.core.trace_engine import find_vm, trace_vms
from ryu_apps.core.trace_view import trace_json, trace_text
from tests.unit.test_shared_pipeline import S11, S12, Lab

WEB, CLIENT, OTHER = "00:b0:00:00:00:01", "00:b1:00:00:00:01", "00:b1:00:00:00:02"
IPS = {WEB: "10.0.0.1", CLIENT: "10.0.0.9", OTHER: "10.0.0.10"}
PROBES = ["tcp/80", "tcp/5432", "tcp/22", "udp/53", "udp/123", "icmpv6"]


def _library():
    def template(template_id, name, side):
        return {"id": template_id, "name": name, "description": name, "vlan": 100,
                "virtual_switch": {"bind_ip": True, "bind_ipv6": "link_local", **side},
                "access_port": {"default_action": "allow"}}
    web = {"default_action": "deny", "stateful": True, "acl": [
        {"action": "allow", "direction": "to_vm", "protocol": "tcp", "dst_port": 80},
        {"action": "allow", "direction": "from_vm", "protocol": "tcp", "dst_port": 5432},
        {"action": "allow", "direction": "to_vm", "protocol": "udp", "dst_port": 53},
        {"action": "allow", "direction": "to_vm", "protocol": "icmpv6"},
        {"action": "allow", "direction": "from_vm", "protocol": "icmpv6", "icmp_type": 135},
        {"action": "allow", "direction": "from_vm", "protocol": "icmpv6", "icmp_type": 136},
    ]}
    client = {"default_action": "allow"}
    return build_library([("lab6.yaml", {"templates": [
        template(0xB0, "web", web), template(0xB1, "client", client)]})])


@pytest.fixture(scope="module")
def lab():
    lab = Lab(_library())
    lab.vm(S11, 1, WEB, IPS[WEB])
    lab.vm(S12, 2, CLIENT, IPS[CLIENT])
    lab.vm(S12, 3, OTHER, IPS[OTHER])
    lab.engine.state.ports.iface_ids[(S12, 2)] = "vm-client-1"
    lab.engine.state.ports.attachments[(S12, 2)] = CLIENT
    return lab


def _delivered(lab, source, target, probe) -> bool:
    packet = build_packet(source, target, probe)
    copies = lab.switches.trace(lab.engine.fabric, source.dpid, source.port, packet)
    return any((dpid, port) == (target.dpid, target.port) for dpid, port, _ in copies)


def test_the_verdict_over_ipv6_agrees_with_the_switches_through_guard_and_conntrack(lab):
    verdicts = set()
    for src, dst in itertools.permutations((WEB, CLIENT), 2):
        for text in PROBES:
            result = trace_vms(lab.engine, src, dst, text, family=6)
            assert result.probe.family == 6
            lab.switches.conntrack.clear()     # the switches see this connection afresh
            source, target = find_vm(lab.engine, src, "src"), find_vm(lab.engine, dst, "dst")
            probe = parse_probe(text, 6)
            forward = _delivered(lab, source, target, probe)
            back = _delivered(lab, target, source, replace(probe, reply=True))
            assert (result.delivered, result.reply.delivered) == (forward, back), \
                trace_text(result, hex)
            verdicts.add((src, text, result.connects))
    assert (CLIENT, "tcp/80", True) in verdicts         # the stateful template answers
    assert (CLIENT, "udp/53", True) in verdicts
    assert (WEB, "tcp/5432", True) in verdicts
    assert (CLIENT, "tcp/22", False) in verdicts and (WEB, "udp/123", False) in verdicts
    assert (WEB, "icmpv6", False) in verdicts           # web may not send echo requests


def test_a_stateful_template_lets_the_answer_back_only_after_the_packet(lab):
    result = trace_vms(lab.engine, CLIENT, WEB, "tcp/80", family=6)
    assert result.connects     # the answer, web -> client tcp from port 80, is allowed
    unsolicited = trace_vms(lab.engine, WEB, CLIENT, "tcp/40000", family=6)
    assert unsolicited.verdict == "blocked"
    assert unsolicited.deciding.template == "web"


def test_the_packet_is_ipv6_from_the_link_local_addresses_unless_given(lab):
    result = trace_vms(lab.engine, CLIENT, WEB, "udp/53", family=6)
    packet = result.hops[0].packet
    assert (packet.eth_type, packet.ip_proto, packet.udp_dst) == (0x86DD, 17, 53)
    assert (packet.ipv6_src, packet.ipv6_dst) == (link_local(CLIENT), link_local(WEB))
    body = trace_json(result, hex)
    assert body["family"] == 6 and body["src"]["ipv6"] == link_local(CLIENT)
    assert "over IPv6: ALLOWED" in trace_text(result, hex).splitlines()[0]
    spoofed = trace_vms(lab.engine, CLIENT, WEB, "udp/53", src_ip="2001:db8::9")
    assert spoofed.probe.family == 6 and spoofed.verdict == "blocked"   # the IPv6 guard
    (hop,) = spoofed.hops
    assert [s.table_id for s in hop.steps] == [0, 1] and spoofed.to_controller  # punted


def test_an_ipv6_address_given_makes_the_trace_ipv6(lab):
    assert trace_vms(lab.engine, link_local(CLIENT), WEB, "tcp/80").probe.family == 6
    assert trace_vms(lab.engine, CLIENT, WEB, "tcp/80").probe.family == 4
    assert trace_vms(lab.engine, CLIENT, WEB, "icmpv6").probe.family == 6


@pytest.mark.parametrize("name", [CLIENT, CLIENT.upper(), IPS[CLIENT], link_local(CLIENT),
                                  link_local(CLIENT) + "%eth0", "vm-client-1"])
def test_a_vm_is_named_by_mac_ip_or_iface_id(lab, name):
    assert find_vm(lab.engine, name, "src").mac == CLIENT


@pytest.mark.parametrize("src, dst, probe, family, field, message", [
    (CLIENT, WEB, "icmp", 6, "proto", "icmp is not an IPv6 protocol: over IPv6 the echo "
                                      "is 'icmpv6'"),
    (CLIENT, WEB, "icmpv6", 4, "proto", "icmpv6 is not an IPv4 protocol"),
    (CLIENT, WEB, "sctp/9", 6, "proto", "not one the pipeline handles"),
    (CLIENT, WEB, "tcp/80", 5, "family", "address family 5 is not 4 (IPv4) or 6 (IPv6)"),
    ("vm-nobody", WEB, "tcp/80", 6, "src", "no provisioned VM has MAC, IPv4, IPv6 or OVSDB "
                                           "iface-id 'vm-nobody'"),
    (CLIENT, "fe80::1", "tcp/80", 6, "dst", "no provisioned VM"),
])
def test_bad_input_for_the_family_names_the_field(lab, src, dst, probe, family, field,
                                                  message):
    with pytest.raises(TraceError) as raised:
        trace_vms(lab.engine, src, dst, probe, family=family)
    assert raised.value.field == field and message in str(raised.value)


def test_an_address_of_the_other_family_is_refused(lab):
    with pytest.raises(TraceError, match="src_ip: '2001:db8::9' is an IPv6 address; the "
                                         "trace is over IPv4"):
        trace_vms(lab.engine, CLIENT, WEB, "tcp/80", src_ip="2001:db8::9", family=4)


def test_a_name_two_vms_share_is_ambiguous(lab):
    lab.engine.state.ports.iface_ids[(S12, 3)] = "vm-client-1"
    lab.engine.state.ports.attachments[(S12, 3)] = OTHER
    try:
        with pytest.raises(TraceError) as raised:
            find_vm(lab.engine, "vm-client-1", "dst")
        assert raised.value.field == "dst"
        assert f"'vm-client-1' names 2 VMs ({CLIENT}, {OTHER}); name one by its MAC" in \
            str(raised.value)
    finally:
        del lab.engine.state.ports.iface_ids[(S12, 3)]


def test_one_vm_on_two_ports_with_one_iface_id_is_still_one_vm(lab):
    lab.engine.state.ports.iface_ids[(S11, 7)] = "vm-client-1"    # a migration's target
    lab.engine.state.ports.attachments[(S11, 7)] = CLIENT
    try:
        assert find_vm(lab.engine, "vm-client-1", "src").mac == CLIENT
    finally:
        del lab.engine.state.ports.iface_ids[(S11, 7)]
        del lab.engine.state.ports.attachments[(S11, 7)]


def test_the_rest_route_takes_the_family(lab):
    from ryu_apps.rest.api import ApiError
    from ryu_apps.rest.trace_routes import run_trace

    class _App:
        engine = lab.engine
    body = run_trace(_App(), {"src": "vm-client-1", "dst": WEB, "proto": "tcp/80",
                              "family": "6"})
    assert body["family"] == 6 and body["verdict"] == "allowed"
    with pytest.raises(ApiError) as raised:
        run_trace(_App(), {"src": CLIENT, "dst": WEB, "proto": "tcp/80", "family": "7"})
    assert raised.value.extra == {"field": "family"} and "expected 4 or 6" in \
        raised.value.message
    with pytest.raises(ApiError) as raised:
        run_trace(_App(), {"src": CLIENT, "dst": WEB, "proto": "icmp", "family": "6"})
    assert raised.value.status == 400 and raised.value.extra == {"field": "proto"}


def test_the_cli_cross_checks_an_ipv6_trace_with_the_ipv6_flow_and_prints_it(lab):
    from ryu_apps.cli import trace as cli_trace
    from ryu_apps.rest.trace_routes import run_trace

    class _App:
        engine = lab.engine
    flows = {}
    for probe, expected in (("tcp/80", "tcp6"), ("udp/53", "udp6"), ("icmpv6", "icmp6")):
        answer = run_trace(_App(), {"src": CLIENT, "dst": WEB, "proto": probe, "family": "6"})
        flows[probe] = cli_trace.ofproto_flow(answer, answer["path"][0])
        assert flows[probe].startswith(expected + ",in_port=2,"), flows[probe]
        assert f"ipv6_src={link_local(CLIENT)},ipv6_dst={link_local(WEB)}" in flows[probe]
    assert flows["tcp/80"].endswith("tcp_src=40000,tcp_dst=80")   # tp_src: IPv4 only
    assert flows["udp/53"].endswith("udp_src=40000,udp_dst=53")
    assert flows["icmpv6"].endswith("icmp_type=128,icmp_code=0")
    answer = run_trace(_App(), {"src": CLIENT, "dst": WEB, "proto": "udp/53", "family": "6"})
    first = cli_trace.render(answer).splitlines()[0]
    assert first == (f"trace {CLIENT} ({link_local(CLIENT)}, 'client') -> {WEB} "
                     f"({link_local(WEB)}, 'web') udp/53 over IPv6: ALLOWED")
    v4 = run_trace(_App(), {"src": CLIENT, "dst": WEB, "proto": "udp/53"})
    assert cli_trace.ofproto_flow(v4, v4["path"][0]).startswith("udp,in_port=2,")
    assert "(10.0.0.9, 'client')" in cli_trace.render(v4).splitlines()[0]


def test_the_cli_takes_the_family_and_sends_it_to_the_controller(monkeypatch, capsys):
    from ryu_apps.cli import trace as cli_trace
    from ryu_apps.cli.main import build_parser
    asked = []

    def call(target, method, path, timeout):
        asked.append(path)
        return 400, {"error": "proto: icmp is not an IPv6 protocol: over IPv6 the echo is "
                              "'icmpv6'", "field": "proto"}
    monkeypatch.setattr(cli_trace, "call", call)
    monkeypatch.setattr(cli_trace.rest_client, "target_from_args", lambda args, role: None)
    args = build_parser().parse_args(["trace", "vm-a", "vm-b", "icmp", "--family", "6"])
    assert args.func(args) == 2
    assert asked == ["/dynprov/trace?src=vm-a&dst=vm-b&proto=icmp&family=6"]
    assert "icmp is not an IPv6 protocol" in capsys.readouterr().err


def test_the_cli_reads_the_port_the_output_table_chose_from_the_metadata():
    """The OUTPUT table outputs to the port in the metadata: ofproto/trace names it on
    the line after the action."""
    from ryu_apps.cli import trace as cli_trace
    text = """bridge("s11")
-------------
 4. dl_vlan=100,dl_dst=00:fa:00:00:00:01, priority 50000, cookie 0xd9100fa00000001
    pop_vlan
    write_metadata:0x100fa00000003
    goto_table:5
 7. metadata=0x1000000000000/0x1000000000000, priority 50000, cookie 0xdf00000000000000
    output:OXM_OF_METADATA[0..15]
     -> output port is 3
 8. No match.
    output:2
"""
    steps, outputs = cli_trace.parse_ofproto_trace(text)
    assert [step[:2] for step in steps] == [(4, 50000), (7, 50000), (8, None)]
    assert outputs == [3, 2]
