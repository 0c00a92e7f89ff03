"""The shared operations on bindings: bind, unbind, rebind, pre-provision, activate (pure).

Every handler that creates, changes or ends a binding does it here, so the
tails that keep derived state right live in one place: the binding table's
mutators keep its indexes, and the derived owners the change touches (its
access-port group, its placement, its VLAN, its port's quarantine) are marked
dirty for :func:`~ryu_apps.core.derived.flush`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Optional

from ryu_apps.core import shared_fabric
from ryu_apps.core.access_groups import group_key
from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.device_messages import MigrationDone
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.routes import Route, Way, end_path, end_probe, route_owner, set_path

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


def touched(st: "EngineState", binding: Binding) -> None:
    """Mark what a binding's change touches: its group and its placement."""
    key = group_key(st, binding)
    if key is not None:
        st.dirty.groups.add(key)
    st.dirty.placements[binding.binding_id] = binding


def quarantine_changed(st: "EngineState", dpid: int, port: int) -> None:
    """The port's quarantine flows are to be recomputed."""
    st.dirty.quarantine.add((dpid, port))


def lift_quarantine(st: "EngineState", binding: Binding, plan: Plan) -> None:
    """The VM is believed at its binding's port: frames it sent there before
    (refused then) are no longer dropped, and the one held is re-sent there."""
    released = st.quarantine.release_mac(binding.mac, binding.dpid, binding.port)
    if released is not None:
        quarantine_changed(st, binding.dpid, binding.port)
        if released.held:
            plan.packet_outs.append(PacketOut(binding.dpid, binding.port, released.held))


def store(st: "EngineState", binding: Binding) -> None:
    """Store a (new or changed) binding and mark its flows to be recomputed; a search
    for the VM, and for its port, ends."""
    st.table.add(binding)
    touched(st, binding)
    searches = st.ports.searches
    if searches.by_mac:
        searches.by_mac.pop(binding.mac, None)
        searches.drop_port((binding.dpid, binding.port))


def bind(st: "EngineState", binding: Binding, plan: Plan) -> None:
    """Provision a new binding."""
    store(st, binding)
    lift_quarantine(st, binding, plan)
    if binding.state is VmState.PROVISIONING:
        plan.confirms.append(binding.mac)
    shared_fabric.announce(st, binding, plan)


def remove(st: "EngineState", binding: Binding, plan: Plan,
           final_state: Optional[VmState] = None) -> None:
    """Forget a binding and its own flows and migration path."""
    key = group_key(st, binding)
    st.table.remove(binding, final_state)
    st.desired.replace(binding.owner, set(), plan)
    end_path(st, binding, plan)
    if key is not None:
        st.dirty.groups.add(key)


def unbind(st: "EngineState", binding: Binding, plan: Plan, reason: Optional[str],
           final_state: VmState = VmState.DEPROVISIONED) -> None:
    """Deprovision a VM."""
    remove(st, binding, plan, final_state)
    end_probe(st, binding, plan)
    st.moves.forget(binding.mac)
    st.ports.notified.pop(binding.mac, None)
    st.ports.notice_expiry.pop(binding.mac, None)
    if reason:
        plan.notes.append(f"deprovisioned VM {binding.mac} (binding {binding.binding_id}):"
                          f" {reason}")


def rebind(st: "EngineState", old: Binding, new: Binding, plan: Plan) -> None:
    """Replace a binding's flows with a changed binding's, make-before-break."""
    key = group_key(st, old)
    st.table.replace(old, new)
    if old.owner != new.owner:
        st.desired.replace(old.owner, set(), plan)
    if key is not None:
        st.dirty.groups.add(key)
    touched(st, new)
    if new.vlan != old.vlan or not old.state.forwards:
        shared_fabric.announce(st, new, plan)


def set_state(st: "EngineState", binding: Binding, state: VmState, plan: Plan) -> None:
    """The VM's state changes (its flows follow)."""
    rebind(st, binding, replace(binding, state=state), plan)


def drop_incoming(st: "EngineState", mac: str, plan: Plan) -> None:
    """Forget the pre-provisioned destination of VM ``mac``, if any."""
    pending = st.table.incoming.get(mac)
    if pending is not None:
        remove(st, pending, plan)


