"""Brute-force checks that the engine's indexes agree with its bindings."""

from __future__ import annotations

from ryu_apps.core.fabric import SHARED_FABRIC
from ryu_apps.core.transit import transit_path
from ryu_apps.core.vlan_compiler import vlan_flows


def check_indexes(engine) -> None:
    """Assert every index of ``engine`` equals its recomputation from scratch."""
    held = list(engine.bindings.values()) + list(engine.incoming.values())
    index = engine.state.table.index
    check_address_indexes(engine.state.table)
    assert index.by_id == {b.binding_id: b for b in held}
    for dpid in {b.dpid for b in held} | index.servers():
        assert index.on_server(dpid) == sorted((b for b in held if b.dpid == dpid),
                                               key=lambda b: b.binding_id)
    for template_id in {b.template_id for b in held}:
        assert index.of_template(template_id) == sorted(
            (b for b in held if b.template_id == template_id), key=lambda b: b.binding_id)
    for device in {b.device for b in held}:
        assert index.of_device(device) == sorted(
            (b for b in held if b.device == device), key=lambda b: b.binding_id)
    fabric = engine.fabric
    for vlan in {b.vlan for b in held} | set(engine.state.topo.flooding.vlans()):
        members = {b.dpid for b in held if b.vlan == vlan and b.state.forwards}
        if members:   # the shared fabric: a member wherever the VLAN has one here
            members.add(SHARED_FABRIC)
        assert engine.state.topo.flooding.member_switches(vlan) == members
        for dpid in fabric.switches:
            assert engine.state.topo.flooding.flood_ports(vlan, dpid) == sorted(
                fabric.flood_ports(dpid, members - {dpid})), (vlan, hex(dpid))
        if engine.state.dirty.vlans.get(vlan):
            continue  # flagged for the next refresh of this VLAN (the old engine waited too)
        owner_flows = engine.desired.flows_of(_vlan_owner(vlan))
        assert owner_flows == vlan_flows(fabric, vlan, [b for b in held if b.vlan == vlan]), vlan
    for server, path in engine.state.topo.paths.items():
        expected = []
        for dpid in sorted(fabric.switches):
            port = fabric.next_hop_port(dpid, server)
            if not fabric.role(dpid).hosts_vms and port is not None:
                expected.append((dpid, port, port in fabric.server_facing_ports(dpid)))
        assert path.hops == tuple(expected), hex(server)
        assert path == transit_path(fabric, server)
    check_recompute(engine)


def check_address_indexes(table) -> None:
    """Assert the binding table's indexes by bound IPv4 and IPv6 address equal their
    recomputation from its current bindings."""
    by_ip: dict = {}
    by_ipv6: dict = {}
    for binding in table.bindings.values():
        if binding.ip is not None:
            by_ip.setdefault(binding.ip, set()).add(binding.mac)
        for address in binding.ipv6:
            by_ipv6.setdefault(address, set()).add(binding.mac)
    assert table._by_ip == by_ip
    assert table._by_ipv6 == by_ipv6


def _vlan_owner(vlan: int):
    from ryu_apps.core.cookies import vlan_owner
    return vlan_owner(vlan)


def check_recompute(engine) -> None:
    """Assert the engine's incremental desired flows equal a recompute from scratch."""
    assert engine.recompute_all().flow_count() == 0
