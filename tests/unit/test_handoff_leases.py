"""A hand-off between processes carries the VM's DHCP and DHCPv6 lease ends: through the
engine's records, the store's row (schema 1.4.0: ``lease_end``, ``lease6_ends``; a row an
older dynprov wrote loads with none) and ``ExpectArrival``, so the destination expires
the addresses like leases it snooped itself, before the VM arrives too. Lease ends are
wall-clock seconds (the engine's ``now``): every process of a store reads one clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryu_apps.core.binding import IP_DHCP
from ryu_apps.core.handoff_values import HandOffAsked
from ryu_apps.core.template_validation import build_library
from ryu_apps.store.schema import BINDING, schema_version
from ryu_apps.store.writes import binding_row
from tests.support.fake_store import FakeStore
from tests.support.invariants import dhcpv6_reply
from tests.support.old_store import converted_row
from tests.support.small_fabric import UPLINK
from tests.unit import test_shared_fabric
from tests.unit.test_dhcp_snooping import ACK, server_message
from tests.unit.test_handoff import Node
from tests.unit.test_shared_fabric import S11, S21, WEB1, WEB3, DataCenter

ADDRESS, LEASED6 = "10.0.100.1", "2001:db8::50"
#: The web VMs of test_handoff's two processes, leased by DHCP and DHCPv6.
LEASED = build_library([("test.yaml", {"templates": [
    {"id": 250, "name": "web", "description": "web", "vlan": test_shared_fabric.WEB_VLAN,
     "virtual_switch": {"default_action": "allow", "bind_ip": "dhcp",
                        "bind_ipv6": "dhcpv6"},
     "access_port": {"default_action": "allow"}}]})])
START = 100.0
END4, END6 = START + 600, START + 7200   # the ACK's lease, the Reply's valid lifetime


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setattr(test_shared_fabric, "LIBRARY", LEASED)
    dc = DataCenter()
    dc.beacons()
    store = FakeStore()
    p1, p2 = Node(dc.p1, store, 0.0), Node(dc.p2, store, 0.0)
    p1.now = p2.now = START   # both past their start's grace
    dc.p1.vm(S11, 1, WEB1)
    dc.p2.vm(S21, 1, WEB3)
    lease(dc.p1, START)
    dc.p1.apply(dc.p1.engine.dhcpv6_snooped(S11, UPLINK, dhcpv6_reply(WEB1, LEASED6),
                                            now=START))
    p1.publish()
    p2.publish()
    store.commit()
    return dc, store, p1, p2


def lease(process, now: float) -> None:
    """The DHCP server's ACK of ADDRESS for WEB1 (600 s), through s11's uplink."""
    process.apply(process.engine.dhcp_seen(
        S11, UPLINK, server_message(ACK, ADDRESS, chaddr=WEB1, lease=600), now=now))


def _row(store, mac: str):
    return next(r for r in store.idl.tables[BINDING].rows.values() if r.mac == mac)


def _hand_over(dc, store, p1, p2) -> None:
    """WEB1 leaves s11 of p1 for port 3 of s21 (p2), with a notice, and arrives."""
    p1.feed(HandOffAsked(WEB1, "s21", "p2"))
    store.commit()
    p2.port_created_down(S21, 3, WEB1)
    dc.p2.apply(dc.p2.engine.port_up(S21, 3))
    p2.publish()
    store.commit()


def test_the_row_carries_the_lease_ends_and_a_renewal_updates_them(world):
    dc, store, p1, _ = world
    assert dc.p1.engine.bindings[WEB1].ip_source == IP_DHCP
    row = _row(store, WEB1)
    assert (row.lease_end, row.lease6_ends) == ([END4], {LEASED6: END6})
    lease(dc.p1, 500.0)              # a renewal: the binding itself does not change
    p1.publish()
    assert store.commit() == 1
    assert _row(store, WEB1).lease_end == [1100.0]
    p1.publish()
    assert store.commit() == 0       # nothing changed: nothing written


def test_the_destination_expires_a_handed_over_lease_like_its_own(world):
    dc, store, p1, p2 = world
    _hand_over(dc, store, p1, p2)
    engine = dc.p2.engine
    arrived = engine.bindings[WEB1]
    assert (arrived.ip, arrived.ip_source, arrived.ipv6) == (ADDRESS, IP_DHCP, (LEASED6,))
    assert engine.lease_ends(arrived) == (END4, ((LEASED6, END6),))
    assert _row(store, WEB1).owner == "p2" and _row(store, WEB1).lease_end == [END4]
    dc.p2.apply(engine.tick(END4 - 1))
    assert engine.bindings[WEB1].ip == ADDRESS
    plan = dc.p2.apply(engine.tick(END4))
    assert engine.bindings[WEB1].ip is None
    assert f"VM {WEB1} unbound from IP {ADDRESS}: its DHCP lease ended" in plan.notes
    assert engine.bindings[WEB1].ipv6 == (LEASED6,)
    dc.p2.apply(engine.tick(END6))
    assert engine.bindings[WEB1].ipv6 == ()


def test_a_renewal_at_the_destination_extends_the_lease_there(world):
    dc, store, p1, p2 = world
    _hand_over(dc, store, p1, p2)
    dc.p2.apply(dc.p2.engine.dhcp_seen(
        S21, UPLINK, server_message(ACK, ADDRESS, chaddr=WEB1, lease=600), now=650.0))
    dc.p2.apply(dc.p2.engine.tick(END4 + 100))
    assert dc.p2.engine.bindings[WEB1].ip == ADDRESS   # ends at 1250 now


def test_a_lease_that_ends_before_the_vm_arrives_is_not_bound_there(world):
    dc, store, p1, p2 = world
    p1.feed(HandOffAsked(WEB1, "s21", "p2"))
    store.commit()
    engine = dc.p2.engine
    plan = dc.p2.apply(engine.tick(END4))          # expected, not pre-provisioned yet
    assert any(f"will not be bound to IP {ADDRESS} here" in n for n in plan.notes)
    p2.port_created_down(S21, 3, WEB1)
    assert (engine.incoming[WEB1].ip, engine.incoming[WEB1].ipv6) == (None, (LEASED6,))
    dc.p2.apply(engine.tick(END6))                 # pre-provisioned: its copy loses it
    assert engine.incoming[WEB1].ipv6 == ()
    dc.p2.apply(engine.port_up(S21, 3))
    assert (engine.bindings[WEB1].ip, engine.bindings[WEB1].ipv6) == (None, ())


def test_a_row_of_an_older_dynprov_or_a_lease_end_that_is_no_time_keeps_the_address(world):
    dc, _, _, _ = world
    old = binding_row({"mac": WEB1, "owner": "p1", "ip": ADDRESS, "ip_source": "dhcp"})
    assert (old.lease_end, old.lease6_ends) == (None, ())
    engine = dc.p2.engine
    plan = engine.expect_ip(WEB1, ADDRESS, (LEASED6,), IP_DHCP, lease_end=float("nan"),
                            lease6_ends=(("2001:db8::99", 5.0),))
    assert any("ends at nan, no time" in w for w in plan.warnings)
    assert any("2001:db8::99 ignored (not among its addresses)" in w for w in plan.warnings)
    dc.p2.vm(S21, 3, WEB1)
    dc.p2.apply(engine.tick(1e12))
    assert (engine.bindings[WEB1].ip, engine.bindings[WEB1].ipv6) == (ADDRESS, (LEASED6,))


def test_a_store_of_schema_1_3_converts_and_its_rows_load_without_lease_ends(tmp_path: Path):
    """ovsdb-tool converts a 1.3.0 store holding a DHCP-bound binding to this checkout's
    schema (as the store does at start); the row reads as before, with no lease end."""
    stored = converted_row(tmp_path, "1.3.0", ("lease_end", "lease6_ends"), {
        "mac": WEB1, "template_id": 250, "domain": "", "server": "s11", "port": 1,
        "ip": ADDRESS, "ip_source": "dhcp", "state": "active", "owner": "p1"})
    assert schema_version() == "1.4.0"
    assert stored["lease_end"] == ["set", []] and stored["lease6_ends"] == ["map", []]
    loaded = binding_row({"mac": stored["mac"], "owner": stored["owner"], "ip": stored["ip"],
                          "ip_source": stored["ip_source"], "lease_end": None,
                          "lease6_ends": {}})
    assert (loaded.ip, loaded.ip_source, loaded.lease_end, loaded.lease6_ends) == \
        (ADDRESS, IP_DHCP, None, ())
