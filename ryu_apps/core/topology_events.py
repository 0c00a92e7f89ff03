"""Switches and links: connections, verified LLDP links, ageing, fabric changes (pure).

The app believes a probe only after
:class:`~ryu_apps.core.probe_auth.ProbeVerifier` checked its signature;
:class:`~ryu_apps.core.link_guard.LinkGuard` then says whether the link may
change the fabric. A port that sent a probe nobody signed has its LLDP dropped
for a while (quarantine). A fabric change redoes only what depends on it: the
touched switches' infrastructure, the paths, groups and devices of servers
whose way changed, VLAN flood ports where the tree changed them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, List, Set

from ryu_apps.core import address_guard, binding_ops, dhcp_snooping, ipv6_guard, \
    shared_fabric
from ryu_apps.core.access_groups import server_group
from ryu_apps.core.binding import Binding, Detection, VmState
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.fabric import SHARED_FABRIC, PortRef, Role, SwitchInfo
from ryu_apps.core.rooted_tree import RootedTree
from ryu_apps.core.transit import transit_path
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.pipeline import Priority, Table
from ryu_apps.core.template_model import Template

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


# -- switches ------------------------------------------------------------------------
def switch_up(st: "EngineState", dpid: int, role: Role, name: str, observed: List,
              now: float, plan: Plan) -> None:
    """A switch connected and reported the dynprov flows and meters it holds."""
    topo = st.topo
    topo.links.switch_connected(dpid)
    known = dpid in topo.fabric.switches
    if topo.fabric.add_switch(SwitchInfo(dpid, role, name)):
        # a new switch joins alone; a known one with a new role or name may
        # change every path, every device and every domain
        fabric_changed(st, plan, {dpid} | topo.neighbours(dpid), everything=known)
    if role.hosts_vms:
        restore_bindings(st, dpid, observed, now, plan)
    else:
        shared_fabric.restore_shared_uplinks(st, dpid, observed, plan)


def restore_bindings(st: "EngineState", dpid: int, observed: List, now: float,
                     plan: Plan) -> None:
    """Rebuild bindings from a server's own flows (after a controller restart), with
    the templates of the library of the server's mobility domain; while that domain
    is unknown (its access switch not linked yet), later."""
    st.unrestored.pop(dpid, None)
    library = st.library_of_switch(dpid)
    if library is None:
        if _binding_flows(observed):
            st.unrestored[dpid] = (observed, now)
        return
    for spec in _binding_flows(observed):
        owner = decode_cookie(spec.cookie)
        if owner is None:
            continue
        fields = spec.match_dict()
        mac, port = fields.get("eth_src"), fields.get("in_port")
        template = library.get(owner.template_id)
        if (not isinstance(mac, str) or not isinstance(port, int) or template is None
                or mac in st.table.bindings or st.table.id_in_use(owner.owner_id)):
            continue
        ip = _bound_ip(observed, owner.cookie, template)
        binding = Binding(owner.owner_id, mac, template.template_id, template.name,
                          template.vlan, dpid, port, since=now, ip=ip,
                          ip_source=dhcp_snooping.restored_ip_source(template, ip),
                          ipv6=_bound_ipv6(observed, owner.cookie, template),
                          detected_by=Detection.RESTORED, state=VmState.ACTIVE,
                          device=st.topo.device_of(dpid))
        binding_ops.store(st, binding)
        plan.notes.append(f"restored VM {mac} (binding {binding.binding_id}) "
                          f"from the flows of {dpid:016x} port {port}")


def _binding_flows(observed: List) -> List[FlowSpec]:
    """The entries a server's bindings are restored from (one per VM)."""
    found = []
    for spec in observed:
        owner = decode_cookie(getattr(spec, "cookie", 0))
        if (isinstance(spec, FlowSpec) and owner is not None
                and owner.kind is CookieKind.BINDING
                and spec.table_id == Table.CLASSIFY and spec.priority == Priority.BINDING
                and spec.instructions):
            found.append(spec)
    return found


def _bound_ip(observed: List, cookie: int, template: Template) -> str | None:
    """The VM's bound IPv4 (its template's allowed addresses are not its own)."""
    for spec in observed:
        if (isinstance(spec, FlowSpec) and spec.cookie == cookie
                and spec.table_id == Table.ANTI_SPOOF):
            ip = spec.match_dict().get("ipv4_src")
            if isinstance(ip, str) and ip != "0.0.0.0" and not \
                    address_guard.allowed_by_template(template.virtual_switch, ip):
                return ip
    return None


def _bound_ipv6(observed: List, cookie: int, template: Template) -> tuple[str, ...]:
    """The VM's bound global IPv6 addresses, from its IPv6 allows (not its template's
    allowed addresses)."""
    side = template.virtual_switch
    if side.bind_ipv6 not in (ipv6_guard.FIRST_SEEN, ipv6_guard.DHCPV6):
        return ()
    found = set()
    for spec in observed:
        if (isinstance(spec, FlowSpec) and spec.cookie == cookie
                and spec.table_id == Table.ANTI_SPOOF and spec.priority == Priority.SPOOF_ALLOW):
            ip = spec.match_dict().get("ipv6_src")
            if isinstance(ip, str) and ipv6_guard.is_global(ip) and not \
                    address_guard.allowed_by_template(side, ip):
                found.add(ip)
    return tuple(sorted(found))


