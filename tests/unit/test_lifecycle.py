"""Notifications, migrations and mobility domains, checked on fake switches."""

import pytest

from ryu_apps.core.binding import VmState
from ryu_apps.core.device_messages import MigrationDone, MigrationNotice
from ryu_apps.core.domains import DomainError, build_domains
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.lifecycle import Notice, NotificationError
from ryu_apps.core.template_validation import build_library
from tests.support.fake_switches import FakeSwitches, Packet

F1, A1, A2 = 0x100, 0x201, 0x202
S11, S21 = 0x1101, 0x2101
UPLINK = 10
WEB1, WEB2, PEER = "00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fa:00:00:00:09"


def _template(template_id, name, vlan):
    return {"id": template_id, "name": name, "description": name, "vlan": vlan,
            "virtual_switch": {"default_action": "allow"},
            "access_port": {"default_action": "allow"}}


LIBRARY = build_library([("t.yaml", {"templates": [
    _template(250, "web", 100), _template(252, "db", 100), _template(254, "other", 300)]})])
WEST_LIBRARY = build_library([("west.yaml", {"templates": [_template(250, "web", 100)]})])


class Lab:
    """Fabric f1 with access a1 (server s11) and a2 (server s21)."""

    def __init__(self, domains=None, libraries=None):
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16), domains, libraries)
        self.switches = FakeSwitches()
        for dpid, role, name in ((F1, Role.FABRIC, "f1"), (A1, Role.ACCESS, "a1"),
                                 (A2, Role.ACCESS, "a2"), (S11, Role.SERVER, "s11"),
                                 (S21, Role.SERVER, "s21")):
            self.apply(self.engine.switch_up(dpid, role, name, [], now=0.0))
        for a, b in (((A1, 1), (F1, 1)), ((A2, 1), (F1, 2)), ((S11, UPLINK), (A1, 2)),
                     ((S21, UPLINK), (A2, 2))):
            self.apply(self.engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))

    def apply(self, plan):
        """Apply a plan and deliver its device messages, like the app does."""
        self.switches.apply(plan)
        self.engine.confirm(plan.confirms)
        for message in plan.messages:
            self.apply(self.engine.receive(message, now=0.0))
        return plan

    def vm(self, dpid, port, mac):
        return self.apply(self.engine.packet_in(dpid, port, mac, b"x", now=0.0).plan)

    def notify(self, notice, mac, **kw):
        ack = self.engine.notify(notice, mac, **{"now": 0.0, **kw})
        self.apply(ack.plan)
        return ack.message

    def reached(self, dpid, port, src, dst):
        return sorted((d, p) for d, p, _ in self.switches.trace(
            self.engine.fabric, dpid, port, Packet(src, dst)))


@pytest.fixture
def lab():
    lab = Lab()
    lab.vm(S11, 1, WEB1)
    lab.vm(S21, 1, PEER)
    return lab


def test_new_vm_becomes_active_once_confirmed(lab):
    assert lab.engine.bindings[WEB1].state is VmState.ACTIVE


def test_suspend_stops_traffic_and_resume_restores_it(lab):
    assert lab.notify(Notice.SUSPENDED, WEB1) == "traffic stopped, binding kept"
    assert lab.reached(S21, 1, PEER, WEB1) == []
    assert lab.reached(S11, 1, WEB1, PEER) == []
    assert lab.notify(Notice.SUSPENDED, WEB1) == "already suspended"
    binding_id = lab.engine.bindings[WEB1].binding_id
    assert lab.notify(Notice.RESUMED, WEB1) == "traffic restored"
    assert lab.reached(S21, 1, PEER, WEB1) == [(S11, 1)]
    assert lab.engine.bindings[WEB1].binding_id == binding_id
    assert lab.notify(Notice.RESUMED, WEB1) == "already active"


def test_shutdown_deprovisions_and_is_idempotent(lab):
    assert "deprovisioned from s11 port 1" in lab.notify(Notice.SHUTDOWN, WEB1)
    assert not any(f.cookie >> 52 == 0xD91 and "00:fa:00:00:00:01" in str(f.match)
                   for f in lab.switches.all_flows())
    assert lab.notify(Notice.SHUTDOWN, WEB1) == "already deprovisioned"
    with pytest.raises(NotificationError, match="unknown VM 00:fa:00:00:00:77"):
        lab.notify(Notice.SHUTDOWN, "00:fa:00:00:00:77")


