"""The distributed hand-off between two controller processes, on fake switches and a
fake row set (the real write transactions, in memory).

Process p1 manages A1, S11, S12; p2 manages A2, S21; a learning bridge joins
their uplinks (``tests/unit/test_shared_fabric.py``'s data centre). Each
process runs the pure reducer ``ryu_apps.core.handoff`` the way
``ryu_apps/store/sync.py`` does: inputs in, engine commands run on its engine
and applied to its fake switches, write intents committed to the shared rows.
"""

from __future__ import annotations

import pytest

from ryu_apps.core import handoff
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.handoff_engine import EngineViewer, run_command
from ryu_apps.core.handoff_values import (
    BindingsChanged,
    Claim,
    Expecting,
    HandOffAsked,
    RequestOwner,
    Tick,
)
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.notification_errors import UnknownServer, UnknownVm
from tests.support.fake_store import FakeStore
from tests.support.index_check import check_indexes
from tests.unit.test_shared_fabric import (
    A1,
    DB2,
    LIBRARY,
    S11,
    S12,
    S21,
    UPLINK,
    WEB1,
    WEB2,
    WEB3,
    DataCenter,
)

GRACE = 5.0
P1_SWITCHES = [(S11, Role.SERVER, "s11"), (S12, Role.SERVER, "s12"), (A1, Role.ACCESS, "a1")]
P1_LINKS = [((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3))]


class Node:
    """One controller process's store side, as ``store/sync.py`` drives it."""

    def __init__(self, process, store: FakeStore, started: float) -> None:
        self.process, self.store, self.name = process, store, process.name
        self.state = handoff.start(self.name, GRACE, started)
        self.now = started
        self.notes: list[str] = []
        self.viewer = EngineViewer()
        self.ports = {dpid: set(range(1, 9)) for dpid in process.engine.fabric.switches}
        store.join(self.name, self.feed, lambda: frozenset(self.state.taking))

    def feed(self, event):
        step = handoff.reduce(self.state, event, self.now)
        self.notes += [note.text for note in step.notes]
        for command in step.commands:
            plans, notes = run_command(self.process.engine, command, self.now)
            self.notes += [note.text for note in notes]
            for plan in plans:
                self.process.apply(plan)
        if step.watch is not None:
            self.store.sync(self.name)
        for write in step.writes:
            self.store.submit(self.name, write)
        return step

    def publish(self):
        """What the app's ``bindings_changed()`` does after a plan."""
        return self.feed(BindingsChanged(self.viewer.view(self.process.engine, self.ports)))

    def port_created_down(self, dpid: int, port: int, mac: str) -> None:
        """A hypervisor creates a VM's port here before the VM resumes (OVSDB)."""
        engine = self.process.engine
        self.process.apply(engine.port_down(dpid, port, deleted=False, now=0.0))
        self.process.apply(engine.vm_attached(dpid, port, mac, now=0.0).plan)
        self.ports[dpid].add(port)


def two_processes():
    """A data center of two pods, their store and one process per pod, both past
    their start's grace: (dc, store, p1, p2)."""
    dc = DataCenter()
    dc.beacons()
    store = FakeStore()
    p1, p2 = Node(dc.p1, store, 0.0), Node(dc.p2, store, 0.0)
    p1.now = p2.now = 100.0
    return dc, store, p1, p2


@pytest.fixture
def world():
    return two_processes()


def _where(delivered):
    return sorted((name, dpid, port) for name, dpid, port, _ in delivered)


def _flows_of(process, mac):
    """Flows on a process's switches that match the VM's MAC, or deliver it both ways."""
    binding_ids = {b.binding_id for b in process.engine.bindings.values() if b.mac == mac}
    return [f for f in process.switches.all_flows()
            if any(value == mac for _, value in f.match)
            or decode_cookie(f.cookie).kind is CookieKind.MIGRATION
            and decode_cookie(f.cookie).owner_id in binding_ids]


def _migration_flows(process):
    return [f for f in process.switches.all_flows()
            if decode_cookie(f.cookie).kind is CookieKind.MIGRATION]


def _provision_and_publish(dc, store, p1, p2):
    dc.p1.vm(S11, 1, WEB1)
    dc.p1.vm(S12, 1, WEB2)
    dc.p2.vm(S21, 1, WEB3)
    p1.publish()
    p2.publish()
    store.commit()


