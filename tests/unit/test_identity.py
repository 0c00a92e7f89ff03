"""A VM's identity: the hypervisor's word where it speaks, guarded moves where it does not.

The attacks of issue 11 on fake switches: a guest on another server that sends
one frame with a victim's MAC must not take over the victim's binding, its
traffic or its IP; a guest that changes its MAC is refused where OVSDB names
its port's VM.
"""

import pytest

from ryu_apps.core.binding import Detection
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.domains import build_domains
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.identity import FLAP_LIMIT, MOVE_HOLD_SECONDS, PROBE_MAC, IdentityPolicy
from ryu_apps.core.pipeline import Priority, Table
from tests.support.fake_switches import FakeSwitches, Packet
from tests.unit.test_engine import LIBRARY, LINKS, S11, S12, S21, SWITCHES

VICTIM, PEER, OTHER = "00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fa:00:00:00:05"
VICTIM_IP = "10.0.100.1"


class Lab:
    """An engine on fake switches; every event carries its time."""

    def __init__(self, identity=IdentityPolicy.AUTO, domains=None):
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16), domains,
                                         identity=identity)
        self.switches = FakeSwitches()
        self.now = 1000.0
        #: Every plan applied, those of device messages included.
        self.plans = []
        for dpid, role, name in SWITCHES:
            self.apply(self.engine.switch_up(dpid, role, name, [], now=self.now))
        for a, b in LINKS:
            self.apply(self.engine.link_seen(PortRef(*a), PortRef(*b), now=self.now))

    def apply(self, plan):
        self.plans.append(plan)
        self.switches.apply(plan)
        self.engine.confirm(plan.confirms)
        for message in plan.messages:
            self.apply(self.engine.receive(message, now=self.now))
        return plan

    def frame(self, dpid, port, mac, ip=None, eth_dst=None):
        verdict = self.engine.packet_in(dpid, port, mac, b"frame", now=self.now,
                                        sender_ip=ip, eth_dst=eth_dst)
        self.apply(verdict.plan)
        return verdict

    def later(self, seconds):
        self.now += seconds
        return self.apply(self.engine.tick(self.now))

    def where(self, mac):
        binding = self.engine.bindings.get(mac)
        return None if binding is None else (binding.dpid, binding.port)

    def reached(self, src_dpid, src_port, src, dst):
        return {(d, p) for d, p, _ in self.switches.trace(
            self.engine.fabric, src_dpid, src_port, Packet(src, dst))}


def victim_and_peer() -> Lab:
    """Identity policy ``packets``: the victim bound on s11 port 1, a peer on s21 port 1."""
    lab = Lab(IdentityPolicy.PACKETS)
    lab.frame(S11, 1, VICTIM, ip=VICTIM_IP)
    lab.frame(S21, 1, PEER, ip="10.0.100.2")
    return lab


@pytest.fixture
def lab():
    return victim_and_peer()


# -- packets policy: a frame is a claim, not a proof ---------------------------------
def test_a_spoofed_frame_from_another_server_moves_nothing(lab):
    verdict = lab.frame(S12, 4, VICTIM, ip=VICTIM_IP)        # the attacker's GARP
    assert lab.where(VICTIM) == (S11, 1)
    assert "conflict, not a move" in verdict.refusal.reason
    assert lab.reached(S21, 1, PEER, VICTIM) == {(S11, 1)}, "the victim keeps its traffic"
    # the attacker's frames with the victim's MAC are dropped at its port
    assert lab.reached(S12, 4, VICTIM, PEER) == set()


def test_the_old_location_is_probed_and_a_live_vm_keeps_its_binding(lab):
    plan = lab.frame(S12, 4, VICTIM).plan
    probes = [out for out in plan.packet_outs if out.out_port == 1 and out.dpid == S11]
    assert len(probes) == 1 and probes[0].data[6:12] == bytes.fromhex("0e00d9000002")
    assert probes[0].data[-22:-18] == bytes([10, 0, 100, 1]), "asks for the victim's IP"
    # the victim's answer (to PROBE_MAC) comes to the controller, nothing else of its does
    answer = lab.switches.trace(lab.engine.fabric, S11, 1, Packet(VICTIM, PROBE_MAC, 0x0806))
    assert [(d, p) for d, p, _ in answer] == [(S11, OFPP_CONTROLLER)]
    alive = lab.frame(S11, 1, VICTIM, eth_dst=PROBE_MAC)
    assert any("was spoofed" in w for w in alive.plan.warnings)
    lab.later(MOVE_HOLD_SECONDS * 3)
    assert lab.where(VICTIM) == (S11, 1)
    assert not [f for f in lab.switches.all_flows()
                if decode_cookie(f.cookie).kind is CookieKind.LIVENESS]


