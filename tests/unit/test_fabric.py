"""Roles from bridge descriptions, links and the spanning tree."""

import pytest

from ryu_apps.core.fabric import (
    Fabric, PortRef, Role, RoleError, SwitchInfo, describe, parse_description)


def test_role_round_trips_through_description():
    assert parse_description(describe(Role.SERVER, "s11")) == (Role.SERVER, "s11")
    assert parse_description("dynprov:access:a1\x00\x00") == (Role.ACCESS, "a1")


def test_foreign_description_is_not_managed():
    assert parse_description("s1") is None
    assert parse_description("") is None


def test_unknown_role_names_the_description():
    with pytest.raises(RoleError, match=r"'dynprov:router:r1': unknown role 'router'"):
        parse_description("dynprov:router:r1")


def _ring() -> Fabric:
    """Three switches in a triangle: 1-2, 2-3, 3-1 (a loop)."""
    fabric = Fabric()
    for dpid in (1, 2, 3):
        fabric.add_switch(SwitchInfo(dpid, Role.ACCESS, f"a{dpid}"))
    fabric.add_link(PortRef(1, 1), PortRef(2, 1))
    fabric.add_link(PortRef(2, 2), PortRef(3, 1))
    fabric.add_link(PortRef(3, 2), PortRef(1, 2))
    return fabric


def test_tree_breaks_the_loop():
    fabric = _ring()
    tree_edges = sum(len(fabric.tree_ports(d)) for d in (1, 2, 3)) // 2
    assert tree_edges == 2


def test_next_hop_follows_the_tree_both_ways():
    fabric = _ring()
    for src in (1, 2, 3):
        for dst in (1, 2, 3):
            if src == dst:
                assert fabric.next_hop_port(src, dst) is None
                continue
            port = fabric.next_hop_port(src, dst)
            assert port in fabric.tree_ports(src)


def test_parallel_links_use_matching_ends():
    fabric = Fabric()
    fabric.add_switch(SwitchInfo(1, Role.ACCESS, "a1"))
    fabric.add_switch(SwitchInfo(2, Role.FABRIC, "f1"))
    fabric.add_link(PortRef(1, 5), PortRef(2, 9))
    fabric.add_link(PortRef(1, 4), PortRef(2, 10))
    out = fabric.next_hop_port(1, 2)
    back = fabric.next_hop_port(2, 1)
    assert fabric.peer(PortRef(1, out)) == PortRef(2, back)


def test_relinking_a_port_replaces_the_old_link():
    fabric = _ring()
    assert fabric.add_link(PortRef(1, 1), PortRef(3, 7))
    assert fabric.peer(PortRef(2, 1)) is None
    assert not fabric.add_link(PortRef(1, 1), PortRef(3, 7))


def test_removing_a_switch_removes_its_links():
    fabric = _ring()
    fabric.remove_switch(2)
    assert fabric.link_ports(1) == {2}
    assert fabric.next_hop_port(1, 3) == 2


def test_flood_ports_lead_only_toward_members():
    fabric = Fabric()
    for dpid, role in ((1, Role.FABRIC), (2, Role.ACCESS), (3, Role.ACCESS)):
        fabric.add_switch(SwitchInfo(dpid, role, str(dpid)))
    fabric.add_link(PortRef(1, 1), PortRef(2, 1))
    fabric.add_link(PortRef(1, 2), PortRef(3, 1))
    assert fabric.flood_ports(1, [2]) == {1}
    assert fabric.flood_ports(1, [2, 3]) == {1, 2}
    assert fabric.flood_ports(2, [2]) == set()
