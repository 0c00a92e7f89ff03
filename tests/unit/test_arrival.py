"""A notice pre-provisions without OVSDB; a VM lost without announcement is found by the
controller's probe. Each event runs in the engine lab of test_engine_invariants: fake
switches, the oracle and the invariants checked after every event."""

from __future__ import annotations

import pytest

from ryu_apps.core.binding import VmState
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.identity import PROBE_MAC, arp_probe
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.arrival_notice import NOTICE_HOLD_SECONDS
from ryu_apps.core.probe_search import PROBE_BURST, PROBE_DELAYS
from tests.support.fake_switches import Packet
from tests.unit.test_engine_invariants import IPS, NAMES, S11, S21, UPLINK, World

WEB1, WEB2, WEB3 = "00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fa:00:00:00:03"
NEW_PORT = 5


class Lab(World):
    """The invariants' world, with VMs bound and servers that report their ports."""

    def bind(self, dpid: int, port: int, mac: str) -> None:
        self.run(lambda e: e.packet_in(dpid, port, mac, b"frame", now=self.now))
        self.run(lambda e: e.packet_in(dpid, port, mac, b"frame", sender_ip=IPS[mac],
                                       now=self.now))

    def event(self, event):
        """Run an event; its plan (or verdict)."""
        result = []
        self.run(lambda e: result.append(event(e)) or result[0])
        return result[0]

    def reached(self, dpid: int, port: int, src: str, dst: str):
        return sorted((d, p) for d, p, _ in self.switches.trace(
            self.engine.fabric, dpid, port,
            Packet(src, dst, eth_type=0x0806, arp_spa=IPS.get(src))))


@pytest.fixture
def lab() -> Lab:
    lab = Lab()
    lab.bind(S11, 1, WEB1)
    lab.bind(S21, 1, WEB2)
    for dpid in (S11, S21):   # what each switch reported when it connected
        lab.engine.ports_seen(dpid, [1, 2, UPLINK])
    return lab


def _notify_migrating(lab: Lab, mac: str, server: int) -> None:
    lab.run(lambda e: e.notify(Notice.MIGRATING, mac, server=NAMES[server], now=lab.now))


def _flows_of(lab: Lab, binding_id: int):
    owners = [(decode_cookie(f.cookie), f) for f in lab.switches.all_flows()]
    return [f for owner, f in owners if owner is not None and owner.owner_id == binding_id
            and owner.kind in (CookieKind.BINDING, CookieKind.MIGRATION)]


# -- a notice without OVSDB -----------------------------------------------------------------
def test_a_notice_alone_pre_provisions_the_port_that_came_up_and_frames_flow_at_once(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))   # the hypervisor's new port
    _notify_migrating(lab, WEB1, S21)
    incoming = lab.engine.incoming[WEB1]
    assert (incoming.dpid, incoming.port, incoming.state) == \
        (S21, NEW_PORT, VmState.PRE_PROVISIONED)
    # frames for the VM reach its old port and the new one; what it sends at the new one
    # is forwarded at once, a copy going to the controller
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S11, 1), (S21, NEW_PORT)]
    assert lab.reached(S21, NEW_PORT, WEB1, WEB2) == [(S21, 1), (S21, OFPP_CONTROLLER)]
    lab.run(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"rarp", now=lab.now))
    binding = lab.engine.bindings[WEB1]
    assert (binding.dpid, binding.port, binding.ip) == (S21, NEW_PORT, IPS[WEB1])
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S21, NEW_PORT)]


def test_a_notice_alone_picks_the_only_free_port_and_a_port_coming_up_later_takes_over(lab):
    _notify_migrating(lab, WEB1, S21)
    assert lab.engine.incoming[WEB1].port == 2     # port 1 is WEB2's, 10 the uplink
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    assert lab.engine.incoming[WEB1].port == NEW_PORT
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S11, 1), (S21, NEW_PORT)]


