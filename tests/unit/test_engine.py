"""The provisioning engine, driven by events and checked on fake flow tables."""

import pytest

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import TAG_MASK, template_tag, to_vm_metadata
from ryu_apps.core.template_validation import build_library
from tests.support.fake_switches import FakeSwitches, Packet
from tests.support.invariants import check_event

F1, A1, A2 = 0x100, 0x201, 0x202
S11, S12, S21 = 0x1101, 0x1102, 0x2101
UPLINK = 10
BROADCAST = "ff:ff:ff:ff:ff:ff"
WEB1, WEB2, WEB3 = "00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fa:00:00:00:03"
DB1 = "00:fc:00:00:00:01"
UNKNOWN = "00:0b:00:00:00:01"


def _template(template_id, name, vlan):
    return {"id": template_id, "name": name, "description": name, "vlan": vlan,
            "virtual_switch": {"default_action": "allow"},
            "access_port": {"default_action": "allow"}}


LIBRARY = build_library([("test.yaml", {"templates": [
    _template(250, "web", 100), _template(252, "db", 200)]})])

SWITCHES = [(F1, Role.FABRIC, "f1"), (A1, Role.ACCESS, "a1"), (A2, Role.ACCESS, "a2"),
            (S11, Role.SERVER, "s11"), (S12, Role.SERVER, "s12"),
            (S21, Role.SERVER, "s21")]
LINKS = [((A1, 1), (F1, 1)), ((A2, 1), (F1, 2)), ((S11, UPLINK), (A1, 2)),
         ((S12, UPLINK), (A1, 3)), ((S21, UPLINK), (A2, 2))]


class Lab:
    """An engine and the fake switches its plans are applied to; after each applied
    plan the invariants hold (tests/support/invariants.py) unless ``checking`` is off."""

    checking = True

    def __init__(self):
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
        self.switches = FakeSwitches()
        for dpid, role, name in SWITCHES:
            self.apply(self.engine.switch_up(dpid, role, name, [], now=0.0))
        for a, b in LINKS:
            self.apply(self.engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))

    def apply(self, plan):
        self.switches.apply(plan)
        if self.checking:
            check_event(self.engine, self.switches, plan)
        return plan

    def vm(self, dpid, port, mac):
        verdict = self.engine.packet_in(dpid, port, mac, b"frame", now=0.0)
        self.apply(verdict.plan)
        return verdict

    def send(self, dpid, port, src, dst):
        return self.switches.trace(self.engine.fabric, dpid, port, Packet(src, dst))


@pytest.fixture
def lab():
    lab = Lab()
    lab.vm(S11, 1, WEB1)
    lab.vm(S12, 1, WEB2)
    lab.vm(S21, 1, WEB3)
    lab.vm(S21, 2, DB1)
    return lab


def test_unicast_reaches_only_the_destination_untagged(lab):
    assert lab.send(S11, 1, WEB1, WEB3) == [(S21, 1, Packet(WEB1, WEB3))]
    assert lab.send(S21, 1, WEB3, WEB2) == [(S12, 1, Packet(WEB3, WEB2))]


def test_broadcast_reaches_each_member_of_the_vlan_once(lab):
    delivered = lab.send(S11, 1, WEB1, BROADCAST)
    assert sorted((d, p) for d, p, _ in delivered) == [(S12, 1), (S21, 1)]
    assert all(pkt.vlan_vid == 0 for _, _, pkt in delivered)


def test_templates_are_isolated(lab):
    assert lab.send(S11, 1, WEB1, DB1) == []
    assert lab.send(S21, 2, DB1, WEB3) == []
    assert lab.send(S21, 2, DB1, BROADCAST) == []


def test_unprovisioned_port_goes_to_the_controller_and_is_never_a_destination(lab):
    assert lab.send(S11, 7, "00:fa:00:00:00:99", WEB1) == [
        (S11, OFPP_CONTROLLER, Packet("00:fa:00:00:00:99", WEB1))]
    assert all(port != 7 for _, port, _ in lab.send(S12, 1, WEB2, BROADCAST))


