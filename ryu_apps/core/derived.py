"""Derived owners: marked dirty by handlers, recomputed once per event (pure).

Handlers change the engine's state parts and say which derived owners that
touched; :func:`flush` recomputes those, once, in dependency order:

    infrastructure (switches whose links or role changed)
      -> access-port groups (they decide which bindings carry port-side rules)
      -> placements (a binding's own flows: template, merge, path)
      -> templates' shared flows (per server whose users of a template changed)
      -> VLAN flows (per switch whose members or flood ports changed)
      -> quarantine flows (per port)
      -> migration paths and liveness probes (after a fabric change)

:func:`recompute_all` is the from-scratch fallback, in the spirit of OVN's
incremental engine (``lib/inc-proc-eng.h``: a node without an incremental
handler is recomputed): every owner is marked dirty on empty derived state
and flushed, and the result replaces the incremental one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Set, Tuple, cast

from ryu_apps.core import access_groups
from ryu_apps.core.access_groups import AccessGroups, GroupKey
from ryu_apps.core.binding import Binding
from ryu_apps.core.binding_table import present
from ryu_apps.core.cookies import INFRA_OWNER, liveness_owner, quarantine_owner, vlan_owner
from ryu_apps.core.fabric import SHARED_FABRIC
from ryu_apps.core.server_flood import ServerFloods, delivery
from ryu_apps.core.vlan_compiler import server_vlan_flows, vlan_switch_flows
from ryu_apps.core.flow_compiler import Placement, handed_out
from ryu_apps.core.flow_plan import DesiredFlows, Plan, Recipe, diff_flows
from ryu_apps.core.routes import probe_flows
from ryu_apps.core.switch_flows import infra_flows
from ryu_apps.core.template_tables import SharedDesired
from ryu_apps.core.vlan_flooding import VlanFlooding

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState

PortKey = Tuple[int, int]


@dataclass
class Dirty:
    """Derived owners to recompute before the event's plan is returned."""

    infra: Set[int] = field(default_factory=set)
    groups: Set[GroupKey] = field(default_factory=set)
    #: binding id -> the binding when marked (the current one is placed)
    placements: Dict[int, Binding] = field(default_factory=dict)
    #: VLAN -> switches whose flows of that VLAN may change
    vlans: Dict[int, Set[int]] = field(default_factory=dict)
    quarantine: Set[PortKey] = field(default_factory=set)
    routes: bool = False


def flush(st: "EngineState", plan: Plan) -> None:
    """Recompute every dirty owner, in dependency order, into ``plan``."""
    dirty = st.dirty
    for dpid in sorted(dirty.infra):
        if dpid in st.topo.fabric.switches:
            st.desired.replace(INFRA_OWNER, infra_flows(st.topo.fabric, dpid), plan, dpid=dpid)
    dirty.infra.clear()
    for key in sorted(dirty.groups):
        access_groups.refresh(st, key, plan)
    dirty.groups.clear()
    access_groups.settle_fresh(st, plan)
    _flush_placements(st, plan)
    st.desired.refresh_templates(plan)
    _flush_vlans(st, plan)
    for dpid, port in sorted(dirty.quarantine):
        st.desired.replace(quarantine_owner(port), st.quarantine.flows(dpid, port), plan,
                           dpid=dpid)
    dirty.quarantine.clear()
    if dirty.routes:
        dirty.routes = False
        fabric = st.topo.fabric
        for cookie, route in sorted(st.routes.paths.items()):
            st.desired.replace(route.owner, route.flows(fabric, cookie), plan)


def _flush_placements(st: "EngineState", plan: Plan) -> None:
    marked, st.dirty.placements = st.dirty.placements, {}
    table = st.table
    for binding_id, binding in sorted(marked.items()):
        current = table.index.by_id.get(binding_id)
        if current is not None:
            st.desired.place(current.owner, st.placement(current), plan)
            continue
        outgoing = table.outgoing.get(binding.mac)
        if outgoing is None or outgoing.binding_id != binding_id:
            continue   # gone meanwhile: its owner was emptied when it went
        # the VM left it: the way to the VM is the new binding's
        recipe = handed_out(cast(Placement, st.placement(outgoing)))
        st.desired.place(outgoing.owner, cast(Recipe, recipe), plan)