def test_restart_keeps_the_template_without_selecting_again(lab):
    lab.notify(Notice.TEMPLATE_CHANGE, WEB1, template_id=252)
    assert lab.engine.bindings[WEB1].template_id == 252
    assert "template 252 kept" in lab.notify(Notice.RESTARTING, WEB1)
    assert lab.reached(S21, 1, PEER, WEB1) == []
    lab.vm(S11, 3, WEB1)      # back, on a new port of its server
    binding = lab.engine.bindings[WEB1]
    assert (binding.template_id, binding.port, binding.state) == (252, 3, VmState.ACTIVE)
    assert lab.reached(S21, 1, PEER, WEB1) == [(S11, 3)]


def test_template_change_reprovisions_in_place(lab):
    before = lab.engine.bindings[WEB1]
    assert "template 254 'other'" in lab.notify(Notice.TEMPLATE_CHANGE, WEB1, template_id=254)
    after = lab.engine.bindings[WEB1]
    assert (after.binding_id, after.vlan) == (before.binding_id, 300)
    assert lab.reached(S21, 1, PEER, WEB1) == []          # other VLAN now
    with pytest.raises(NotificationError, match="template 999 .* is not in the library"):
        lab.notify(Notice.TEMPLATE_CHANGE, WEB1, template_id=999)


def test_notifications_name_unknown_servers(lab):
    with pytest.raises(NotificationError, match="unknown server 's99'"):
        lab.notify(Notice.MIGRATING, WEB1, server="s99")
    with pytest.raises(NotificationError, match="a1 is an access switch"):
        lab.notify(Notice.MIGRATING, WEB1, server="a1")


def test_migration_with_notice_pre_provisions_then_activates(lab):
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)   # hypervisor created the port
    incoming = lab.engine.incoming[WEB1]
    assert incoming.state is VmState.PRE_PROVISIONED and (incoming.dpid, incoming.port) == (S21, 5)
    message = lab.notify(Notice.MIGRATING, WEB1, server="s21")
    assert "a2 told to pre-provision s21" in message
    assert lab.engine.bindings[WEB1].state is VmState.MIGRATING_OUT
    # Until the VM is there, frames for it reach both its ports, once each
    # (ryu_apps/core/migration_paths.py): the switchover needs no controller ...
    assert lab.reached(S21, 1, PEER, WEB1) == [(S11, 1), (S21, 5)]
    # ... what it sends from there is forwarded at once, with a copy to activate it
    # (an announcement, ARP: not its IPv4, mostly answers, a stream of copies).
    arp = Packet(WEB1, PEER, eth_type=0x0806)
    assert sorted((d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, S21, 5, arp)) \
        == [(S21, 1), (S21, OFPP_CONTROLLER)]
    assert lab.reached(S21, 5, WEB1, PEER) == [(S21, 1)]
    plan = lab.apply(lab.engine.packet_in(S21, 5, WEB1, b"rarp", now=0.0).plan)
    assert not plan.packet_outs                     # already forwarded by the pipeline
    assert any(isinstance(m, MigrationDone) for m in plan.messages)
    assert lab.reached(S21, 1, PEER, WEB1) == [(S21, 5)]
    assert lab.engine.bindings[WEB1].state is VmState.ACTIVE
    assert not any(WEB1 in str(f.match) for f in lab.switches.flows(S11))


def test_notice_before_the_port_exists_pre_provisions_when_it_appears(lab):
    ack = lab.engine.notify(Notice.MIGRATING, WEB1, server="s21", now=0.0)
    assert isinstance(ack.plan.messages[0], MigrationNotice)
    lab.apply(ack.plan)
    assert WEB1 not in lab.engine.incoming
    lab.apply(lab.engine.vm_attached(S21, 6, WEB1, now=0.0).plan)
    assert lab.engine.incoming[WEB1].port == 6


def test_silent_migration_recovers_when_the_old_port_goes(lab):
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    lab.apply(lab.engine.port_down(S11, 1, now=0.0))          # no announcement at all
    assert lab.engine.bindings[WEB1].dpid == S21
    assert lab.reached(S21, 1, PEER, WEB1) == [(S21, 5)]