def test_spoofed_source_mac_on_a_provisioned_port_is_not_forwarded(lab):
    delivered = lab.send(S11, 1, WEB2, WEB3)
    assert [port for _, port, _ in delivered] == [OFPP_CONTROLLER]


def test_provisioning_again_sends_nothing(lab):
    verdict = lab.engine.packet_in(S11, 1, WEB1, b"frame", now=0.0)
    assert verdict.plan.is_empty() and verdict.provisioned is None


def test_first_packet_is_reinjected_after_provisioning():
    lab = Lab()
    verdict = lab.vm(S11, 1, WEB1)
    assert [(o.dpid, o.in_port, o.data) for o in verdict.plan.packet_outs] == [
        (S11, 1, b"frame")]
    assert verdict.provisioned.template_id == 250 and verdict.provisioned.vlan == 100


def test_every_flow_is_ours_and_binding_flows_name_their_binding(lab):
    for spec in lab.switches.all_flows():
        owner = decode_cookie(spec.cookie)
        assert owner is not None
        if owner.kind is CookieKind.BINDING:
            binding = next(b for b in lab.engine.bindings.values()
                           if b.binding_id == owner.owner_id)
            assert owner.template_id == binding.template_id
            fields = spec.match_dict()
            assert (binding.mac in fields.values()
                    or (spec.dpid == binding.dpid
                        and (fields.get("in_port") == binding.port or fields.get("metadata")
                             == to_vm_metadata(binding.port, binding.template_id))))
        elif owner.kind is CookieKind.TEMPLATE:   # shared: selected by the template's tag
            assert spec.match_dict()["metadata"][0] & TAG_MASK == template_tag(
                owner.template_id)


def test_a_vm_seen_on_another_port_moves_once_its_old_port_is_gone_and_leaves_nothing(lab):
    old = lab.engine.bindings[WEB1]
    lab.vm(S12, 2, WEB1)                         # a conflict, not a move (yet)
    assert lab.engine.bindings[WEB1] == old
    # the old port goes away: the move is believed
    lab.apply(lab.engine.port_down(S11, 1, now=0.0))
    assert (lab.engine.bindings[WEB1].dpid, lab.engine.bindings[WEB1].port) == (S12, 2)
    assert not [f for f in lab.switches.all_flows()
                if decode_cookie(f.cookie).owner_id == old.binding_id
                and decode_cookie(f.cookie).kind is CookieKind.BINDING]
    assert lab.send(S21, 1, WEB3, WEB1) == [(S12, 2, Packet(WEB3, WEB1))]


def test_port_down_removes_the_binding_and_its_flows(lab):
    binding = lab.engine.bindings[WEB3]
    lab.apply(lab.engine.port_down(S21, 1, now=0.0))
    assert WEB3 not in lab.engine.bindings
    assert not any(f.cookie == binding.owner.cookie for f in lab.switches.all_flows())
    assert lab.send(S11, 1, WEB1, WEB3) == []


def test_unknown_template_is_refused_once_and_logged_with_its_id():
    lab = Lab()
    first = lab.vm(S11, 1, UNKNOWN)
    again = lab.vm(S11, 1, UNKNOWN)
    assert first.refusal.template_id == 11
    assert "template 11 (0x000B) is not in the library" in first.refusal.reason
    assert first.first_refusal and not again.first_refusal
    assert again.refusal.count == 2 and again.plan.is_empty()
    assert not lab.engine.bindings
    quarantine = first.plan.changes[S11].adds
    assert [f.match_dict() for f in quarantine] == [{"in_port": 1, "eth_src": UNKNOWN}]
    assert quarantine[0].instructions == ()  # drop


@pytest.mark.parametrize("mac, reason", [
    ("01:00:5e:00:00:01", "multicast"), (BROADCAST, "broadcast"),
    ("00:00:00:00:00:00", "all-zero")])
def test_group_and_zero_macs_are_refused(mac, reason):
    lab = Lab()
    verdict = lab.vm(S11, 1, mac)
    assert reason in verdict.refusal.reason
    assert not lab.engine.bindings