def _flush_vlans(st: "EngineState", plan: Plan) -> None:
    marked, st.dirty.vlans = st.dirty.vlans, {}
    for vlan in sorted(marked):
        switches = marked[vlan] - {SHARED_FABRIC}
        for dpid in sorted(switches):
            flush_vlan_on(st, vlan, dpid, plan)


def flush_vlan_on(st: "EngineState", vlan: int, dpid: int, plan: Plan) -> None:
    """Bring a VLAN's shared flows on one switch in step with its members there.

    On a server hosting VMs of the VLAN only what changed is patched: the FLOOD
    chunks and groups whose members changed, and the few flows outside FLOOD
    (flood entry, admission, default up) where they differ; elsewhere the
    switch's whole (small) set is replaced.
    """
    owner = vlan_owner(vlan)
    fabric = st.topo.fabric
    up_ports = st.topo.flooding.flood_ports(vlan, dpid)
    info = fabric.switches.get(dpid)
    if info is None or not info.role.hosts_vms:
        st.floods.forget(vlan, dpid)
        st.desired.replace(owner, vlan_switch_flows(fabric, vlan, dpid, up_ports, (), False),
                           plan, dpid=dpid)
        return
    groups, changed = st.floods.take(vlan, dpid)
    if not st.floods.has_members(vlan, dpid) and not any(
            present(b) for b in st.table.index.on_server(dpid, vlan)):
        st.floods.forget(vlan, dpid)
        st.desired.replace(owner, set(), plan, dpid=dpid)
        return
    changed.update(st.floods.swap_head(
        vlan, dpid, (tuple(up_ports), tuple(groups)),
        lambda: server_vlan_flows(dpid, vlan, up_ports, groups, ())))
    st.desired.patch(owner, dpid, changed, plan)


def recompute_all(st: "EngineState") -> Plan:
    """Rebuild every owner's desired flows from the state alone; the plan that brings
    the previous desired flows to the rebuilt ones (empty when they agreed)."""
    old = st.desired
    st.desired = SharedDesired()
    st.desired.templates.adopt_idle(old.templates)    # lingering: history, kept
    st.groups = AccessGroups()
    for binding_id in list(st.table.moved):
        st.table.set_moved(binding_id, False)
    st.topo.paths.clear()
    _rebuild_flooding(st)
    _mark_everything(st)
    flush(st, Plan())
    plan = Plan()
    for dpid in sorted(set(st.topo.fabric.switches) | _switches_of(old)):
        diff_flows(old.on_switch(dpid), st.desired.on_switch(dpid), plan)
    return plan


def _rebuild_flooding(st: "EngineState") -> None:
    topo = st.topo
    topo.flooding = VlanFlooding(topo.tree)
    st.floods = ServerFloods()
    for binding in st.table:
        if binding.state.forwards:
            topo.member(binding.vlan, binding.dpid, +1)
            st.floods.change(binding.vlan, binding.dpid, delivery(binding), +1)


def _mark_everything(st: "EngineState") -> None:
    dirty, table = st.dirty, st.table
    switches = set(st.topo.fabric.switches)
    dirty.infra |= switches
    for binding in list(table) + list(table.outgoing.values()):
        dirty.placements[binding.binding_id] = binding
        key = access_groups.group_key(st, binding)
        if key is not None:
            dirty.groups.add(key)
    for vlan in set(st.topo.flooding.vlans()) | {b.vlan for b in table}:
        dirty.vlans.setdefault(vlan, set()).update(switches)
    dirty.quarantine |= set(st.quarantine.ports())
    dirty.routes = True
    for probed in st.routes.probes.values():
        owner = liveness_owner(probed.binding_id, probed.template_id)
        st.desired.replace(owner, probe_flows(probed), Plan())


def _switches_of(desired: DesiredFlows) -> Set[int]:
    return {spec.dpid for owner in desired.owners() for spec in desired.flows_of(owner)}