def test_a_frame_with_the_vms_mac_from_a_port_bound_to_another_vm_is_refused(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    _notify_migrating(lab, WEB1, S21)
    assert lab.reached(S21, 1, WEB1, WEB2) == [(S21, OFPP_CONTROLLER)]   # not forwarded
    verdict = lab.event(lambda e: e.packet_in(S21, 1, WEB1, b"spoof", now=lab.now))
    assert verdict.refusal is not None and "bound to VM" in verdict.refusal.reason
    assert lab.engine.bindings[WEB1].dpid == S11
    assert lab.engine.incoming[WEB1].port == NEW_PORT
    assert lab.reached(S21, 1, WEB1, WEB2) == []   # now dropped at the port


def test_a_quarantined_port_is_never_pre_provisioned(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    lab.run(lambda e: e.packet_in(S21, NEW_PORT, "01:00:5e:00:00:01", b"bad", now=lab.now))
    _notify_migrating(lab, WEB1, S21)
    assert lab.engine.incoming[WEB1].port == 2


def test_a_notice_only_pre_provisioning_expires_leaving_no_flow(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    _notify_migrating(lab, WEB1, S21)
    pending = lab.engine.incoming[WEB1].binding_id
    assert _flows_of(lab, pending)
    lab.now += NOTICE_HOLD_SECONDS - 1
    lab.run(lambda e: e.tick(lab.now))
    assert WEB1 in lab.engine.incoming
    lab.now += 2
    lab.run(lambda e: e.tick(lab.now))
    assert WEB1 not in lab.engine.incoming
    assert not _flows_of(lab, pending)
    assert lab.engine.bindings[WEB1].state is VmState.ACTIVE
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S11, 1)]
    # the notice no longer makes its frames there believed
    verdict = lab.event(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"x", now=lab.now))
    assert verdict.refusal is not None and lab.engine.bindings[WEB1].dpid == S11


def test_an_ovsdb_row_after_the_notice_narrows_it_to_its_port(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    _notify_migrating(lab, WEB1, S21)
    lab.run(lambda e: e.vm_attached(S21, 2, WEB1, now=lab.now).plan)
    assert lab.engine.incoming[WEB1].port == 2
    lab.now += NOTICE_HOLD_SECONDS + 1
    lab.run(lambda e: e.tick(lab.now))
    assert lab.engine.incoming[WEB1].port == 2, "the hypervisor's word does not expire"


# -- the controller's probe ----------------------------------------------------------------
def _probes(plan):
    return [(p.dpid, p.out_port, p.data) for p in plan.packet_outs if p.out_port is not None]


def test_a_vm_whose_port_went_away_is_probed_at_a_port_coming_up_and_found(lab):
    plan = lab.event(lambda e: e.port_down(S11, 1, now=lab.now))
    assert WEB1 not in lab.engine.bindings and not _probes(plan)
    lab.now += 0.5
    plan = lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    assert _probes(plan) == [(S21, NEW_PORT, arp_probe(IPS[WEB1], WEB1))]
    lab.run(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"reply", sender_ip=IPS[WEB1],
                                  eth_dst=PROBE_MAC, now=lab.now))
    binding = lab.engine.bindings[WEB1]
    assert (binding.dpid, binding.port, binding.ip) == (S21, NEW_PORT, IPS[WEB1])
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S21, NEW_PORT)]