def pre_provision(st: "EngineState", source: Binding, dpid: int, port: int, plan: Plan,
                  why: str) -> None:
    """Get the destination port ready for a VM that still runs elsewhere."""
    pending = st.table.incoming.get(source.mac)
    st.ports.notice_expiry.pop(source.mac, None)
    if pending is not None and (pending.dpid, pending.port) == (dpid, port):
        return
    drop_incoming(st, source.mac, plan)
    holder = st.table.at_port(dpid, port)
    if holder is not None:
        plan.notes.append(f"cannot pre-provision VM {source.mac} on port {port}: "
                          f"port bound to VM {holder.mac}")
        return
    incoming = replace(source, binding_id=st.table.allocate_id(), dpid=dpid, port=port,
                       state=VmState.PRE_PROVISIONED, device=st.topo.device_of(dpid))
    store(st, incoming)
    if source.state.forwards:
        set_path(st, Route(route_owner(incoming), Way.BOTH_WAYS, source, incoming), plan)
    lift_quarantine(st, incoming, plan)
    plan.notes.append(f"pre-provisioned VM {source.mac} on {st.name(dpid)} port {port} "
                      f"(binding {incoming.binding_id}): {why}")


def activate(st: "EngineState", incoming: Binding, plan: Plan, why: str) -> None:
    """The VM is at its destination: make its new side whole; tell the source.

    The source side stays (as this VM's outgoing binding) until the source
    device receives MigrationDone and releases it: make-before-break across
    devices, and the only thing devices share is the message.
    """
    source = st.table.bindings.get(incoming.mac)
    moving = source is not None and source.binding_id != incoming.binding_id
    st.table.remove(incoming)
    st.ports.notice_expiry.pop(incoming.mac, None)
    active = replace(incoming, state=VmState.PROVISIONING)
    if source is not None and moving:
        st.table.hand_out(source)
        st.dirty.placements[source.binding_id] = source   # its way in is the new one's
    store(st, active)
    if source is not None and moving:
        set_path(st, Route(route_owner(active), Way.REDIRECT, source, active), plan)
    else:
        end_path(st, active, plan)
    lift_quarantine(st, active, plan)
    plan.confirms.append(active.mac)
    # the pre-provisioned port's entries already deliver its frames: no need to wait
    shared_fabric.announce(st, active, plan, at_once=True)
    plan.notes.append(f"activated VM {active.mac} on {st.name(active.dpid)} port "
                      f"{active.port} (binding {active.binding_id}): {why}")
    if source is not None and moving:
        plan.messages.append(MigrationDone(active.mac, source.device or -1,
                                           active.device or -1))


def release_source(st: "EngineState", mac: str, plan: Plan) -> None:
    """Source device: remove what a VM that migrated away left behind."""
    source = st.table.release(mac)
    if source is None:
        return
    st.desired.replace(source.owner, set(), plan)
    end_path(st, st.table.bindings.get(source.mac), plan)
    key = group_key(st, source)
    if key is not None:
        st.dirty.groups.add(key)
    plan.notes.append(f"deprovisioned VM {source.mac} (binding {source.binding_id}) on "
                      f"{st.name(source.dpid)}: migrated away")


def come_back(st: "EngineState", binding: Binding, dpid: int, port: int, data: bytes,
              plan: Plan) -> Binding:
    """A restarting VM is back: provision it with the template it had."""
    st.table.remove(binding)
    back = replace(binding, dpid=dpid, port=port, state=VmState.PROVISIONING,
                   device=st.topo.device_of(dpid))
    key = group_key(st, binding)
    if key is not None:
        st.dirty.groups.add(key)
    bind(st, back, plan)
    if data:
        plan.packet_outs.append(PacketOut(dpid, port, data))
    plan.notes.append(f"VM {binding.mac} back from restart on {st.name(dpid)} port "
                      f"{port}: template {binding.template_id} kept")
    return back


def vm_port_gone(st: "EngineState", dpid: int, port: int, why: str, plan: Plan) -> None:
    """A VM's port vanished: if it was migrating, its destination takes over."""
    binding = st.table.at_port(dpid, port)
    if binding is None:
        return
    outgoing = st.table.outgoing.get(binding.mac)
    if outgoing is not None and outgoing.binding_id == binding.binding_id:
        release_source(st, binding.mac, plan)
        return
    if binding.state is VmState.PRE_PROVISIONED:
        remove(st, binding, plan)
        return
    incoming = st.table.incoming.get(binding.mac)
    if incoming is not None:
        activate(st, incoming, plan, f"its old port went away ({why})")
        return
    unbind(st, binding, plan, why)