def test_packets_on_links_and_other_roles_do_not_provision(lab):
    assert lab.engine.packet_in(S11, UPLINK, "00:fa:00:00:00:42", now=0.0).provisioned is None
    assert lab.engine.packet_in(A1, 5, "00:fa:00:00:00:42", now=0.0).provisioned is None


def test_reconnect_with_intact_tables_sends_nothing(lab):
    plan = lab.engine.switch_up(S21, Role.SERVER, "s21", lab.switches.entries(S21), now=0.0)
    assert plan.changes.get(S21) is None or not plan.changes[S21]


def test_reconnect_repairs_missing_and_stale_flows(lab):
    held = lab.switches.entries(S21)
    missing = next(iter(lab.switches.flows(S21)))
    stale = next(f for f in lab.switches.flows(S11))
    stale = type(stale)(S21, stale.table_id, stale.priority + 1, stale.match,
                        stale.instructions, stale.cookie)
    plan = lab.engine.switch_up(S21, Role.SERVER, "s21", (held - {missing}) | {stale}, now=0.0)
    assert plan.changes[S21].adds == [missing]
    assert plan.changes[S21].deletes == [stale]


def test_link_found_after_vms_completes_their_paths():
    lab = Lab.__new__(Lab)
    lab.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    lab.switches = FakeSwitches()
    for dpid, role, name in SWITCHES:
        lab.apply(lab.engine.switch_up(dpid, role, name, [], now=0.0))
    lab.vm(S11, 1, WEB1)
    lab.vm(S21, 1, WEB3)
    assert lab.send(S11, 1, WEB1, WEB3) == []
    for a, b in LINKS:
        lab.apply(lab.engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))
    assert lab.send(S11, 1, WEB1, WEB3) == [(S21, 1, Packet(WEB1, WEB3))]


def test_a_port_hosts_a_vm_while_the_vm_is_bound_there(lab):
    assert lab.engine.hosts_vm(S11, 1)
    assert not lab.engine.hosts_vm(S11, 7)            # no VM seen there
    uplink = next(a for a, b in LINKS if a[0] == S11)
    assert not lab.engine.hosts_vm(*uplink)
    lab.apply(lab.engine.port_down(S11, 1, now=0.0))
    assert not lab.engine.hosts_vm(S11, 1)


def test_reset_forgets_everything_and_the_switches_flows_bring_it_back(lab):
    held = {dpid: lab.switches.entries(dpid) for dpid, _, _ in SWITCHES}
    bindings = {mac: (b.dpid, b.port, b.template_id) for mac, b in lab.engine.bindings.items()}
    lab.engine.reset()
    lab.checking = False   # a warm start only adds until every switch is back
    assert not lab.engine.bindings and not lab.engine.fabric.switches
    for dpid, role, name in SWITCHES:
        plan = lab.engine.switch_up(dpid, role, name, held[dpid], now=0.0).without_deletes()
        lab.apply(plan)
    for a, b in LINKS:
        lab.apply(lab.engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))
    assert {mac: (b.dpid, b.port, b.template_id)
            for mac, b in lab.engine.bindings.items()} == bindings
    for dpid, role, name in SWITCHES:   # the full reconciliation after the grace period
        plan = lab.engine.switch_up(dpid, role, name, lab.switches.entries(dpid), now=0.0)
        assert plan.flow_count() == 0, hex(dpid)


def test_recompute_all_agrees_with_the_incremental_state_and_repairs_it(lab):
    assert lab.engine.recompute_all().is_empty()
    tables = {dpid: lab.switches.entries(dpid) for dpid, _, _ in SWITCHES}
    vlan = next(o for o in lab.engine.desired.owners() if o.kind is CookieKind.VLAN)
    lost = lab.engine.desired.flows_of(vlan)
    lab.engine.desired.replace(vlan, set(), Plan())   # lost behind the engine's back
    repair = lab.engine.recompute_all()
    assert {spec for changes in repair.changes.values() for spec in changes.adds} == lost
    assert not any(changes.deletes for changes in repair.changes.values())
    lab.apply(repair)
    assert {dpid: lab.switches.entries(dpid) for dpid, _, _ in SWITCHES} == tables