def test_a_port_that_came_up_just_before_the_old_one_went_is_probed_at_once(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    lab.now += 0.2
    plan = lab.event(lambda e: e.port_down(S11, 1, now=lab.now))
    assert _probes(plan) == [(S21, NEW_PORT, arp_probe(IPS[WEB1], WEB1))]


def test_a_probe_answer_from_another_mac_or_address_activates_nothing(lab):
    lab.event(lambda e: e.port_down(S11, 1, now=lab.now))
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    verdict = lab.event(lambda e: e.packet_in(S21, NEW_PORT, WEB3, b"reply",
                                              sender_ip=IPS[WEB1], eth_dst=PROBE_MAC,
                                              now=lab.now))
    assert WEB1 not in lab.engine.bindings
    assert lab.engine.bindings[WEB3].port == NEW_PORT   # WEB3 is a VM of its own there
    lab.event(lambda e: e.port_up(S21, 7, now=lab.now))
    verdict = lab.event(lambda e: e.packet_in(S21, 7, WEB1, b"reply", sender_ip="10.0.100.9",
                                              eth_dst=PROBE_MAC, now=lab.now))
    assert verdict.provisioned is None and "not 10.0.100.1" in verdict.plan.warnings[0]
    assert WEB1 not in lab.engine.bindings


def test_probes_back_off_per_port_and_stay_under_the_rate_cap(lab):
    lab.bind(S11, 2, WEB3)
    ports = range(11, 11 + int(PROBE_BURST) + 10)   # more new ports than the burst
    for port in ports:
        lab.event(lambda e, port=port: e.port_up(S21, port, now=lab.now))
    sent = {}
    plans = [lab.event(lambda e: e.port_down(S11, 1, now=lab.now)),
             lab.event(lambda e: e.port_down(S11, 2, now=lab.now))]
    for _ in range(30):
        lab.now += 0.5
        plans.append(lab.event(lambda e: e.tick(lab.now)))
    for plan in plans:
        probes = _probes(plan)
        assert len(probes) <= PROBE_BURST
        for _dpid, port, data in probes:
            sent[(port, data)] = sent.get((port, data), 0) + 1
    assert len(_probes(plans[0])) == PROBE_BURST          # the burst, then the rate
    assert len(sent) == 2 * len(ports)                    # every candidate of both VMs
    assert set(sent.values()) == {len(PROBE_DELAYS)}      # each probed a bounded number
    lab.now += 20
    assert not _probes(lab.event(lambda e: e.tick(lab.now)))   # the searches are over


def test_a_notice_with_no_free_port_is_forgotten_when_it_expires(lab):
    lab.bind(S21, 2, WEB3)                          # s21 has no free VM port left
    _notify_migrating(lab, WEB1, S21)
    assert WEB1 not in lab.engine.incoming
    lab.now += NOTICE_HOLD_SECONDS + 1
    lab.run(lambda e: e.tick(lab.now))
    assert lab.engine.bindings[WEB1].state is VmState.ACTIVE
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    assert WEB1 not in lab.engine.incoming, "an expired notice pre-provisions nothing"
    verdict = lab.event(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"x", now=lab.now))
    assert verdict.refusal is not None and lab.engine.bindings[WEB1].dpid == S11


def test_a_search_ends_when_the_vm_speaks_anywhere(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    plan = lab.event(lambda e: e.port_down(S11, 1, now=lab.now))
    assert _probes(plan)
    lab.run(lambda e: e.packet_in(S21, 2, WEB1, b"garp", sender_ip=IPS[WEB1], now=lab.now))
    assert lab.engine.bindings[WEB1].port == 2
    lab.now += 1.0
    assert not _probes(lab.event(lambda e: e.tick(lab.now)))


def test_once_the_vm_arrived_a_new_port_on_its_server_pre_provisions_nothing(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    _notify_migrating(lab, WEB1, S21)
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))   # its link came up
    assert lab.engine.bindings[WEB1].port == NEW_PORT
    lab.event(lambda e: e.port_up(S21, 7, now=lab.now))
    assert WEB1 not in lab.engine.incoming


def test_with_a_notice_the_vms_first_frame_at_another_free_port_is_provisioned_and_resent(lab):
    lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))
    _notify_migrating(lab, WEB1, S21)
    assert lab.engine.incoming[WEB1].port == NEW_PORT
    verdict = lab.event(lambda e: e.packet_in(S21, 2, WEB1, b"first", now=lab.now))
    assert (lab.engine.bindings[WEB1].dpid, lab.engine.bindings[WEB1].port) == (S21, 2)
    assert [(p.dpid, p.in_port, p.data) for p in verdict.plan.packet_outs] == \
        [(S21, 2, b"first")]                        # re-injected once its flows are in
    assert WEB1 not in lab.engine.incoming


