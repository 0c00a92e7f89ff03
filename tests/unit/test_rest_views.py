"""JSON views of the REST API (pure), and its switch reads against a fake app."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import types

import pytest

from ryu_apps.rest import views as rest_views
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    ApplyActions,
    FlowSpec,
    GotoTable,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    WriteMetadata,
    make_match,
)
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import BINDING_METER_BASE
from ryu_apps.core.template_validation import build_library
from ryu_apps.rest.views import FlowStat, ViewError
from tests.support.required import import_or_skip

F1, A1, S11, S12 = 0x100, 0x201, 0x1101, 0x1102
UPLINK = 10
WEB1, WEB2, DB1 = "00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fc:00:00:00:01"

LIBRARY = build_library([("lib/web.yaml", {"templates": [{
    "id": 250, "name": "web", "description": "web servers", "vlan": 100,
    "idle_timeout": 300,
    "virtual_switch": {"default_action": "deny",
                       "bandwidth": {"rate_kbps": 10000, "burst_kbits": 1000},
                       "acl": [{"action": "allow", "direction": "to_vm", "protocol": "tcp",
                                "dst_port": 443}]},
    "access_port": {"default_action": "allow"}}]}),
    ("lib/db.yaml", {"templates": [{
        "id": 252, "name": "db", "description": "databases", "vlan": 200,
        "virtual_switch": {"default_action": "allow"},
        "access_port": {"default_action": "allow"}}]})])


@pytest.fixture(name="engine")
def engine_with_vms() -> ProvisioningEngine:
    """s11 and s12 below a1 below f1; web1 and db1 on s11, web2 on s12."""
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    for dpid, role, name in ((F1, Role.FABRIC, "f1"), (A1, Role.ACCESS, "a1"),
                             (S11, Role.SERVER, "s11"), (S12, Role.SERVER, "s12")):
        engine.switch_up(dpid, role, name, [], now=0.0)
    for a, b in (((A1, 1), (F1, 1)), ((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3))):
        engine.link_seen(PortRef(*a), PortRef(*b), now=0.0)
    for dpid, port, mac in ((S11, 1, WEB1), (S11, 2, DB1), (S12, 1, WEB2)):
        assert engine.packet_in(dpid, port, mac, b"", now=1714564803.25).provisioned
    return engine


def _stats(engine, mac, packets=0, bytes_per_packet=100):
    """The binding's desired flows as if read back, each with ``packets`` packets."""
    flows = engine.desired.flows_of(engine.bindings[mac].owner)
    return [FlowStat(f, packets, packets * bytes_per_packet, 1.5)
            for f in flows if isinstance(f, FlowSpec)]


# -- input ------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["00:FA:00:00:00:01", "00-fa-00-00-00-01",
                                  " 00:fa:0:0:0:1 "])
def test_mac_in_any_case_and_separator(text):
    assert rest_views.canonical_mac(text) == WEB1


@pytest.mark.parametrize("text", ["zz", "00:fa:00:00:00", "00:fa:00:00:00:01:02", ""])
def test_bad_mac_says_what_is_expected(text):
    with pytest.raises(ViewError, match=r"is not a MAC address: expected six hex octets"):
        rest_views.canonical_mac(text)


@pytest.mark.parametrize("text, expected", [("250", 250), ("0x00FA", 250), ("0xfa", 250),
                                            ("0", 0), ("65535", 65535)])
def test_template_id_in_decimal_or_hex(text, expected):
    assert rest_views.parse_template_id(text) == expected


@pytest.mark.parametrize("text", ["65536", "web", "-1", "0x", "1e3"])
def test_bad_template_id(text):
    with pytest.raises(ViewError, match=r"is not a template id: expected 0\.\.65535"):
        rest_views.parse_template_id(text)


def test_flags():
    assert rest_views.parse_flag(None, "counters", True) is True
    assert rest_views.parse_flag("false", "counters", True) is False
    assert rest_views.parse_flag("1", "counters", False) is True
    with pytest.raises(ViewError, match=r"counters='maybe': expected true or false"):
        rest_views.parse_flag("maybe", "counters", True)


# -- bindings ---------------------------------------------------------------------
def test_binding_view(engine):
    binding = engine.bindings[WEB1]
    view = rest_views.binding_view(binding, engine.fabric.switches,
                                   engine.access_port_of(binding))
    assert view["mac"] == WEB1
    assert (view["template_id"], view["template_name"], view["vlan"]) == (250, "web", 100)
    assert view["server"] == {"dpid": "0000000000001101", "name": "s11", "port": 1}
    assert view["access"] == {"dpid": "0000000000000201", "name": "a1", "port": 2}
    assert view["since"] == "2024-05-01T12:00:03.250Z"
    assert view["since_unix"] == 1714564803.25
    # "provisioning" until the app confirms the plan reached every switch
    assert (view["state"], view["detected_by"], view["ip"]) == ("provisioning", "packet", None)
    engine.confirm([WEB1])
    view = rest_views.binding_view(engine.bindings[WEB1], engine.fabric.switches, None)
    assert view["state"] == "active"
    assert view["cookie"] == f"0x{binding.owner.cookie:016x}"
    assert view["cookie"].startswith("0xd9100fa")
    json.dumps(view)