def test_a_vm_silent_at_its_old_port_moves_after_the_hold(lab):
    lab.frame(S12, 4, VICTIM)
    lab.later(MOVE_HOLD_SECONDS / 2)
    assert lab.where(VICTIM) == (S11, 1)
    plan = lab.later(MOVE_HOLD_SECONDS)
    assert lab.where(VICTIM) == (S12, 4)
    assert any("silent" in w for w in plan.warnings)
    assert lab.reached(S21, 1, PEER, VICTIM) == {(S12, 4)}
    assert lab.engine.bindings[VICTIM].seen_ip == VICTIM_IP


def test_without_an_address_to_probe_only_the_old_ports_loss_moves_it():
    lab = Lab(IdentityPolicy.PACKETS)
    lab.frame(S11, 1, VICTIM)                                  # no IP seen
    plan = lab.frame(S12, 4, VICTIM).plan
    assert not plan.packet_outs
    lab.later(MOVE_HOLD_SECONDS * 5)
    assert lab.where(VICTIM) == (S11, 1)
    lab.apply(lab.engine.port_down(S11, 1, now=lab.now))
    assert lab.where(VICTIM) == (S12, 4)


def test_the_old_port_going_down_accepts_the_waiting_move_at_once(lab):
    lab.frame(S21, 7, VICTIM)
    lab.apply(lab.engine.port_down(S11, 1, deleted=False, now=lab.now))
    assert lab.where(VICTIM) == (S21, 7)
    assert lab.reached(S21, 1, PEER, VICTIM) == {(S21, 7)}
    assert lab.reached(S21, 7, VICTIM, PEER) == {(S21, 1)}, "its drop at the new port lifted"


def test_a_migration_notice_naming_the_server_makes_its_first_frame_there_a_move(lab):
    lab.apply(lab.engine.notify(Notice.MIGRATING, VICTIM, server="s21", now=lab.now).plan)
    lab.frame(S21, 7, VICTIM)
    assert lab.where(VICTIM) == (S21, 7)
    assert lab.reached(S21, 1, PEER, VICTIM) == {(S21, 7)}


def test_a_notice_naming_another_server_does_not_help_a_spoofer(lab):
    lab.apply(lab.engine.notify(Notice.MIGRATING, VICTIM, server="s21", now=lab.now).plan)
    lab.frame(S12, 4, VICTIM)
    assert lab.where(VICTIM) == (S11, 1)


def test_a_mac_that_keeps_moving_is_flapping_and_its_moves_are_refused():
    lab = Lab(IdentityPolicy.PACKETS)
    ports = [(S11, 1), (S12, 4), (S21, 7), (S11, 2), (S12, 5)]
    lab.frame(*ports[0], VICTIM)
    warnings = []
    for previous, (dpid, port) in zip(ports, ports[1:]):       # FLAP_LIMIT accepted moves
        lab.frame(dpid, port, VICTIM)
        warnings += lab.apply(lab.engine.port_down(*previous, now=lab.now)).warnings
        assert lab.where(VICTIM) == (dpid, port)
        lab.now += 1
    assert len(ports) - 1 == FLAP_LIMIT
    assert [w for w in warnings if "is flapping" in w], warnings
    verdict = lab.frame(S21, 9, VICTIM)
    assert "flapping" in verdict.refusal.reason and not verdict.plan.packet_outs
    lab.now += 5 * MOVE_HOLD_SECONDS
    lab.apply(lab.engine.tick(lab.now))
    assert lab.where(VICTIM) == ports[-1], "no move on the liveness hold while it flaps"
    lab.apply(lab.engine.port_down(*ports[-1], now=lab.now))
    assert lab.where(VICTIM) == (S21, 9), "its old port's loss still moves it"


