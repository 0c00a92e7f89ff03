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
    """Groups with flows: the server behind each and the port side compiled."""

    def __init__(self) -> None:
        self.server_of: Dict[GroupKey, Tuple[int, Optional[SwitchSide]]] = {}
        self.of_server: Dict[int, Set[GroupKey]] = {}

    def forget(self, key: GroupKey) -> Tuple[Optional[int], Optional[SwitchSide]]:
        """Drop a group's record; what it was."""
        old_server, old_side = self.server_of.pop(key, (None, None))
        if old_server is not None:
            self.of_server.get(old_server, set()).discard(key)
        return old_server, old_side

    def record(self, key: GroupKey, server: int, side: Optional[SwitchSide]) -> None:
        """A group now has flows, for ``server`` with ``side``."""
        self.server_of[key] = (server, side)
        self.of_server.setdefault(server, set()).add(key)


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
    peer = st.topo.fabric.peer(PortRef(key.dpid, key.port))
    if peer is None or server_group(st, peer.dpid, key.vlan) != key:
        return []
    found = [b for b in st.table.index.on_server(peer.dpid, key.vlan) if present(b)]
    # a migration's source keeps its way in until MigrationDone releases it
    return found + [b for b in st.table.outgoing.values()
                    if b.dpid == peer.dpid and b.vlan == key.vlan]


def refresh(st: "EngineState", key: GroupKey, plan: Plan) -> None:
    """Admission and port ACL of one group; the template merge (bindings whose
    port-side rules move are marked for placement)."""
    found = members(st, key)
    owner = port_group_owner(key.port, key.vlan)
    old_server, old_side = st.groups.forget(key)
    if not found:
        st.desired.replace(owner, set(), plan, dpid=key.dpid)
        return
    server = found[0].dpid
    sides = set()
    for binding in {b.template_id: b for b in found}.values():
        template = st.template_of(binding)
        sides.add(template.access_port if template is not None else None)
    merged = len(sides) > 1
    side = None if merged else next(iter(sides))
    st.groups.record(key, server, side)
    if old_server != server or old_side is not side or side is None:
        st.desired.replace(owner, port_group_flows(key.dpid, key.port, key.vlan, owner, side),
                           plan, dpid=key.dpid)
    for binding in sorted(found, key=lambda b: b.mac):
        if st.table.set_moved(binding.binding_id, merged):
            st.dirty.placements[binding.binding_id] = binding
            if merged:
                plan.notes.append(
                    f"VM {binding.mac}: port-side rules of template {binding.template_id} "
                    f"moved to its virtual-switch port (templates behind access port "
                    f"{key.port} of {key.dpid:016x} in VLAN {key.vlan} conflict)")
