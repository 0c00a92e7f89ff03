"""Both-ways delivery while a VM migrates (ryu_apps/core/migration_paths.py)."""

import pytest

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.migration_paths import MIGRATION_PRIORITY
from tests.unit.test_lifecycle import A1, A2, F1, PEER, S11, S21, WEB1, WEB2, Lab


@pytest.fixture
def lab():
    lab = Lab()
    lab.vm(S11, 1, WEB1)
    lab.vm(S11, 2, WEB2)     # a peer beside the migrating VM
    lab.vm(S21, 1, PEER)     # a peer beside its destination
    return lab


def _migration_entries(lab):
    return [f for dpid in (S11, S21, A1, A2, F1) for f in lab.switches.flows(dpid)
            if decode_cookie(f.cookie).kind is CookieKind.MIGRATION]


def test_while_pre_provisioned_frames_reach_both_ports_once(lab):
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    assert lab.reached(S21, 1, PEER, WEB1) == [(S11, 1), (S21, 5)]
    assert lab.reached(S11, 2, WEB2, WEB1) == [(S11, 1), (S21, 5)]


def test_activation_leaves_only_the_new_port(lab):
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    lab.apply(lab.engine.packet_in(S21, 5, WEB1, b"rarp", now=0.0).plan)
    assert lab.reached(S21, 1, PEER, WEB1) == [(S21, 5)]
    assert lab.reached(S11, 2, WEB2, WEB1) == [(S21, 5)]
    assert _migration_entries(lab) == []


def test_both_ways_entries_have_their_own_owner_above_the_ordinary_path(lab):
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    entries = _migration_entries(lab)
    assert {f.dpid for f in entries} == {S11, S21, A1, A2, F1}
    assert {f.priority for f in entries} == {MIGRATION_PRIORITY}


def test_activation_redirects_the_old_server_in_the_same_plan(lab):
    """Between activation and the source's release, nothing goes to the old port: the
    old server and the switches above it whose entry for the source leads down to it
    (a1, and f1, the root) send the VM's frames toward its new place."""
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    activation = lab.engine.packet_in(S21, 5, WEB1, b"rarp", now=0.0).plan
    lab.switches.apply(activation)                  # MigrationDone not delivered yet
    assert lab.reached(S11, 2, WEB2, WEB1) == [(S21, 5)]
    assert lab.reached(S21, 1, PEER, WEB1) == [(S21, 5)]
    assert sorted(f.dpid for f in _migration_entries(lab)) == sorted([S11, A1, F1])
    for message in activation.messages:
        lab.apply(lab.engine.receive(message, now=0.0))
    assert lab.reached(S11, 2, WEB2, WEB1) == [(S21, 5)]
    assert _migration_entries(lab) == []


def test_an_abandoned_destination_stops_receiving(lab):
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    lab.apply(lab.engine.port_down(S21, 5, now=0.0))            # the hypervisor gave up
    assert lab.reached(S21, 1, PEER, WEB1) == [(S11, 1)]
    assert _migration_entries(lab) == []


def test_a_move_with_no_announcement_needs_no_controller(lab):
    """The old port goes: traffic already reaches the new one before any event."""
    lab.apply(lab.engine.vm_attached(S21, 5, WEB1, now=0.0).plan)
    assert (S21, 5) in lab.reached(S11, 2, WEB2, WEB1)
    lab.apply(lab.engine.port_down(S11, 1, now=0.0))
    assert lab.reached(S11, 2, WEB2, WEB1) == [(S21, 5)]
