"""The default library's templates, compiled and traced through fake switches."""

from dataclasses import replace

import pytest

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import QUARANTINE_MACS_PER_PORT, QUARANTINE_SECONDS, ProvisioningEngine
from ryu_apps.core.fabric import Role
from ryu_apps.core.flowspec import OFPP_CONTROLLER, FlowSpec, MeterSpec
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import BINDING_METER_BASE, Table
from ryu_apps.core.template_validation import build_library
from ryu_apps.loaders.library_files import load_library
from tests.support.small_fabric import A1, F1, S11, S12, bring_up
from tests.support.fake_switches import FakeSwitches, Packet, tcp

LIBRARY = load_library("templates")
WEB1, WEB3 = "00:fa:00:00:00:01", "00:fa:00:00:00:03"
DB2 = "00:fc:00:00:00:02"
WEB1_IP, WEB3_IP, DB2_IP = "10.0.100.1", "10.0.100.3", "10.0.200.2"


class Lab:
    def __init__(self, library=LIBRARY):
        self.engine = ProvisioningEngine(library, PrefixScheme(16))
        self.switches = FakeSwitches()
        bring_up(self.engine, self.apply)

    def apply(self, plan):
        self.switches.apply(plan)
        return plan

    def vm(self, dpid, port, mac, ip=None, now=0.0):
        verdict = self.engine.packet_in(dpid, port, mac, b"x", now=now)
        self.apply(verdict.plan)
        if ip is not None:  # its first IPv4 packet pins its address
            self.apply(self.engine.packet_in(dpid, port, mac, b"x", now=now, sender_ip=ip).plan)
        return verdict

    def ports_reached(self, dpid, port, packet):
        return sorted((d, p) for d, p, _ in
                      self.switches.trace(self.engine.fabric, dpid, port, packet))


@pytest.fixture
def lab():
    lab = Lab()
    lab.vm(S11, 1, WEB1, WEB1_IP)
    lab.vm(S12, 1, WEB3, WEB3_IP)
    lab.vm(S11, 2, DB2, DB2_IP)
    return lab


def test_web_may_open_postgres_to_the_database_tier(lab):
    assert lab.ports_reached(S12, 1, tcp(WEB3, DB2, WEB3_IP, DB2_IP, 5432)) == [(S11, 2)]
    reply = tcp(DB2, WEB3, DB2_IP, WEB3_IP, 40000, src_port=5432)
    assert lab.ports_reached(S11, 2, reply) == [(S12, 1)]


def test_database_refuses_other_ports_and_other_sources(lab):
    assert lab.ports_reached(S12, 1, tcp(WEB3, DB2, WEB3_IP, DB2_IP, 22)) == []
    lab.vm(S12, 2, "00:fc:00:00:00:06", "10.0.200.6")
    other_db = tcp("00:fc:00:00:00:06", DB2, "10.0.200.6", DB2_IP, 5432)
    assert lab.ports_reached(S12, 2, other_db) == []


def test_acl_order_is_match_order_and_the_default_comes_last():
    rules = [{"action": "deny", "direction": "to_vm", "protocol": "tcp", "dst_port": 22},
             {"action": "allow", "direction": "to_vm", "protocol": "tcp",
              "dst_port": "1-1024"}]
    library = build_library([("t.yaml", {"templates": [{
        "id": 250, "name": "web", "description": "d", "vlan": 100,
        "virtual_switch": {"default_action": "deny", "acl": rules + [
            {"action": "allow", "direction": "from_vm"}]},
        "access_port": {"default_action": "allow"}}]})])
    lab = Lab(library)
    lab.vm(S11, 1, WEB1)
    lab.vm(S12, 1, WEB3)
    to_web1 = [lab.ports_reached(S12, 1, tcp(WEB3, WEB1, WEB3_IP, WEB1_IP, port))
               for port in (22, 80, 1024, 1025)]
    assert to_web1 == [[], [(S11, 1)], [(S11, 1)], []]


def test_arp_broadcast_reaches_each_member_once_through_its_acl(lab):
    arp = Packet(WEB1, "ff:ff:ff:ff:ff:ff", 0x0806, arp_spa=WEB1_IP)
    assert lab.ports_reached(S11, 1, arp) == [(S11, 2), (S12, 1)]


def test_spoofed_ip_is_dropped_and_own_ip_passes(lab):
    assert lab.ports_reached(S11, 1, tcp(WEB1, DB2, WEB1_IP, DB2_IP, 5432)) == [(S11, 2)]
    assert lab.ports_reached(S11, 1, tcp(WEB1, DB2, "10.0.100.99", DB2_IP, 5432)) == []
    arp = Packet(WEB1, "ff:ff:ff:ff:ff:ff", 0x0806, arp_spa="10.0.100.99")
    assert lab.ports_reached(S11, 1, arp) == []


