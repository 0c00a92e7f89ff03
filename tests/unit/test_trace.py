"""The policy trace: its verdict agrees with the fake switches, it names the deciding rule
(template, side, index, file:line), and bad input gets a clear error."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from ryu_apps.core.pipeline import Table
from ryu_apps.core.rule_origin import rule_origin
from ryu_apps.core.trace import TraceError, build_packet, parse_probe
from ryu_apps.core.trace_engine import find_vm, trace_vms
from ryu_apps.core.trace_view import trace_json, trace_text
from tests.support.small_fabric import S11, S12
from tests.unit.test_shared_pipeline import LIBRARY, Lab

WEB, DB, OUT = "00:fa:00:00:00:05", "00:fc:00:00:00:05", "00:f2:00:00:00:07"
VMS = {WEB: (S11, 1, "10.0.100.5"), DB: (S12, 1, "10.0.200.5"), OUT: (S11, 2, "192.0.2.7")}
PROBES = ["tcp/80", "tcp/443", "tcp/5432", "tcp/22", "udp/53", "icmp", "icmpv6"]


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    for mac, (dpid, port, ip) in VMS.items():
        lab.vm(dpid, port, mac, ip)
    return lab


def _trace(lab, src, dst, probe):
    return trace_vms(lab.engine, src, dst, probe, VMS[src][2], VMS[dst][2])


def _really_delivered(lab, src, dst, probe, reply=False) -> bool:
    """What the fake switches (the unit labs' table model) do with the same packet."""
    source, target = find_vm(lab.engine, src, "src"), find_vm(lab.engine, dst, "dst")
    source, target = replace(source, ipv4=VMS[src][2]), replace(target, ipv4=VMS[dst][2])
    packet = build_packet(source, target, replace(parse_probe(probe), reply=reply))
    copies = lab.switches.trace(lab.engine.fabric, source.dpid, source.port, packet)
    return any((dpid, port) == (target.dpid, target.port) for dpid, port, _ in copies)


def test_the_verdict_agrees_with_the_switches_for_every_pair_and_protocol(lab):
    verdicts = set()
    for src, dst in itertools.permutations(VMS, 2):
        for probe in PROBES:
            result = _trace(lab, src, dst, probe)
            assert result.delivered == _really_delivered(lab, src, dst, probe), \
                trace_text(result, hex)
            assert result.reply.delivered == _really_delivered(lab, dst, src, probe, True)
            verdicts.add((result.verdict, result.connects))
    assert {("allowed", True), ("blocked", False)} <= verdicts


def _line_of(origin) -> str:
    return Path(origin.source).read_text().splitlines()[origin.line - 1]


def test_an_allowed_packet_names_the_last_rule_that_let_it_through(lab):
    result = trace_vms(lab.engine, WEB, "10.0.200.5", "tcp/5432")
    assert result.verdict == "allowed"
    decided = result.deciding
    assert (decided.template, decided.side, decided.direction) == (
        "database", "virtual_switch", "to_vm")
    assert decided.index == 2 and decided.source == "templates/database.yaml"
    assert "dst_port: 5432" in _line_of(decided) and "to_vm" in _line_of(decided)
    passed = [(r.template, r.side, r.direction) for r in result.rules]
    assert passed[0] == ("web", "virtual_switch", "from_vm")
    assert [h.dpid for h in result.hops][0] == S11 and result.hops[-1].dpid == S12


def test_a_blocked_packet_names_the_default_that_dropped_it(lab):
    result = _trace(lab, OUT, WEB, "tcp/22")
    assert result.verdict == "blocked"
    decided = result.deciding
    assert (decided.template, decided.side, decided.index, decided.rule) == (
        "outside", "virtual_switch", None, "default deny")
    assert len(result.hops) == 1 and result.hops[0].steps[-1].drops


def test_a_deny_rule_of_the_access_port_side_is_named_with_its_line(lab):
    result = _trace(lab, DB, OUT, "icmp")   # db allows icmp to 10.0.100/24 only
    assert result.verdict == "blocked"
    origin = rule_origin(LIBRARY, LIBRARY.by_name("web"), Table.TO_VM_PORT_ACL, 40000)
    assert (origin.side, origin.index, origin.direction) == ("access_port", 0, "to_vm")
    assert "dst_port: 22" in _line_of(origin)


def test_the_views_carry_verdict_path_tables_and_rule(lab):
    result = trace_vms(lab.engine, WEB, DB, "tcp/5432")
    body = trace_json(result, lambda dpid: f"s{dpid:x}")
    assert body["verdict"] == "allowed" and body["probe"] == "tcp/5432"
    assert body["decided_by"]["file"] == "templates/database.yaml"
    assert body["decided_by"]["line"] == 19
    tables = [t["table"] for t in body["path"][0]["tables"]]
    assert tables[:3] == ["CLASSIFY", "ANTI_SPOOF", "FROM_VM_ACL"]
    text = trace_text(result, lambda dpid: f"s{dpid:x}")
    assert "ALLOWED" in text and "templates/database.yaml:19" in text


@pytest.mark.parametrize("src, dst, probe, field, message", [
    ("00:fa:00:00:00:99", DB, "tcp/80", "src", "no provisioned VM has MAC, IPv4, IPv6 or"),
    (WEB, "10.9.9.9", "tcp/80", "dst",
     "no provisioned VM has MAC, IPv4, IPv6 or OVSDB iface-id '10.9.9.9'"),
    (WEB, WEB, "tcp/80", "dst", "is the source VM itself"),
    (WEB, DB, "sctp/80", "proto", "protocol 'sctp/80' is not one the pipeline handles"),
    (WEB, DB, "tcp", "port", "tcp needs a destination port: tcp/PORT"),
    (WEB, DB, "icmp/3", "port", "icmp has no ports"),
    (WEB, DB, "tcp/70000", "port", "port 70000 outside 1..65535"),
    (OUT, WEB, "tcp/80", "src", "00:f2:00:00:00:07 has no known IPv4 address yet"),
])
def test_bad_input_names_the_field(lab, src, dst, probe, field, message):
    with pytest.raises(TraceError) as raised:
        trace_vms(lab.engine, src, dst, probe)
    assert raised.value.field == field and message in str(raised.value)


def test_a_given_address_must_be_an_address_and_an_ipv4_agree_with_the_bound_one(lab):
    with pytest.raises(TraceError, match="src_ip: 'x' is not an IPv4 or IPv6 address"):
        trace_vms(lab.engine, OUT, WEB, "tcp/80", src_ip="x")
    with pytest.raises(TraceError, match="dst_ip: VM 00:fa:00:00:00:05 is bound to "
                                         "10.0.100.5, not 10.0.100.6"):
        trace_vms(lab.engine, OUT, WEB, "tcp/80", "192.0.2.7", "10.0.100.6")


def test_every_rule_line_points_at_its_rule():
    assert LIBRARY.rule_lines   # the loader recorded them
    for (template_id, side, index), line in LIBRARY.rule_lines.items():
        template = LIBRARY.get(template_id)
        rule = getattr(template, side).acl[index]
        text = Path(template.source).read_text().splitlines()[line - 1]
        assert f"action: {rule.action.value}" in text
        assert f"direction: {rule.direction.value}" in text


# -- the REST route's handler -----------------------------------------------------------
class _App:
    def __init__(self, engine):
        self.engine = engine


@pytest.mark.parametrize("query, field, message", [
    ({"src": WEB, "dst": DB, "proto": "tcp", "port": "5432", "x": "1"}, "x",
     "unknown query parameter 'x'"),
    ({"src": WEB, "proto": "tcp/80"}, "dst", "missing query parameter 'dst'"),
    ({"src": WEB, "dst": DB, "proto": "tcp/80", "port": "80"}, "port", "give the port once"),
    ({"src": WEB, "dst": DB, "proto": "gre"}, "proto", "not one the pipeline handles"),
    ({"src": "junk", "dst": DB, "proto": "icmp"}, "src", "no provisioned VM"),
])
def test_the_rest_route_answers_400_naming_the_field(lab, query, field, message):
    from ryu_apps.rest.api import ApiError
    from ryu_apps.rest.trace_routes import run_trace
    with pytest.raises(ApiError) as raised:
        run_trace(_App(lab.engine), query)
    assert raised.value.status == 400 and raised.value.extra == {"field": field}
    assert message in raised.value.message


def test_the_rest_route_answers_the_trace(lab):
    from ryu_apps.rest.trace_routes import run_trace
    body = run_trace(_App(lab.engine), {"src": WEB, "dst": "10.0.200.5", "proto": "tcp",
                                        "port": "5432"})
    assert body["verdict"] == "allowed" and body["decided_by"]["template"] == "database"
    assert [hop["switch"]["name"] for hop in body["path"]][0] == hex(S11)
