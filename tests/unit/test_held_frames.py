"""A frame refused while its VM's move awaits evidence is held, and re-sent if believed.

A migrated VM's first frame at its new port can beat the evidence of the move
(its OVSDB row, its old port's loss, a notice): it is refused then, as a
spoofer's would be. The refusal keeps the frame a short while; when the move
is accepted (or the row pre-provisions the port) the frame goes on, so the
VM's announcement is not lost. A spoofer's frame never goes out.
"""

import pytest

from ryu_apps.core.identity import MOVE_HOLD_SECONDS, PROBE_MAC, IdentityPolicy
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.pipeline import Priority
from ryu_apps.core.quarantine import (HELD_FRAME_BYTES, HELD_FRAME_SECONDS, HELD_FRAMES_MAX,
                                      Quarantine, Refusal)
from tests.unit.test_engine import S11, S12, S21
from tests.unit.test_identity import OTHER, VICTIM, VICTIM_IP, Lab, victim_and_peer


@pytest.fixture
def lab():
    return victim_and_peer()


def _resent(plan, dpid, port, data):
    """Whether the plan re-injects ``data`` at (dpid, port) after its flows."""
    return any((out.dpid, out.in_port, out.data, out.out_port) == (dpid, port, data, None)
               for out in plan.packet_outs)


def _held_frame(lab, dpid, port, mac, data):
    verdict = lab.engine.packet_in(dpid, port, mac, data, now=lab.now, eth_dst=None,
                                   sender_ip=None)
    lab.apply(verdict.plan)
    assert verdict.refusal is not None
    assert not _resent(verdict.plan, dpid, port, data), "refused: not forwarded yet"
    return verdict


def test_a_frame_before_the_hypervisors_row_is_resent_when_the_row_comes():
    """The race of a migration whose pre-copy is shorter than the OVSDB watcher's
    poll: the VM's announcement reaches the new port before its row does. It is
    refused then; the row pre-provisions the port, and the announcement goes on."""
    lab = Lab(IdentityPolicy.AUTO)
    lab.apply(lab.engine.vm_attached(S11, 1, VICTIM, now=lab.now).plan)
    lab.frame(S11, 1, VICTIM, ip=VICTIM_IP)
    _held_frame(lab, S21, 3, VICTIM, b"garp-1")
    lab.now += 0.05
    plan = lab.apply(lab.engine.vm_attached(S21, 3, VICTIM, now=lab.now).plan)
    assert _resent(plan, S21, 3, b"garp-1")
    assert not [f for f in lab.switches.flows(S21) if f.priority == Priority.QUARANTINE]
    lab.now += 0.05
    plan = lab.apply(lab.engine.vm_attached(S21, 3, VICTIM, now=lab.now).plan)
    assert not plan.packet_outs, "re-sent once"


def test_a_conflicts_frame_is_resent_when_the_old_port_goes(lab):
    _held_frame(lab, S21, 7, VICTIM, b"rarp-1")
    lab.now += 0.01
    plan = lab.apply(lab.engine.port_down(S11, 1, now=lab.now))
    assert lab.where(VICTIM) == (S21, 7)
    assert _resent(plan, S21, 7, b"rarp-1")


def test_a_conflicts_frame_is_resent_when_a_notice_names_its_server(lab):
    _held_frame(lab, S21, 7, VICTIM, b"garp-1")
    before = len(lab.plans)
    lab.apply(lab.engine.notify(Notice.MIGRATING, VICTIM, server="s21", now=lab.now).plan)
    assert lab.where(VICTIM) == (S21, 7)
    assert [p for p in lab.plans[before:] if _resent(p, S21, 7, b"garp-1")]


def test_a_spoofers_frame_is_never_resent(lab):
    _held_frame(lab, S12, 4, VICTIM, b"spoof")
    lab.frame(S11, 1, VICTIM, eth_dst=PROBE_MAC)             # the victim answers
    plans = [lab.later(MOVE_HOLD_SECONDS) for _ in range(3)]
    assert lab.where(VICTIM) == (S11, 1)
    assert not [out for plan in plans for out in plan.packet_outs if out.data == b"spoof"]


def test_a_held_frame_is_dropped_after_a_while_and_not_resent_late():
    lab = Lab(IdentityPolicy.PACKETS)
    lab.frame(S11, 1, VICTIM)                                  # no address: no probe
    _held_frame(lab, S21, 7, VICTIM, b"old-garp")
    lab.later(HELD_FRAME_SECONDS + 1.0)                        # ticks drop the frame
    plan = lab.apply(lab.engine.port_down(S11, 1, now=lab.now))
    assert lab.where(VICTIM) == (S21, 7), "the move still happens"
    assert not [out for out in plan.packet_outs if out.data == b"old-garp"]


def test_frames_of_unbound_or_unknown_macs_are_not_held():
    lab = Lab(IdentityPolicy.OVSDB)                            # no row names S21 port 3
    verdict = lab.engine.packet_in(S21, 3, OTHER, b"x", now=lab.now, sender_ip=None,
                                   eth_dst=None)
    assert verdict.refusal is not None and verdict.refusal.held == b""


def test_held_frames_are_bounded_in_number():
    quarantine = Quarantine()
    for n in range(HELD_FRAMES_MAX + 10):
        quarantine.refuse(Refusal(f"00:fa:00:00:{n // 256:02x}:{n % 256:02x}", 250, "x",
                                  dpid=1 + n // 4, port=1 + n % 4, since=0.0, held=b"f"))
    held = [r for r in quarantine.refused.values() if r.held]
    assert len(held) == HELD_FRAMES_MAX
    quarantine.expire(HELD_FRAME_SECONDS)
    assert not [r for r in quarantine.refused.values() if r.held]


def test_a_jumbo_frame_is_not_held():
    quarantine = Quarantine()
    refusal, _, _ = quarantine.refuse(Refusal(VICTIM, 250, "x", dpid=1, port=1, since=0.0,
                                              held=bytes(HELD_FRAME_BYTES + 1)))
    assert refusal.held == b""
