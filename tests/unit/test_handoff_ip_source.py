"""A hand-off between processes carries how the VM's IPv4 was bound (``ip_source``):
through the hand-off's values, the store's row (schema 1.3.0; a row an older dynprov
wrote still loads, and its address arrives pinned) and the destination's engine, where
a DHCP-bound address stays one (the VM's DHCPRELEASE unbinds it there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryu_apps.core.binding import IP_DHCP, IP_FIRST_SEEN, IP_PINNED
from ryu_apps.core.handoff_values import BindingsChanged, HandOffAsked
from ryu_apps.core.template_validation import build_library
from ryu_apps.store.schema import BINDING
from ryu_apps.store.writes import binding_row
from tests.support.dhcp_peer import RELEASE
from tests.support.old_store import converted_row
from tests.support.small_fabric import S11, S12
from tests.unit.test_dhcp_snooping import ACK, DHCPD, LIBRARY as DHCP_LIBRARY, VM_A, \
    client_message, server_message, snoop
from tests.unit import test_shared_fabric
from tests.unit.test_handoff import two_processes
from tests.unit.test_shared_fabric import S11 as P1_S11, S21, WEB1, WEB3
from tests.unit.test_shared_pipeline import Lab

#: test_handoff's two processes, their web VMs' IPv4 bound first-seen.
BOUND = build_library([("test.yaml", {"templates": [
    {"id": 250, "name": "web", "description": "web", "vlan": test_shared_fabric.WEB_VLAN,
     "virtual_switch": {"default_action": "allow", "bind_ip": "first_seen"},
     "access_port": {"default_action": "allow"}}]})])


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setattr(test_shared_fabric, "LIBRARY", BOUND)
    return two_processes()


def _row(store, mac: str):
    return next(r for r in store.idl.tables[BINDING].rows.values() if r.mac == mac)


def test_a_hand_off_carries_a_first_seen_address_as_first_seen(world):
    dc, store, p1, p2 = world
    dc.p1.vm(P1_S11, 1, WEB1)
    dc.p1.apply(dc.p1.engine.packet_in(P1_S11, 1, WEB1, b"arp", now=0.0,
                                       sender_ip="10.0.100.1").plan)
    dc.p2.vm(S21, 1, WEB3)
    assert dc.p1.engine.bindings[WEB1].ip_source == IP_FIRST_SEEN
    p1.publish()
    p2.publish()
    store.commit()
    assert _row(store, WEB1).ip_source == [IP_FIRST_SEEN]
    p1.feed(HandOffAsked(WEB1, "s21", "p2"))
    store.commit()
    p2.port_created_down(S21, 3, WEB1)
    incoming = dc.p2.engine.incoming[WEB1]
    assert (incoming.ip, incoming.ip_source) == ("10.0.100.1", IP_FIRST_SEEN)
    dc.p2.apply(dc.p2.engine.port_up(S21, 3))
    p2.publish()
    store.commit()
    arrived = dc.p2.engine.bindings[WEB1]
    assert (arrived.ip, arrived.ip_source) == ("10.0.100.1", IP_FIRST_SEEN)
    assert _row(store, WEB1).owner == "p2" and _row(store, WEB1).ip_source == [IP_FIRST_SEEN]


def test_a_row_without_ip_source_loads_and_its_address_arrives_pinned():
    old = binding_row({"mac": WEB1, "owner": "p1", "ip": "10.0.100.1"})
    assert old.ip_source is None
    assert binding_row({"mac": WEB1, "owner": "p1", "ip": "10.0.100.1",
                        "ip_source": "dhcp"}).ip_source == IP_DHCP
    lab = Lab(DHCP_LIBRARY)
    lab.apply(lab.engine.expect_ip(VM_A, "10.0.50.7", (), old.ip_source))
    lab.vm(S12, 5, VM_A)
    assert (lab.engine.bindings[VM_A].ip, lab.engine.bindings[VM_A].ip_source) == \
        ("10.0.50.7", IP_PINNED)
    junk = Lab(DHCP_LIBRARY)   # a value no dynprov writes is not believed either
    junk.apply(junk.engine.expect_ip(VM_A, "10.0.50.7", (), "from-the-moon"))
    junk.vm(S12, 5, VM_A)
    assert junk.engine.bindings[VM_A].ip_source == IP_PINNED


def test_a_dhcp_address_handed_over_stays_dhcp_and_the_vms_release_unbinds_it():
    lab = Lab(DHCP_LIBRARY)
    lab.vm(S11, 3, DHCPD, "10.0.50.1")
    lab.apply(lab.engine.expect_ip(VM_A, "10.0.50.100", (), IP_DHCP))
    lab.vm(S11, 1, VM_A)
    assert (lab.engine.bindings[VM_A].ip, lab.engine.bindings[VM_A].ip_source) == \
        ("10.0.50.100", IP_DHCP)
    snoop(lab, S11, 1, client_message(RELEASE, ciaddr="10.0.50.100"))
    assert lab.engine.bindings[VM_A].ip is None
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))   # and it binds again
    assert lab.engine.bindings[VM_A].ip_source == IP_DHCP


def test_the_binding_record_the_store_gets_says_how(world):
    dc, store, p1, _ = world
    dc.p1.vm(P1_S11, 1, WEB1)
    p1.publish()
    store.commit()
    assert _row(store, WEB1).ip_source == []      # no address: nothing to say
    dc.p1.apply(dc.p1.engine.packet_in(P1_S11, 1, WEB1, b"arp", now=0.0,
                                       sender_ip="10.0.100.1").plan)
    step = p1.feed(BindingsChanged(p1.viewer.view(dc.p1.engine, p1.ports)))
    assert [w.record.ip_source for w in step.writes] == [IP_FIRST_SEEN]


def test_a_store_of_the_previous_schema_converts_and_its_rows_load(tmp_path: Path):
    """ovsdb-tool converts a 1.2.0 store holding a binding to this checkout's schema; the
    row reads as before, with no ip_source."""
    stored = converted_row(tmp_path, "1.2.0", ("ip_source", "lease_end", "lease6_ends"), {
        "mac": WEB1, "template_id": 250, "domain": "", "server": "s11", "port": 1,
        "ip": "10.0.100.1", "state": "active", "owner": "p1"})   # 1.3.0's, 1.4.0's columns
    assert stored["ip_source"] == ["set", []]
    loaded = binding_row({"mac": stored["mac"], "owner": stored["owner"], "ip": stored["ip"],
                          "ip_source": None})
    assert (loaded.ip, loaded.ip_source) == ("10.0.100.1", None)