def test_announcement_without_notice_moves_the_vm_when_its_old_port_goes(lab):
    lab.vm(S21, 7, WEB1)                             # gratuitous ARP on a new server
    assert lab.engine.bindings[WEB1].port == 1, "a conflict, not a move"
    lab.apply(lab.engine.port_down(S11, 1, deleted=False, now=0.0))   # the hypervisor's swap
    assert lab.engine.bindings[WEB1].port == 7
    assert lab.reached(S21, 1, PEER, WEB1) == [(S21, 7)]
    assert not any(WEB1 in str(f.match) for f in lab.switches.flows(S11))


def test_migration_outside_the_domain_is_refused():
    domains = build_domains("domains.yaml", {"domains": [
        {"name": "east", "access_switches": ["a1"]},
        {"name": "west", "access_switches": ["a2"], "templates": "west/"}]})
    lab = Lab(domains, {"west": WEST_LIBRARY})
    lab.vm(S11, 1, WEB1)
    with pytest.raises(NotificationError, match="outside VM 00:fa:00:00:00:01's mobility "
                                                "domain 'east'"):
        lab.notify(Notice.MIGRATING, WEB1, server="s21")


def test_template_missing_from_the_domain_library_is_quarantined():
    domains = build_domains("domains.yaml", {"domains": [
        {"name": "east", "access_switches": ["a1"]},
        {"name": "west", "access_switches": ["a2"], "templates": "west/"}]})
    lab = Lab(domains, {"west": WEST_LIBRARY})
    verdict = lab.engine.packet_in(S21, 1, "00:fc:00:00:00:01", b"x", now=0.0)
    assert "not in the library of mobility domain 'west'" in verdict.refusal.reason
    assert lab.engine.packet_in(S11, 1, "00:fc:00:00:00:01", b"x", now=0.0).provisioned is not None


def test_domains_document_errors_say_where():
    with pytest.raises(DomainError, match=r"d.yaml: domains\[1\].access_switches: 'a1' is "
                                          "already in domain 'east'"):
        build_domains("d.yaml", {"domains": [{"name": "east", "access_switches": ["a1"]},
                                             {"name": "west", "access_switches": ["a1"]}]})
    with pytest.raises(DomainError, match="unknown key 'switches'"):
        build_domains("d.yaml", {"domains": [{"name": "x", "switches": ["a1"]}]})


def test_migration_across_access_switches_moves_the_path_in_the_fabric():
    lab = Lab()
    lab.vm(S11, 1, WEB1)
    lab.vm(S11, 2, WEB2)          # stays behind on the source server
    lab.vm(S21, 1, PEER)
    assert lab.reached(S11, 2, WEB2, WEB1) == [(S11, 1)]
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    lab.apply(lab.engine.port_down(S11, 1, now=0.0))      # the VM left its old port
    # Traffic from the old side crosses a1, f1, a2 to the new port: the fabric's
    # entries for the VM (same match, another binding) were replaced, not lost.
    assert lab.reached(S11, 2, WEB2, WEB1) == [(S21, 5)]
    assert lab.reached(S21, 1, PEER, WEB1) == [(S21, 5)]


def test_a_delete_never_cancels_another_owners_add_of_the_same_entry():
    from ryu_apps.core.flow_plan import SwitchChanges
    from ryu_apps.core.flowspec import Output, flow, make_match
    old = flow(1, 4, 50000, make_match(eth_dst=WEB1), 0xD910000000000001, actions=(Output(1),))
    new = flow(1, 4, 50000, make_match(eth_dst=WEB1), 0xD910000000000002, actions=(Output(2),))
    changes = SwitchChanges()
    changes.add(new)
    changes.delete(old)
    assert (changes.adds, changes.deletes) == ([new], [])


def test_the_source_device_releases_only_on_migration_done():
    lab = Lab()
    lab.vm(S11, 1, WEB1)
    lab.vm(S21, 1, PEER)
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    activation = lab.engine.packet_in(S21, 5, WEB1, b"rarp", now=0.0).plan
    done = [m for m in activation.messages if isinstance(m, MigrationDone)]
    assert done and (done[0].source_device, done[0].destination_device) == (A1, A2)
    lab.switches.apply(activation)             # not delivered yet: the source still holds
    assert any(WEB1 in str(f.match) for f in lab.switches.flows(S11))
    assert [b.mac for b in lab.engine.bindings_of_device(A1)] == [WEB1]
    lab.apply(lab.engine.receive(done[0], now=0.0))     # now the source device lets go
    assert not any(WEB1 in str(f.match) for f in lab.switches.flows(S11))
    assert [b.mac for b in lab.engine.bindings_of_device(A1)] == []
    assert {b.mac for b in lab.engine.bindings_of_device(A2)} == {WEB1, PEER}