def test_every_vm_is_claimed_by_its_process_and_released_when_it_goes(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    rows = store.rows()
    assert {mac: (row["owner"], row["server"], row["port"]) for mac, row in rows.items()} == {
        WEB1: ("p1", "s11", 1), WEB2: ("p1", "s12", 1), WEB3: ("p2", "s21", 1)}
    p1.publish()
    assert store.commit() == 0   # nothing changed: nothing written
    dc.p1.apply(dc.p1.engine.port_down(S12, 1, now=0.0))
    p1.publish()
    store.commit()
    assert set(store.rows()) == {WEB1, WEB3}


def test_a_notice_hands_a_vm_over_the_destination_claims_it_and_the_source_cedes(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    assert p1.feed(HandOffAsked(WEB1, "s21", "p2")).writes == [RequestOwner(WEB1, "p2", "s21")]
    store.commit()
    assert store.rows()[WEB1] == {"owner": "p1", "server": "s11", "port": 1,
                                  "state": "migrating", "requested_owner": "p2"}
    assert f"store: hand-off of VM {WEB1} to server s21: will be provisioned when it " \
           "appears on s21 (its first packet or its OVSDB row) (received at 100.000000)" \
           in p2.notes
    assert _migration_flows(dc.p1)   # p1 delivers WEB1 at s11:1 and toward the fabric
    # p2's hypervisor creates WEB1's port, link down: p2 pre-provisions it
    p2.port_created_down(S21, 3, WEB1)
    p2.publish()
    assert WEB1 in dc.p2.engine.incoming and store.commit() == 0
    assert _where(dc.send(dc.p2, S21, 1, WEB3, WEB1)) == [("p1", S11, 1), ("p2", S21, 3)]
    # WEB1 resumes on s21: p2 activates and claims it; p1 sees its row claimed
    dc.p2.apply(dc.p2.engine.port_up(S21, 3))
    p2.publish()
    store.commit()
    assert store.rows()[WEB1] == {"owner": "p2", "server": "s21", "port": 3,
                                  "state": "active", "requested_owner": None}
    assert p1.state.ceded == {WEB1: dc.p1.engine.bindings[WEB1].binding_id}
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p1", S11, 1), ("p2", S21, 3)]
    # WEB1's old port is gone (its port status is all p1 has): p1 cedes WEB1
    p1.ports[S11].discard(1)
    p1.publish()
    assert store.commit() == 0   # the row is p2's: p1 releases nothing
    assert WEB1 not in dc.p1.engine.bindings and not _flows_of(dc.p1, WEB1)
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p2", S21, 3)]
    assert store.rows()[WEB1]["owner"] == "p2"
    check_indexes(dc.p1.engine)
    check_indexes(dc.p2.engine)


def test_without_a_notice_the_destination_asks_the_owner_then_withdraws(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    p2.port_created_down(S21, 3, WEB1)   # what the app reports as expected
    p2.feed(Expecting(WEB1, "s21", 3))
    store.commit()
    assert f"store: VM {WEB1} expected on s21 port 3: asking its owner p1 for it" in p2.notes
    assert store.rows()[WEB1]["requested_owner"] == "p2" and WEB1 not in p2.state.taking
    assert p1.state.handing == {WEB1} and _migration_flows(dc.p1)
    # the move is abandoned: the pre-provisioned port goes away before WEB1 resumed
    dc.p2.apply(dc.p2.engine.port_down(S21, 3, now=0.0))
    p2.ports[S21].discard(3)
    p2.publish()
    store.commit()
    assert f"store: VM {WEB1} did not arrive here; hand-off withdrawn" in p2.notes
    assert f"store: hand-off of VM {WEB1} withdrawn by its destination" in p1.notes
    assert store.rows()[WEB1] == {"owner": "p1", "server": "s11", "port": 1,
                                  "state": "active", "requested_owner": None}
    assert not _migration_flows(dc.p1) and p1.state.handing == set()
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p1", S11, 1)]


def _restart_p1(dc, store, started):
    """p1 comes back: a new engine reads its switches' flows back; a new hand-off state
    reads its rows back."""
    engine = dc.p1.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    for dpid, role, name in P1_SWITCHES:
        dc.p1.apply(engine.switch_up(dpid, role, name, dc.p1.switches.entries(dpid),
                                     now=started).without_deletes())
    for a, b in P1_LINKS:
        dc.p1.apply(engine.link_seen(PortRef(*a), PortRef(*b), now=started))
    return Node(dc.p1, store, started)


def test_a_restarted_process_releases_rows_of_vms_gone_and_claims_vms_without_rows(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    dc.p1.vm(S11, 2, DB2)          # provisioned; p1 dies before publishing it
    store.leave("p1")
    store.drop_queued("p1")
    dc.p1.switches.apply(dc.p1.engine.cede(WEB2))   # s12 lost WEB2 meanwhile
    again = _restart_p1(dc, store, started=200.0)
    again.now = 201.0
    again.publish()
    store.commit()
    assert set(store.rows()) == {WEB1, WEB2, WEB3}   # within the grace nothing goes
    again.now = 205.5
    again.feed(Tick())   # the grace is over: reconcile against the bindings last read
    store.commit()
    assert {mac: row["owner"] for mac, row in store.rows().items()} == {
        WEB1: "p1", DB2: "p1", WEB3: "p2"}
    assert store.rows()[DB2]["server"] == "s11"
    assert "store reconcile: 2 bindings restored, 1 stale rows released, 1 restored VMs " \
           "not listed as ours checked" in again.notes
    assert DB2 in dc.p1.engine.bindings and _flows_of(dc.p1, DB2)


def test_a_restart_waits_for_the_servers_its_rows_name_until_the_deadline(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    store.leave("p1")
    again = Node(dc.p1, store, 200.0)   # s12 never comes back
    dc.p1.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    dc.p1.apply(dc.p1.engine.switch_up(S11, Role.SERVER, "s11", dc.p1.switches.entries(S11),
                                       now=0.0))
    again.now = 230.0
    assert again.publish().wake_at == 260.0   # the deadline: s12 is missing
    store.commit()
    assert set(store.rows()) == {WEB1, WEB2, WEB3}
    again.now = 260.5
    again.publish()
    store.commit()
    assert "store reconcile: servers ['s12'] did not come back within 60 s; their VMs' " \
           "rows are released" in again.notes
    assert {mac: row["owner"] for mac, row in store.rows().items()} == {
        WEB1: "p1", WEB3: "p2"}


def test_a_restarted_process_cedes_a_vm_another_process_took_while_it_was_away(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    store.leave("p1")   # p1 is dead: WEB1 moves to s21, p2 takes a row it could not see
    dc.p2.vm(S21, 3, WEB1)
    p2.publish()
    store.commit()
    assert store.rows()[WEB1]["owner"] == "p2" and WEB1 not in p2.state.taking
    again = _restart_p1(dc, store, started=200.0)   # s11 still holds WEB1's flows
    assert WEB1 in dc.p1.engine.bindings
    again.now = 206.0
    again.publish()
    store.commit()
    assert f"store reconcile: VM {WEB1} is another process's now; deprovisioned here" \
        in again.notes
    assert WEB1 not in dc.p1.engine.bindings and not _flows_of(dc.p1, WEB1)
    assert store.rows()[WEB1]["owner"] == "p2"
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p2", S21, 3)]


def test_a_claim_that_fails_is_reported_and_made_again(world):
    dc, store, p1, p2 = world
    dc.p2.vm(S21, 1, WEB3)
    p2.publish()
    store.commit(fail=lambda write: isinstance(write, Claim))
    assert WEB3 not in store.rows()
    assert f"store: claim of VM {WEB3} failed (injected failure); claimed again on the " \
           "next change" in p2.notes
    p2.publish()
    store.commit()
    assert store.rows()[WEB3]["owner"] == "p2"


def test_a_hand_off_to_a_process_that_never_answers_keeps_the_vm_here(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    store.leave("p2")   # registered, but it hears nothing and answers nothing
    p1.feed(HandOffAsked(WEB1, "s21", "p2"))
    store.commit()
    assert store.rows()[WEB1] == {"owner": "p1", "server": "s11", "port": 1,
                                  "state": "migrating", "requested_owner": "p2"}
    for _ in range(3):
        p1.publish()
    assert store.commit() == 0 and WEB1 in dc.p1.engine.bindings
    # the VM is still served at its port (and a copy goes toward the fabric, where
    # no other pod has learned it)
    assert ("p1", S11, 1) in _where(dc.send(dc.p1, S12, 1, WEB2, WEB1))
    assert _where(dc.send(dc.p2, S21, 1, WEB3, WEB1)) == [("p1", S11, 1)]


def test_a_notice_for_an_unknown_server_or_vm_is_refused(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    refused = p1.feed(HandOffAsked(WEB1, "s99", None)).refused
    assert isinstance(refused, UnknownServer) and "'s99'" in str(refused)
    refused = p1.feed(HandOffAsked("00:fa:00:00:00:77", "s21", "p2")).refused
    assert isinstance(refused, UnknownVm) and "00:fa:00:00:00:77" in str(refused)
    assert store.commit() == 0


def test_ceding_drops_a_pre_provisioned_port_too_and_an_unknown_vm_is_nothing(world):
    dc, store, p1, p2 = world
    _provision_and_publish(dc, store, p1, p2)
    p2.port_created_down(S21, 3, WEB1)
    assert WEB1 in dc.p2.engine.incoming and _flows_of(dc.p2, WEB1)
    dc.p2.apply(dc.p2.engine.cede(WEB1))
    assert WEB1 not in dc.p2.engine.incoming and not _flows_of(dc.p2, WEB1)
    assert dc.p2.engine.cede("00:fa:00:00:00:77").is_empty()
    check_indexes(dc.p2.engine)