def test_a_bound_ip_does_not_follow_a_mac_that_did_not_move(lab):
    lab.frame(S12, 4, VICTIM, ip="10.0.100.66")
    assert lab.engine.bindings[VICTIM].seen_ip == VICTIM_IP


# -- auto and ovsdb policies: the hypervisor's word ------------------------------------
def test_auto_a_mac_the_hypervisor_places_elsewhere_is_refused_without_a_probe():
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    verdict = lab.frame(S12, 4, VICTIM)
    assert "places VM" in verdict.refusal.reason and not verdict.plan.packet_outs
    lab.later(MOVE_HOLD_SECONDS * 5)
    assert lab.where(VICTIM) == (S11, 1)


def test_auto_a_guest_changing_its_mac_on_an_ovsdb_port_is_refused():
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    verdict = lab.frame(S11, 1, OTHER)
    assert "already bound to VM 00:fa:00:00:00:01" in verdict.refusal.reason
    assert lab.where(OTHER) is None


def test_auto_ports_ovsdb_does_not_know_follow_the_packets_rules():
    lab = Lab(IdentityPolicy.AUTO)
    lab.frame(S11, 1, VICTIM, ip=VICTIM_IP)
    assert lab.where(VICTIM) == (S11, 1)
    lab.frame(S12, 4, VICTIM)
    assert lab.where(VICTIM) == (S11, 1)


def test_ovsdb_policy_provisions_only_where_ovsdb_puts_a_vm():
    lab = Lab(IdentityPolicy.OVSDB)
    verdict = lab.frame(S11, 1, VICTIM)
    assert "no OVSDB row names a VM" in verdict.refusal.reason
    assert lab.where(VICTIM) is None
    # the row arrives (after the frame, as it may): provisioned, its quarantine lifted
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    assert lab.where(VICTIM) == (S11, 1)
    assert not [f for f in lab.switches.flows(S11) if f.priority == Priority.QUARANTINE
                and dict(f.match).get("in_port") == 1]


def test_ovsdb_moves_only_when_the_hypervisor_moves_the_vm():
    lab = Lab(IdentityPolicy.OVSDB)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    lab.frame(S12, 4, VICTIM)
    lab.apply(lab.engine.port_down(S11, 1, now=lab.now))
    assert lab.where(VICTIM) is None, "no OVSDB row names it on s12 port 4"
    lab.apply(lab.engine.vm_attached(S12, 4, VICTIM, now=lab.now).plan)
    assert lab.where(VICTIM) == (S12, 4)


def test_the_hypervisor_names_the_vm_of_a_port_a_spoofer_took_first():
    lab = Lab(IdentityPolicy.AUTO)
    lab.frame(S11, 1, OTHER)                                    # provisioned by its packets
    plan = lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    assert lab.where(OTHER) is None and lab.where(VICTIM) == (S11, 1)
    assert lab.engine.bindings[VICTIM].detected_by is Detection.OVSDB
    assert any("hypervisor" in n for n in plan.notes)


def test_rows_with_one_mac_and_different_iface_ids_are_reported():
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now, iface_id="vm-a").plan)
    verdict = lab.engine.vm_attached(S12, 4, VICTIM, now=lab.now, iface_id="vm-b")
    lab.apply(verdict.plan)
    assert any("different iface-ids" in w for w in verdict.plan.warnings)


def test_one_iface_id_on_a_new_port_is_a_migration():
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now, iface_id="vm-a").plan)
    lab.apply(lab.engine.vm_attached(S21, 3, VICTIM, now=lab.now, iface_id="vm-a").plan)
    assert (lab.engine.incoming[VICTIM].dpid, lab.engine.incoming[VICTIM].port) == (S21, 3)


def test_each_mobility_domain_has_its_own_identity_policy():
    domains = build_domains("domains.yaml", {"domains": [
        {"name": "lab", "access_switches": ["a1"], "identity": "packets"},
        {"name": "prod", "access_switches": ["a2"], "identity": "ovsdb"}]})
    lab = Lab(IdentityPolicy.AUTO, domains)
    assert lab.engine.policy_of(S11) is IdentityPolicy.PACKETS
    assert lab.engine.policy_of(S21) is IdentityPolicy.OVSDB
    lab.frame(S11, 1, VICTIM)
    lab.frame(S21, 1, PEER)
    assert lab.where(VICTIM) == (S11, 1) and lab.where(PEER) is None