def test_a_flapping_vm_refused_at_its_new_port_is_found_there_once_its_old_port_goes(lab):
    """A hypervisor's moves in quick succession, no OVSDB, no notice: the VM's RARP
    reaches its new port while its old one still exists. Once the MAC is flapping its
    move is refused there on the VM's word (dropped: a quarantine, no liveness probe);
    when the old port goes away the VM moves there in that event (no search round
    trip), and the refusal keeps none of its frames out of its new port."""
    path = [(S11, 1), (S21, 5), (S11, 6), (S21, 7), (S11, 8)]
    for old, new in zip(path, path[1:]):                  # FLAP_LIMIT accepted moves
        lab.event(lambda e, new=new: e.port_up(*new, now=lab.now))
        lab.run(lambda e, new=new: e.packet_in(*new, WEB1, b"rarp", now=lab.now))
        lab.event(lambda e, old=old: e.port_down(*old, now=lab.now))
        binding = lab.engine.bindings[WEB1]
        assert (binding.dpid, binding.port) == new
        lab.now += 1.5
    new = (S21, 12)
    lab.event(lambda e: e.port_up(*new, now=lab.now))
    verdict = lab.event(lambda e: e.packet_in(*new, WEB1, b"rarp", now=lab.now))
    assert "flapping" in verdict.refusal.reason and not _probes(verdict.plan)
    plan = lab.event(lambda e: e.port_down(*path[-1], now=lab.now))   # the old port deleted
    binding = lab.engine.bindings[WEB1]
    assert (binding.dpid, binding.port, binding.ip) == (*new, IPS[WEB1])
    assert not _probes(plan), "moved in the old port's event: no search"
    assert lab.reached(*new, WEB1, WEB2) == [(S21, 1)], "its frames there are not dropped"
    assert lab.reached(S21, 1, WEB2, WEB1) == [new]


def test_a_lost_vm_speaking_first_at_its_new_port_keeps_its_address(lab):
    """No OVSDB, no notice, a hypervisor's order: the destination port is added with its
    link down, the old port's link goes down, and the VM's RARP (no address in it)
    reaches the new port before that port's link-up is reported. It is provisioned there
    with the address its search probes for, so its IPv4 traffic is forwarded at once
    instead of waiting for a frame that teaches the address again."""
    lab.event(lambda e: e.port_down(S21, NEW_PORT, deleted=False, now=lab.now))   # added
    lab.now += 0.2
    lab.event(lambda e: e.port_down(S11, 1, deleted=False, now=lab.now))
    assert WEB1 not in lab.engine.bindings
    lab.run(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"rarp", now=lab.now))
    binding = lab.engine.bindings[WEB1]
    assert (binding.dpid, binding.port, binding.ip) == (S21, NEW_PORT, IPS[WEB1])
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S21, NEW_PORT)]
    lab.now += 1.0
    assert not _probes(lab.event(lambda e: e.tick(lab.now))), "the search is over"


def test_a_lost_vms_mac_gets_no_address_at_a_port_up_for_long_or_with_another_address(lab):
    lab.event(lambda e: e.port_down(S21, NEW_PORT, deleted=False, now=lab.now))
    lab.now += 0.2
    lab.event(lambda e: e.port_down(S11, 1, deleted=False, now=lab.now))
    lab.run(lambda e: e.packet_in(S21, 2, WEB1, b"rarp", now=lab.now))   # up since connect
    binding = lab.engine.bindings[WEB1]
    assert (binding.dpid, binding.port, binding.ip) == (S21, 2, None)
    lab.event(lambda e: e.port_down(S21, 2, deleted=False, now=lab.now))   # lost again
    other = "10.0.100.99"
    lab.run(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"arp", sender_ip=other,
                                  now=lab.now))
    assert lab.engine.bindings[WEB1].ip == other        # the frame's own address