def test_binding_view_shows_the_addresses_the_ipv6_guard_allows(engine):
    binding = engine.bindings[WEB1]
    template = engine.template_of(binding)
    assert rest_views.binding_view(binding, engine.fabric.switches, None,
                                   template)["ipv6"] == []
    guarded = dataclasses.replace(template, virtual_switch=dataclasses.replace(
        template.virtual_switch, bind_ipv6="link_local"))
    view = rest_views.binding_view(binding, engine.fabric.switches, None, guarded)
    mac = [int(part, 16) for part in WEB1.split(":")]
    eui = [mac[0] ^ 2] + mac[1:3] + [0xFF, 0xFE] + mac[3:]
    expected = ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui))
    assert view["ipv6"] == [str(expected)] and view["ip"] is None


def test_binding_without_known_access_switch(engine):
    binding = engine.bindings[WEB1]
    view = rest_views.binding_view(binding, engine.fabric.switches, None)
    assert view["access"] is None


def test_counters_sent_and_received_come_from_the_vms_own_entries(engine):
    binding = engine.bindings[WEB1]
    stats = _stats(engine, WEB1, packets=3) + _stats(engine, DB1, packets=50)
    counters = rest_views.binding_counters(binding, stats)
    # one entry each on s11: in_port+eth_src (sent) and eth_dst (received); not summed
    # over the ACL, anti-spoof and transit entries the same packets also hit
    assert counters == {"sent": {"packets": 3, "bytes": 300},
                        "received": {"packets": 3, "bytes": 300}}


def test_counters_ignore_the_same_flows_on_other_switches(engine):
    binding = engine.bindings[WEB1]
    elsewhere = [FlowStat(dataclasses.replace(s.spec, dpid=S12), 9, 9, 0.0)
                 for s in _stats(engine, WEB1)]
    assert rest_views.binding_counters(binding, elsewhere) == {"sent": None,
                                                               "received": None}


def test_counters_missing_entries_are_none(engine):
    binding = engine.bindings[WEB1]
    assert rest_views.binding_counters(binding, []) == {"sent": None, "received": None}


def test_with_counters():
    view = {"mac": WEB1, "counters": None, "counters_error": "not requested"}
    counted = rest_views.with_counters(view, {"sent": None, "received": None}, None)
    assert counted["counters_error"] is None
    silent = rest_views.with_counters(view, None, "server bridge s11: switch not connected")
    assert silent["counters"] is None
    assert silent["counters_error"] == "server bridge s11: switch not connected"


# -- flows ------------------------------------------------------------------------
def test_flow_view_of_a_binding_flow(engine):
    binding = engine.bindings[WEB1]
    classify = next(s for s in _stats(engine, WEB1, packets=4)
                    if s.spec.match_dict().get("eth_src") == WEB1)
    view = rest_views.flow_view(classify, engine.fabric.switches)
    assert view["switch"] == {"dpid": "0000000000001101", "name": "s11"}
    assert view["match"] == {"eth_src": WEB1, "in_port": 1}
    assert view["idle_timeout"] == 300
    assert (view["packets"], view["bytes"], view["duration"]) == (4, 400, 1.5)
    assert view["owner"] == {"kind": "binding", "owner_id": binding.binding_id,
                             "template_id": 250,
                             "description": f"binding {binding.binding_id} template 250"}
    assert view["instructions"][0] == f"meter:{BINDING_METER_BASE + binding.binding_id}"
    assert view["instructions"][-1].startswith("goto_table:")
    json.dumps(view)


def test_flow_view_of_a_flow_that_is_not_dynprovs():
    spec = FlowSpec(0x999, 0, 5, make_match(eth_dst=("01:00:00:00:00:00",
                                                     "01:00:00:00:00:00")),
                    (ApplyActions((Output(2),)),), 0)
    view = rest_views.flow_view(FlowStat(spec, 0, 0, 0.0), {})
    assert view["owner"] is None
    assert view["cookie"] == "0x0000000000000000"
    assert view["switch"] == {"dpid": "0000000000000999", "name": None}
    assert view["match"] == {"eth_dst": "01:00:00:00:00:00/01:00:00:00:00:00"}