def test_unbound_ip_goes_to_the_controller_to_be_learned():
    lab = Lab()
    lab.vm(S11, 1, WEB1)
    first = tcp(WEB1, DB2, WEB1_IP, DB2_IP, 5432)
    assert lab.ports_reached(S11, 1, first) == [(S11, OFPP_CONTROLLER)]
    learned = lab.engine.packet_in(S11, 1, WEB1, b"x", sender_ip=WEB1_IP, now=0.0)
    assert learned.plan.packet_outs and lab.engine.bindings[WEB1].ip == WEB1_IP


def test_meters_match_the_templates(lab):
    meters = {m.meter_id: m for m in lab.switches.entries(S11) if isinstance(m, MeterSpec)}
    web1 = lab.engine.bindings[WEB1]
    meter = meters[BINDING_METER_BASE + web1.binding_id]
    assert (meter.rate_kbps, meter.burst_kbits) == (100000, 10000)


def test_conflicting_port_rules_move_to_the_vm_ports(lab):
    # web1 and db2 share VLAN 100 behind access port 2 with different port rules.
    assert lab.engine.moved_port_rules() == {WEB1, DB2}
    group = [f for f in lab.switches.flows(A1)
             if decode_cookie(f.cookie).kind is CookieKind.PORT_GROUP and
             f.match_dict().get("in_port") == 2 or f.match_dict().get("metadata") == 2]
    assert group and all("ipv4_dst" not in f.match_dict() and "ipv4_src" not in f.match_dict()
                         for f in group)
    outside = tcp(DB2, WEB3, DB2_IP, "192.0.2.7", 40000, src_port=5432)
    assert lab.ports_reached(S11, 2, outside) == []   # db's port rule, now on its VM port
    # web3 is alone behind port 3: its port rules stay on the access switch.
    assert WEB3 not in lab.engine.moved_port_rules()
    assert any(f.table_id == Table.TO_VM_PORT_ACL and f.match_dict().get("metadata") == 3
               and "tcp_dst" in f.match_dict() for f in lab.switches.flows(A1))


def test_merge_is_undone_when_the_conflict_goes(lab):
    lab.apply(lab.engine.port_down(S11, 2, now=0.0))
    assert lab.engine.moved_port_rules() == set()
    ping_web1 = Packet(WEB3, WEB1, 0x0800, ip_proto=1, ipv4_src=WEB3_IP, ipv4_dst=WEB1_IP)
    assert lab.ports_reached(S12, 1, ping_web1) == [(S11, 1)]
    web1_group = [f for f in lab.switches.flows(A1) if f.table_id == Table.TO_VM_PORT_ACL
                  and f.match_dict().get("metadata") == 2]
    assert any("tcp_dst" in f.match_dict() for f in web1_group)  # web's port rule is back


def test_idle_timeout_removes_every_entry_of_the_binding(lab):
    web1 = lab.engine.bindings[WEB1]
    classify = next(f for f in lab.switches.flows(S11)
                    if f.cookie == web1.owner.cookie and f.table_id == Table.CLASSIFY)
    assert classify.idle_timeout == 600
    plan = lab.apply(lab.engine.flow_removed(S11, classify.cookie, idle_timeout=True))
    assert any("idle timeout" in note for note in plan.notes)
    assert not [e for d in (S11, S12, A1, F1) for e in lab.switches.entries(d)
                if e.cookie == web1.owner.cookie]
    assert WEB1 not in lab.engine.bindings


def test_reload_replaces_flows_in_place_and_keeps_shared_traffic(lab):
    changed = build_library([("t.yaml", {"templates": [
        _as_dict(t) for t in LIBRARY if t.name != "web"] + [_web_without_icmp()]})])
    ping_db = Packet(WEB3, DB2, 0x0800, ip_proto=1, ipv4_src=WEB3_IP, ipv4_dst=DB2_IP)
    assert lab.ports_reached(S12, 1, ping_db) == [(S11, 2)]
    plan = lab.engine.set_library(changed)
    # Make-before-break: after only the adds, shared traffic still flows.
    adds_only = FakeSwitches()
    adds_only.tables = {d: dict(t) for d, t in lab.switches.tables.items()}
    adds_only.meters = {d: dict(m) for d, m in lab.switches.meters.items()}
    adds_only.apply(type(plan)(changes={d: _only_adds(c) for d, c in plan.changes.items()}))
    five_four = tcp(WEB3, DB2, WEB3_IP, DB2_IP, 5432)
    assert sorted((d, p) for d, p, _ in adds_only.trace(lab.engine.fabric, S12, 1, five_four)) \
        == [(S11, 2)]
    lab.apply(plan)
    assert lab.ports_reached(S12, 1, five_four) == [(S11, 2)]
    assert lab.ports_reached(S12, 1, ping_db) == []
    assert any("re-provisioned VM" in n for n in plan.notes)


def test_restart_restores_bindings_from_switch_flows(lab):
    fresh = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    bring_up(fresh, lambda plan: None, held=lab.switches.entries)
    assert {m: (b.binding_id, b.ip) for m, b in fresh.bindings.items()} == {
        m: (b.binding_id, b.ip) for m, b in lab.engine.bindings.items()}
    for dpid, role in ((F1, Role.FABRIC), (A1, Role.ACCESS), (S11, Role.SERVER)):
        plan = fresh.switch_up(dpid, role, hex(dpid), lab.switches.entries(dpid), now=0.0)
        assert plan.is_empty(), plan.changes