# -- links ---------------------------------------------------------------------------
def link_seen(st: "EngineState", a: PortRef, b: PortRef, now: float, plan: Plan) -> None:
    """A verified probe sent out of port ``a`` arrived at port ``b``."""
    fabric, links = st.topo.fabric, st.topo.links
    if a.dpid not in fabric.switches or b.dpid not in fabric.switches:
        return
    if fabric.peer(a) == b:
        links.seen(a, b)
        return
    refusal = links.judge(fabric, a, b, now)
    if refusal is not None:
        if links.first_report(refusal):
            plan.warnings.append(f"link {st.topo.end(a)} <-> {st.topo.end(b)} refused: "
                                 f"{refusal.reason}")
        return
    for end in (a, b):
        if fabric.is_shared_uplink(end):
            remove_link_at(st, end, now, plan)
    fabric.add_link(a, b)
    links.seen(a, b)
    _link_changed(st, (a, b), now, plan)
    plan.notes.append(f"link {a.dpid:016x}:{a.port} <-> {b.dpid:016x}:{b.port}")
    fabric_changed(st, plan, {a.dpid, b.dpid})


def probe_round(st: "EngineState", now: float, plan: Plan) -> None:
    """Links not proven for several rounds, and shared uplinks whose beacons
    stopped, are removed."""
    fabric, links = st.topo.fabric, st.topo.links
    for end in links.next_round(fabric, now):
        peer = fabric.peer(end)
        if peer is None:
            continue
        what = ("beacons from the shared fabric" if peer.dpid == SHARED_FABRIC
                else f"probes for {links.max_missed_rounds} rounds")
        plan.warnings.append(f"link {st.topo.end(end)} <-> {st.topo.end(peer)} removed: "
                             f"no {what}")
        remove_link_at(st, end, now, plan)


def probe_refused(st: "EngineState", dpid: int, port: int, now: float) -> None:
    """A port sent an unsigned or forged probe: drop its LLDP for a while."""
    if dpid in st.topo.fabric.switches and st.quarantine.refuse_probe(dpid, port, now):
        binding_ops.quarantine_changed(st, dpid, port)


def remove_link_at(st: "EngineState", end: PortRef, now: float, plan: Plan) -> None:
    """The link at ``end`` is gone (if there was one)."""
    fabric = st.topo.fabric
    peer = fabric.peer(end)
    if peer is None or not fabric.remove_link(end):
        return
    st.topo.links.forget(end)
    st.topo.links.forget(peer)
    _link_changed(st, (end, peer), now, plan)
    fabric_changed(st, plan, {end.dpid, peer.dpid})


def _link_changed(st: "EngineState", ends: Iterable[PortRef], now: float,
                  plan: Plan) -> None:
    links = st.topo.links
    for end in links.changed(ends, now):
        plan.warnings.append(
            f"port {st.topo.end(end)} held down for {links.hold_down:g} s: its link "
            f"changed {links.max_changes} times within {links.window:g} s")


# -- what a fabric change redoes ---------------------------------------------------------
def fabric_changed(st: "EngineState", plan: Plan, touched: Set[int],
                   everything: bool = False) -> None:
    """Switches or links changed: mark what depends on them, and only that.

    ``touched``: switches whose own links or role changed (their
    infrastructure flows and every VLAN's flows on them are redone).
    Servers whose way through the fabric changed get new paths, groups and
    devices; VLAN flood ports are recomputed where the tree changed them.
    """
    topo, dirty, index = st.topo, st.dirty, st.table.index
    old_tree, tree = topo.tree, topo.fabric.rooted_tree()
    topo.tree = tree
    dirty.infra |= {dpid for dpid in touched if dpid in topo.fabric.switches}
    servers = index.servers() | set(st.groups.of_server) | set(topo.paths)
    if everything:
        affected = servers
    else:
        affected = _servers_moved(st, old_tree, tree, servers) | (servers & touched)
    flood_changes = topo.flooding.rebuild(tree)
    # a switch with a new parent (or none: a new root) has a new VLAN default
    redo = touched | topo.shared_way_changed() | old_tree.changed_parents(tree)
    for vlan in set(flood_changes) | set(topo.flooding.vlans()) | set(dirty.vlans):
        dirty.vlans.setdefault(vlan, set()).update(flood_changes.get(vlan, set()) | redo)
    for server in sorted(affected):
        _server_moved(st, server)
    for server, (observed, since) in sorted(st.unrestored.items()):
        if st.library_of_switch(server) is not None:
            restore_bindings(st, server, observed, since, plan)
    dirty.routes = dirty.routes or bool(st.routes.paths)


def _servers_moved(st: "EngineState", old: RootedTree, new: RootedTree,
                   servers: Set[int]) -> Set[int]:
    """Servers whose way to the root (ancestors, and the ports toward the server)
    differs between two trees: those below a switch whose parent entry changed, in
    either tree. Their VMs' per-VM entries live on exactly that way."""
    affected: Set[int] = set()
    for dpid in old.changed_parents(new):
        for tree in (old, new):
            if dpid in tree.root:
                affected.update(tree.subtree(dpid))
    return affected & servers


def _server_moved(st: "EngineState", server: int) -> None:
    """Redo one server's path, access-port groups and device after a fabric change."""
    topo, index = st.topo, st.table.index
    path = transit_path(topo.fabric, server)
    old_path = topo.paths.get(server)
    topo.paths[server] = old_path if old_path is not None and old_path == path else path
    device = topo.device_of(server)
    for binding in index.on_server(server):
        if binding.device != device:
            st.table.add(replace(binding, device=device))
    st.dirty.groups |= st.groups.of_server.get(server, set())
    for vlan in index.vlans_on(server):
        key = server_group(st, server, vlan)
        if key is not None:
            st.dirty.groups.add(key)
    for binding in index.on_server(server):
        st.dirty.placements[binding.binding_id] = binding