def test_instructions_read_like_ovs_ofctl():
    instructions = (Meter(7), ApplyActions((PushVlan(), SetField("vlan_vid", 4196),
                                            PopVlan(), Resubmit(5),
                                            Output(OFPP_CONTROLLER, 128), Output(3))),
                    WriteMetadata(2, 0xFFF), GotoTable(4),
                    ("unknown-instruction", "OFPInstructionFoo"))
    assert [rest_views.instruction_text(i) for i in instructions] == [
        "meter:7",
        "apply_actions(push_vlan:0x8100,set_field:4196->vlan_vid,pop_vlan,resubmit(,5),"
        "output:CONTROLLER:128,output:3)",
        "write_metadata:0x2/0xfff", "goto_table:4", "unknown:OFPInstructionFoo"]


def test_flows_sorted_by_switch_table_and_priority(engine):
    ordered = rest_views.sorted_flows(_stats(engine, WEB1))
    keys = [(s.spec.dpid, s.spec.table_id, -s.spec.priority) for s in ordered]
    assert keys == sorted(keys)


# -- templates, switches, links, refusals -------------------------------------------
def test_template_view():
    view = rest_views.template_view(LIBRARY.get(250))
    assert view["template_id"] == 250 and view["hex"] == "0x00FA"
    assert (view["name"], view["vlan"], view["idle_timeout"]) == ("web", 100, 300)
    assert view["source"] == "lib/web.yaml"
    assert view["virtual_switch"]["default_action"] == "deny"
    assert view["virtual_switch"]["acl"] == [
        "allow to_vm ethertype=ipv4,ipv6 protocol=tcp dst_port=443"]
    assert view["virtual_switch"]["bandwidth"] == {"rate_kbps": 10000, "burst_kbits": 1000}
    assert view["access_port"] == {"default_action": "allow", "acl": [], "bandwidth": None,
                                   "bind_ip": False, "bind_ipv6": None, "router": False,
                                   "dhcp_server": False, "allowed_addresses": []}
    json.dumps(view)


def test_switch_and_link_views(engine):
    switches = engine.fabric.switches
    assert rest_views.switch_view(switches[S11], True, 2) == {
        "dpid": "0000000000001101", "name": "s11", "role": "server", "connected": True,
        "bindings": 2}
    a, b = engine.fabric.links()[0]
    view = rest_views.link_view(a, b, switches, on_tree=True)
    assert view["a"]["name"] and view["b"]["name"] and view["on_tree"] is True
    assert view["shared_fabric"] is False


def test_a_shared_uplink_is_a_link_to_no_switch(engine):
    access = next(d for d, info in engine.fabric.switches.items() if info.role.value == "access")
    engine.shared_uplink_seen(PortRef(access, 77), now=0.0)
    (a, b), = [(a, b) for a, b in engine.fabric.links() if a == PortRef(access, 77)]
    view = rest_views.link_view(a, b, engine.fabric.switches, on_tree=True)
    assert view["a"]["port"] == 77 and view["b"] is None and view["shared_fabric"] is True
    json.dumps(view)


def test_refusal_view(engine):
    engine.packet_in(S11, 3, "00:0b:00:00:00:01", b"", now=1714564803.25)
    (refusal,) = engine.refused.values()
    view = rest_views.refusal_view(refusal, engine.fabric.switches)
    assert view["mac"] == "00:0b:00:00:00:01" and view["template_id"] == 11
    assert "not in the library" in view["reason"]
    assert view["switch"] == {"dpid": "0000000000001101", "name": "s11"}
    assert (view["port"], view["count"], view["since"]) == (3, 1, "2024-05-01T12:00:03.250Z")


def test_refusal_view_of_a_minimal_refusal():
    refusal = types.SimpleNamespace(mac="01:00:00:00:00:01", template_id=None,
                                    reason="multicast MAC")
    view = rest_views.refusal_view(refusal, {})
    assert view["switch"] is None and view["since"] is None and view["port"] is None


# -- flow_reads: a silent or absent switch never hangs a request -----------------------
class _FakeApp:
    """Just what flow_reads.read_flows touches; ``send_request`` never answers."""

    def __init__(self, connected):
        self.datapaths = {dpid: _FakeDatapath(dpid) for dpid in connected}

    def send_request(self, request):
        from ryu.lib import hub
        hub.sleep(60)


class _FakeDatapath:
    def __init__(self, dpid):
        from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser
        self.id, self.ofproto, self.ofproto_parser = dpid, ofproto_v1_3, ofproto_v1_3_parser


def test_silent_switch_times_out_and_absent_switch_is_reported():
    flow_reads = import_or_skip("ryu_apps.rest.flow_reads")
    app = _FakeApp(connected=[S11])
    answers = flow_reads.read_many(app, {S11: (0, 0), S12: (0, 0)}, timeout=0.2)
    assert answers == {S11: (None, "no flow stats reply within 0.2 s"),
                       S12: (None, "switch not connected")}