def test_a_suspended_vm_told_to_migrate_stays_suspended_until_it_arrives(lab):
    lab.notify(Notice.SUSPENDED, WEB1)
    lab.notify(Notice.MIGRATING, WEB1, server="s21")
    assert lab.engine.bindings[WEB1].state is VmState.SUSPENDED
    assert not lab.engine.bindings[WEB1].state.forwards


API_LIBRARY = build_library([("west.yaml", {"templates": [
    _template(250, "web", 100), _template(251, "api", 100)]})])


def test_a_restart_restores_a_vm_with_the_template_of_its_domains_library():
    domains = build_domains("domains.yaml", {"domains": [
        {"name": "east", "access_switches": ["a1"]},
        {"name": "west", "access_switches": ["a2"], "templates": "west/"}]})
    lab = Lab(domains, {"west": API_LIBRARY})
    api = "00:fb:00:00:00:05"   # template 251: only in the west library
    lab.vm(S21, 3, api)
    assert lab.engine.bindings[api].template_name == "api"
    again = ProvisioningEngine(LIBRARY, PrefixScheme(16), domains, {"west": API_LIBRARY})
    switches = ((F1, Role.FABRIC, "f1"), (A1, Role.ACCESS, "a1"), (A2, Role.ACCESS, "a2"),
                (S11, Role.SERVER, "s11"), (S21, Role.SERVER, "s21"))
    for dpid, role, name in switches:
        again.switch_up(dpid, role, name, lab.switches.entries(dpid), now=5.0)
    for a, b in (((A1, 1), (F1, 1)), ((A2, 1), (F1, 2)), ((S11, UPLINK), (A1, 2)),
                 ((S21, UPLINK), (A2, 2))):
        again.link_seen(PortRef(*a), PortRef(*b), now=5.0)
    restored = again.bindings[api]
    assert (restored.template_id, restored.template_name, restored.dpid, restored.port) == \
        (251, "api", S21, 3)
    for dpid, role, name in switches:   # each switch reconnects: it holds what is desired
        plan = again.switch_up(dpid, role, name, lab.switches.entries(dpid), now=6.0)
        assert plan.flow_count() == 0, hex(dpid)


def test_a_released_migration_source_frees_its_old_port():
    lab = Lab()
    lab.vm(S11, 1, WEB1)
    lab.vm(S21, 1, PEER)
    lab.apply(lab.engine.vm_attached(S11, 1, WEB1, now=0.0).plan)
    lab.notify(Notice.MIGRATING, WEB1, server="s21")
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    lab.vm(S21, 5, WEB1)   # arrives; MigrationDone releases the source
    assert lab.engine.outgoing == {} and not lab.engine.hosts_vm(S11, 1)
    plan = lab.apply(lab.engine.port_down(S11, 1, now=1.0))
    assert not any("deprovisioned" in note for note in plan.notes)
    assert lab.engine.history[WEB1] is VmState.ACTIVE
    assert lab.engine.bindings[WEB1].dpid == S21
    assert lab.reached(S21, 1, PEER, WEB1) == [(S21, 5)]


def test_a_suspended_vm_receives_nothing_at_its_pre_provisioned_port_either(lab):
    """Found by the oracle: a VM suspended while its hypervisor had created its
    destination port still received frames there (both-ways delivery)."""
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)   # hypervisor created the port
    assert lab.reached(S21, 1, PEER, WEB1) == [(S11, 1), (S21, 5)]
    lab.notify(Notice.SUSPENDED, WEB1)
    assert lab.reached(S21, 1, PEER, WEB1) == []
    assert WEB1 not in lab.engine.incoming
    lab.notify(Notice.RESUMED, WEB1)
    assert lab.reached(S21, 1, PEER, WEB1) == [(S11, 1)]