def test_a_rarp_before_both_port_statuses_moves_the_vm_when_its_old_port_goes(lab):
    """No OVSDB, no notice, the order seen on a busy switch: the destination port is
    added with its link down, the VM's RARP reaches it while its old port still exists
    (a conflict, held), and the old port's link-down arrives before the new port's
    link-up is reported. The RARP proved the new port's link up: the held move is
    accepted in that one event, with the VM's address (not a second search round)."""
    lab.event(lambda e: e.port_down(S21, NEW_PORT, deleted=False, now=lab.now))   # added
    lab.now += 0.2
    verdict = lab.event(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"rarp", now=lab.now))
    assert verdict.provisioned is None and "conflict" in verdict.refusal.reason
    plan = lab.event(lambda e: e.port_down(S11, 1, deleted=False, now=lab.now))
    binding = lab.engine.bindings[WEB1]
    assert (binding.dpid, binding.port, binding.ip) == (S21, NEW_PORT, IPS[WEB1])
    assert not _probes(plan), "found: no search"
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S21, NEW_PORT)]


def test_a_silent_vms_new_port_is_probed_when_its_link_up_comes_after_the_loss(lab):
    """The destination port was added (link down) just before the old port went: it is
    probed at once (a busy switch reports the link-up of a guest's new port late), and
    again when its link-up comes, that first probe not counted against it; once more
    the link-up re-arms nothing."""
    probe = (S21, NEW_PORT, arp_probe(IPS[WEB1], WEB1))
    lab.event(lambda e: e.port_down(S21, NEW_PORT, deleted=False, now=lab.now))   # added
    lab.now += 0.2
    plan = lab.event(lambda e: e.port_down(S11, 1, deleted=False, now=lab.now))
    assert _probes(plan) == [probe]
    lab.now += 0.01
    assert _probes(lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now))) == [probe]
    assert not _probes(lab.event(lambda e: e.port_up(S21, NEW_PORT, now=lab.now)))
    lab.run(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"reply", sender_ip=IPS[WEB1],
                                  eth_dst=PROBE_MAC, now=lab.now))
    binding = lab.engine.bindings[WEB1]
    assert (binding.dpid, binding.port, binding.ip) == (S21, NEW_PORT, IPS[WEB1])


# -- a move's plan is written before the next queued event -----------------------------------
def test_a_packets_only_moves_plan_is_urgent_and_delivers_at_once_in_both_orders(lab):
    """No OVSDB, no notice. Whether the VM's first frame at its new port comes before its
    old port's link-down (a conflict, then the move) or after it (a lost VM, then found),
    the plan that moves it is urgent (the app writes it before the next queued event) and
    alone makes the VM reachable at its new port; the conflict's and the loss's plans,
    and a new VM's provisioning, are not urgent. The oracle checks every step."""
    lab.event(lambda e: e.port_down(S21, NEW_PORT, deleted=False, now=lab.now))   # added
    lab.now += 0.2
    held = lab.event(lambda e: e.packet_in(S21, NEW_PORT, WEB1, b"rarp", now=lab.now))
    assert held.provisioned is None and not held.plan.urgent
    moved = lab.event(lambda e: e.port_down(S11, 1, deleted=False, now=lab.now))
    assert moved.urgent and lab.reached(S21, 1, WEB2, WEB1) == [(S21, NEW_PORT)]
    lab.now += 2.0
    lab.event(lambda e: e.port_down(S11, 6, deleted=False, now=lab.now))   # added
    lab.now += 0.2
    lost = lab.event(lambda e: e.port_down(S21, NEW_PORT, deleted=False, now=lab.now))
    assert WEB1 not in lab.engine.bindings and not lost.urgent
    found = lab.event(lambda e: e.packet_in(S11, 6, WEB1, b"rarp", now=lab.now))
    assert found.provisioned is not None and found.plan.urgent
    assert lab.engine.bindings[WEB1].ip == IPS[WEB1]
    assert lab.reached(S21, 1, WEB2, WEB1) == [(S11, 6)]
    fresh = lab.event(lambda e: e.packet_in(S21, 2, WEB3, b"frame", now=lab.now))
    assert fresh.provisioned is not None and not fresh.plan.urgent