def test_a_storm_of_unknown_macs_is_quarantined_then_blocks_the_port():
    lab = Lab()
    notes = []
    for n in range(QUARANTINE_MACS_PER_PORT + 5):
        verdict = lab.vm(S11, 4, f"00:0b:00:00:00:{n:02x}", now=1.0)
        notes += verdict.plan.notes
        assert verdict.refusal is not None
    drops = [f for f in lab.switches.flows(S11)
             if decode_cookie(f.cookie).kind is CookieKind.QUARANTINE]
    assert any(f.match_dict() == {"in_port": 4} for f in drops)
    assert sum("refused MACs" in n for n in notes) == 1
    new_mac = Packet("00:0b:00:00:00:ff", "ff:ff:ff:ff:ff:ff")
    assert lab.ports_reached(S11, 4, new_mac) == []      # no more packet-ins from it
    lab.apply(lab.engine.tick(1.0 + QUARANTINE_SECONDS))
    assert lab.ports_reached(S11, 4, new_mac) == [(S11, OFPP_CONTROLLER)]


def _only_adds(changes):
    from ryu_apps.core.flow_plan import SwitchChanges
    only = SwitchChanges()
    for spec in changes.adds:
        only.add(spec)
    return only


def _web_without_icmp():
    web = _as_dict(LIBRARY.by_name("web"))
    web["virtual_switch"]["acl"] = [r for r in web["virtual_switch"]["acl"]
                                    if r.get("protocol") != "icmp"]
    return web


def _as_dict(template):
    def side(s, with_bind_ip):
        out = {"default_action": s.default_action.value, "acl": [_rule(r) for r in s.acl]}
        if s.bandwidth:
            out["bandwidth"] = {"rate_kbps": s.bandwidth.rate_kbps,
                                "burst_kbits": s.bandwidth.burst_kbits}
        if with_bind_ip:
            out["bind_ip"] = s.bind_ip or False   # None: unguarded
        if s.stateful:
            out["stateful"] = True
        return out
    return {"id": template.template_id, "name": template.name,
            "description": template.description, "vlan": template.vlan,
            "idle_timeout": template.idle_timeout,
            "virtual_switch": side(template.virtual_switch, True),
            "access_port": side(template.access_port, False)}


def _rule(rule):
    names = {0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp"}
    protocols = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
    out = {"action": rule.action.value, "direction": rule.direction.value}
    if rule.ethertype is not None:
        out["ethertype"] = names[rule.ethertype]
    if rule.protocol is not None:
        out["protocol"] = protocols[rule.protocol]
    for name in ("src", "dst"):
        if getattr(rule, name) is not None:
            out[name] = str(getattr(rule, name))
    for name in ("src_port", "dst_port"):
        ports = getattr(rule, name)
        if ports is not None:
            out[name] = ports.low if ports.low == ports.high else str(ports)
    for name in ("icmp_type", "icmp_code"):
        if getattr(rule, name, None) is not None:
            out[name] = getattr(rule, name)
    return out


_ = (replace, FlowSpec)


def _replay_adds(lab, plan, descending: bool, packet) -> bool:
    """Apply a plan's flow adds one by one; True if ``packet`` always got through."""
    from ryu_apps.core.flowspec import FlowSpec as Spec
    for dpid, changes in plan.changes.items():
        for spec in sorted((s for s in changes.adds if isinstance(s, Spec)),
                           key=lambda s: -s.priority if descending else s.priority):
            lab.switches.tables.setdefault(dpid, {})[spec.key] = spec
            if lab.ports_reached(S12, 1, packet) != [(S11, 2)]:
                return False
    return True


def _open_library(web_side):
    def template(template_id, name, side):
        return {"id": template_id, "name": name, "description": name, "vlan": 100,
                "virtual_switch": side, "access_port": {"default_action": "allow"}}
    return build_library([("t.yaml", {"templates": [
        template(250, "web", web_side), template(252, "db", {"default_action": "allow"})]})])


@pytest.mark.parametrize("descending", [True, False])
def test_adds_in_descending_priority_never_drop_what_both_versions_allow(descending):
    """Default allow becomes default deny plus allow rules (the same entry changes)."""
    lab = Lab(_open_library({"default_action": "allow"}))
    lab.vm(S11, 2, DB2)
    lab.vm(S12, 1, WEB3)
    five_four = tcp(WEB3, DB2, WEB3_IP, DB2_IP, 5432)
    assert lab.ports_reached(S12, 1, five_four) == [(S11, 2)]
    changed = _open_library({"default_action": "deny", "acl": [
        {"action": "allow", "direction": "from_vm", "protocol": "tcp", "dst_port": 5432},
        {"action": "allow", "direction": "to_vm", "protocol": "tcp", "src_port": 5432}]})
    survived = _replay_adds(lab, lab.engine.set_library(changed), descending, five_four)
    assert survived is descending   # ascending order would drop it: the test can fail
