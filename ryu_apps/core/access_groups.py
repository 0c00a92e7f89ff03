"""Access-port groups: the VMs of one VLAN behind one access-switch port (pure).

A group's flows admit its VLAN on the access port with the templates'
port-side rules; when the templates behind the port disagree on those rules,
the rules move to each VM's own virtual-switch port (the template merge), and
the group says which bindings carry them (``BindingTable.moved``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Set, Tuple

from ryu_apps.core.binding import Binding
from ryu_apps.core.binding_table import present
from ryu_apps.core.cookies import port_group_owner
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flow_compiler import port_group_flows
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.template_model import SwitchSide

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


class GroupKey(NamedTuple):
    """VMs of one VLAN behind one access-switch port."""

    dpid: int
    port: int
    vlan: int


class AccessGroups:
    """Groups with flows: the server behind each, the port side compiled, and whether
    the templates behind the port conflict (then their port-side rules moved)."""

    def __init__(self) -> None:
        self.server_of: Dict[GroupKey, Tuple[int, Optional[SwitchSide]]] = {}
        self.of_server: Dict[int, Set[GroupKey]] = {}
        self.merged: Set[GroupKey] = set()

    def forget(self, key: GroupKey) -> Tuple[Optional[int], Optional[SwitchSide], bool]:
        """Drop a group's record; what it was."""
        old_server, old_side = self.server_of.pop(key, (None, None))
        if old_server is not None:
            self.of_server.get(old_server, set()).discard(key)
        merged = key in self.merged
        self.merged.discard(key)
        return old_server, old_side, merged

    def record(self, key: GroupKey, server: int, side: Optional[SwitchSide],
               merged: bool) -> None:
        """A group now has flows, for ``server`` with ``side``."""
        self.server_of[key] = (server, side)
        self.of_server.setdefault(server, set()).add(key)
        if merged:
            self.merged.add(key)


def server_group(st: "EngineState", server: int, vlan: int) -> Optional[GroupKey]:
    """The group of a server's VMs in ``vlan``, if the server hangs off an access switch."""
    access = st.topo.access_switch_of(server)
    if access is None or st.topo.fabric.role(access.dpid) is not Role.ACCESS:
        return None
    return GroupKey(access.dpid, access.port, vlan)


def group_key(st: "EngineState", binding: Binding) -> Optional[GroupKey]:
    """The group of a binding."""
    return server_group(st, binding.dpid, binding.vlan)


def members(st: "EngineState", key: GroupKey) -> List[Binding]:
    """Bindings present behind the group's port in its VLAN (outgoing ones too)."""
    server = _server_behind(st, key)
    if server is None:
        return []
    found = [b for b in st.table.index.iter_on_server(server, key.vlan) if present(b)]
    return found + _outgoing(st, server, key.vlan)


def _server_behind(st: "EngineState", key: GroupKey) -> Optional[int]:
    peer = st.topo.fabric.peer(PortRef(key.dpid, key.port))
    if peer is None or server_group(st, peer.dpid, key.vlan) != key:
        return None
    return peer.dpid


def _outgoing(st: "EngineState", server: int, vlan: int) -> List[Binding]:
    """A migration's source keeps its way in until MigrationDone releases it."""
    return [b for b in st.table.outgoing.values() if b.dpid == server and b.vlan == vlan]


def refresh(st: "EngineState", key: GroupKey, plan: Plan) -> None:
    """Admission and port ACL of one group; the template merge (bindings whose
    port-side rules move are marked for placement).

    The group's templates come from the table's per-VLAN template counts, and only
    the bindings that joined or left since the group last looked (``table.fresh``)
    have their merge flag set, unless the merge itself changed: a new VM costs the
    same however many VMs share its group.
    """
    owner = port_group_owner(key.port, key.vlan)
    old_server, old_side, was_merged = st.groups.forget(key)
    server = _server_behind(st, key)
    outgoing = _outgoing(st, server, key.vlan) if server is not None else []
    counts = st.table.present_templates.get((server, key.vlan), {}) \
        if server is not None else {}
    if not counts and not outgoing:
        st.desired.replace(owner, set(), plan, dpid=key.dpid)
        return
    assert server is not None
    library = st.library_of_switch(server) or st.libraries.main
    sides: List[Optional[SwitchSide]] = []   # distinct by value; compared, not hashed
    for template_id in set(counts) | {b.template_id for b in outgoing}:
        template = library.get(template_id)
        found = template.access_port if template is not None else None
        if not any(found is other or found == other for other in sides):
            sides.append(found)
    merged = len(sides) > 1
    side = None if merged else sides[0]
    st.groups.record(key, server, side, merged)
    if old_server != server or old_side is not side:
        st.desired.replace(owner, port_group_flows(key.dpid, key.port, key.vlan, owner, side),
                           plan, dpid=key.dpid)
    if old_server == server and was_merged == merged:
        checked = _fresh_members(st, server, key.vlan, outgoing)
    else:
        checked = members(st, key)
    _set_moved(st, key, checked, merged, plan)


def _fresh_members(st: "EngineState", server: int, vlan: int,
                   outgoing: List[Binding]) -> List[Binding]:
    """The group's members among the fresh ids (those settled are no longer fresh)."""
    fresh, by_id = st.table.fresh, st.table.index.by_id
    found = []
    for binding_id in list(fresh):
        binding = by_id.get(binding_id)
        candidates = [binding] if binding is not None else []
        candidates += [b for b in outgoing if b.binding_id == binding_id]
        for member in candidates:
            if member.dpid == server and member.vlan == vlan and present(member):
                found.append(member)
                fresh.discard(binding_id)
    return found


def _set_moved(st: "EngineState", key: GroupKey, found: List[Binding], merged: bool,
               plan: Plan) -> None:
    table = st.table
    table.fresh.difference_update(b.binding_id for b in found)
    changed = [b for b in found if table.set_moved(b.binding_id, merged)]
    for binding in sorted(changed, key=lambda b: b.mac):
        st.dirty.placements[binding.binding_id] = binding
        if merged:   # per VM: a detail (the group's merge shows in its flows)
            plan.details.append(
                f"VM {binding.mac}: port-side rules of template {binding.template_id} "
                f"moved to its virtual-switch port (templates behind access port "
                f"{key.port} of {key.dpid:016x} in VLAN {key.vlan} conflict)")


def settle_fresh(st: "EngineState", plan: Plan) -> None:
    """After the dirty groups: a fresh binding present in a group that was not
    refreshed gets its group refreshed; the rest are settled (no group to look)."""
    table = st.table
    while table.fresh:
        binding_id = table.fresh.pop()
        binding = table.index.by_id.get(binding_id) or next(
            (b for b in table.outgoing.values() if b.binding_id == binding_id), None)
        if binding is None or not present(binding):
            continue
        key = group_key(st, binding)
        if key is not None:
            table.fresh.add(binding_id)
            refresh(st, key, plan)
            table.fresh.discard(binding_id)