def test_an_unknown_identity_policy_in_a_domains_file_is_refused_with_its_place():
    from ryu_apps.core.domains import DomainError
    with pytest.raises(DomainError, match=r"domains\[0\]\.identity: unknown identity policy "
                                          r"'hypervisor' \(expected one of: ovsdb, packets, auto"):
        build_domains("domains.yaml", {"domains": [
            {"name": "x", "access_switches": ["a1"], "identity": "hypervisor"}]})


def test_liveness_answers_reach_the_controller_only_while_a_probe_is_out(lab):
    before = [f for f in lab.switches.flows(S11) if f.priority == Priority.LIVENESS_REPLY]
    assert before == []
    lab.frame(S12, 4, VICTIM)
    during = [f for f in lab.switches.flows(S11) if f.priority == Priority.LIVENESS_REPLY]
    assert len(during) == 1 and during[0].table_id == Table.CLASSIFY
    lab.later(MOVE_HOLD_SECONDS * 2)
    assert not [f for f in lab.switches.all_flows() if f.priority == Priority.LIVENESS_REPLY]


def test_the_security_view_shows_conflicts_and_refused_links(lab):
    from ryu_apps.rest.views import security_view
    lab.frame(S12, 4, VICTIM)
    lab.apply(lab.engine.link_seen(PortRef(S11, 5), PortRef(S11, 6), now=lab.now))
    view = security_view(lab.engine, {"accepted": 3})
    assert view["identity_policy"] == "packets"
    assert view["moves"]["conflicts"] == 1
    assert view["move_conflicts_waiting"] == [
        {"mac": VICTIM, "switch": f"{S12:016x}", "port": 4, "since": lab.now, "probed": True}]
    assert view["links_refused"] == {"self-link": 1}
    assert view["lldp_probes"] == {"accepted": 3}


def test_rows_on_switches_this_controller_does_not_manage_anchor_nothing():
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(0x9999, 4, VICTIM, now=lab.now).plan)   # another's bridge
    lab.frame(S11, 1, VICTIM)
    assert lab.where(VICTIM) == (S11, 1)


def test_a_frame_refused_for_the_hypervisors_word_moves_when_that_row_goes():
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    lab.frame(S12, 4, VICTIM)                     # re-cabled before OVSDB said so
    assert lab.where(VICTIM) == (S11, 1)
    lab.apply(lab.engine.vm_detached(S11, 1, VICTIM, now=lab.now))
    assert lab.where(VICTIM) == (S12, 4)
    assert not [f for f in lab.switches.flows(S12) if f.priority == Priority.QUARANTINE]


def test_a_frame_before_the_hypervisors_row_does_not_block_the_migrated_vm():
    """The VM speaks at its new port before OVSDB's row for that port is read (a slow
    watcher): refused there then, but the row makes the port the VM's, and once the
    old port goes its frames must flow (a quarantine left behind lost every reply)."""
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    lab.frame(S11, 1, VICTIM, ip=VICTIM_IP)
    lab.frame(S21, 1, PEER, ip="10.0.100.2")
    assert lab.frame(S21, 3, VICTIM).refusal is not None
    lab.apply(lab.engine.vm_attached(S21, 3, VICTIM, now=lab.now).plan)
    lab.apply(lab.engine.port_down(S11, 1, now=lab.now))
    lab.apply(lab.engine.vm_detached(S11, 1, VICTIM, now=lab.now))
    assert lab.where(VICTIM) == (S21, 3)
    assert lab.reached(S21, 3, VICTIM, PEER) == {(S21, 1)}, "its replies are delivered"
    assert lab.reached(S21, 1, PEER, VICTIM) == {(S21, 3)}
    assert not [f for f in lab.switches.flows(S21) if f.priority == Priority.QUARANTINE]


def test_a_move_accepted_when_the_old_port_goes_keeps_the_vms_address(lab):
    lab.frame(S21, 7, VICTIM)                                 # its RARP: no address
    lab.apply(lab.engine.port_down(S11, 1, now=lab.now))     # the old port deleted
    assert lab.where(VICTIM) == (S21, 7)
    binding = lab.engine.bindings[VICTIM]
    assert (binding.ip or binding.seen_ip) == VICTIM_IP, "the next move can probe it"
