"""Events about VMs: packets, OVSDB rows, ports gone, idle flows, reloads, time (pure).

Each function takes the engine's state and the event, changes the state
through :mod:`~ryu_apps.core.binding_ops` and marks derived owners dirty; the
facade (:class:`~ryu_apps.core.engine.ProvisioningEngine`) flushes them into
the plan it returns.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Optional, Set

from ryu_apps.core import (
    admission,
    arrival_notice,
    arrival_probe,
    binding_ops,
    derived,
    dhcp_snooping,
    ipv6_binding,
    topology_events,
    vm_identity,
)
from ryu_apps.core.binding import Detection, VmState
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.identity import PROBE_MAC, IdentityPolicy
from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.core.verdict import PacketVerdict

if TYPE_CHECKING:
    from ryu_apps.core.engine_state import EngineState


def packet_in(st: "EngineState", dpid: int, in_port: int, eth_src: str, data: bytes,
              now: float, sender_ip: Optional[str], eth_dst: Optional[str]) -> PacketVerdict:
    """A packet reached the controller from a VM port (untagged)."""
    mac = eth_src   # normalised by the engine's facade
    binding = st.table.at_port(dpid, in_port)
    if binding is not None and binding.mac == mac:
        if eth_dst == PROBE_MAC:
            verdict = PacketVerdict()
            vm_identity.alive(st, binding, verdict.plan)
            return verdict
        return admission.known_vm_spoke(st, binding, sender_ip, data)
    if binding is None and eth_dst == PROBE_MAC:
        answer = arrival_probe.answered(st, dpid, in_port, mac, sender_ip, now)
        if answer is not None:
            return answer
    if binding is None and mac in st.ports.searches.by_mac:
        found = arrival_probe.spoke(st, dpid, in_port, mac, data, sender_ip, now)
        if found is not None:
            return found
    return admission.admit(st, dpid, in_port, eth_src, now, Detection.PACKET, data,
                           sender_ip=sender_ip)


def vm_attached(st: "EngineState", dpid: int, port: int, mac: str, now: float,
                iface_id: Optional[str]) -> PacketVerdict:
    """The server's OVSDB says VM ``mac`` is attached to ``port`` (it may be silent)."""
    st.ports.attach(dpid, port, mac, iface_id)
    if not st.topo.hosts_vms(dpid):
        return PacketVerdict()   # recorded; a bridge this controller does not run
    clash = vm_identity.iface_clash(st, dpid, port, mac)
    holder = st.table.at_port(dpid, port)
    if holder is not None and holder.mac != mac and \
            st.policy_of(dpid) is not IdentityPolicy.PACKETS and \
            holder.detected_by is not Detection.OVSDB:
        verdict = PacketVerdict()
        if holder.state is VmState.PRE_PROVISIONED:   # its row said another VM
            binding_ops.drop_incoming(st, holder.mac, verdict.plan)
        else:
            binding_ops.unbind(st, holder, verdict.plan,
                               f"the hypervisor (OVSDB) names VM {mac} "
                               f"on its port {port} of {st.name(dpid)}")
        verdict.plan.extend(vm_attached(st, dpid, port, mac, now, iface_id).plan)
        return verdict
    current = st.table.bindings.get(mac)
    if current is not None and (current.dpid, current.port) == (dpid, port):
        return PacketVerdict()   # the hypervisor confirms where the VM already is
    if current is not None:
        verdict = PacketVerdict()
        if clash is not None:
            verdict.plan.warnings.append(clash)
        binding_ops.pre_provision(st, current, dpid, port, verdict.plan,
                                  f"its hypervisor created port {port} on {st.name(dpid)}")
        return verdict
    if (dpid, port) in st.ports.down:
        return admission.expect(st, dpid, port, mac, now)
    return admission.admit(st, dpid, port, mac, now, Detection.OVSDB, b"")


def vm_detached(st: "EngineState", dpid: int, port: int, mac: Optional[str], now: float,
                plan: Plan) -> None:
    """The server's OVSDB no longer lists VM ``mac`` (or any VM) on ``port``; a
    conflict that waited for the VM elsewhere is its move."""
    st.ports.detach(dpid, port)
    binding = st.table.at_port(dpid, port)
    if mac is not None and binding is not None and binding.mac != mac:
        return
    waiting = vm_identity.waiting_move(st, dpid, port)
    binding_ops.vm_port_gone(st, dpid, port, f"detached from port {port} of {st.name(dpid)}",
                             plan)
    vm_identity.resume_waiting(st, waiting, now, plan, "the hypervisor's row for it went away",
                               binding)


def port_down(st: "EngineState", dpid: int, port: int, deleted: bool, now: float,
              plan: Plan) -> None:
    """A port went away (or its link went down): drop its link and the VM behind it.

    A VM whose MAC waits as a conflict elsewhere moves there (its old port is gone).
    A bound VM that lost its port this way, with no destination pre-provisioned,
    is looked for with the controller's probe (:mod:`~ryu_apps.core.arrival_probe`).
    """
    st.ports.unannounced.discard((dpid, port))
    if deleted:
        st.ports.down.discard((dpid, port))
    else:
        st.ports.down.add((dpid, port))
    if not deleted and _new_vm_port(st, dpid, port):
        port_up(st, dpid, port, now, plan)   # a new port, added with its link down
        return
    st.ports.port_gone(dpid, port, deleted)
    st.ports.searches.drop_port((dpid, port))
    topology_events.remove_link_at(st, PortRef(dpid, port), now, plan)
    st.ports.detach(dpid, port)
    waiting = vm_identity.waiting_move(st, dpid, port)
    gone = st.table.at_port(dpid, port)
    notified = st.ports.notified.get(gone.mac) if gone is not None else None
    binding_ops.vm_port_gone(st, dpid, port, f"port {port} of {dpid:016x} went away", plan)
    if st.quarantine.forget_port(dpid, port):
        binding_ops.quarantine_changed(st, dpid, port)
    st.moves.drop_port(dpid, port)
    vm_identity.resume_waiting(st, waiting, now, plan, "its old port went away", gone)
    if gone is not None:
        vm_identity.unbound(st, gone.mac)
    if gone is not None and gone.state.forwards and gone.mac not in st.table.bindings:
        arrival_probe.lost(st, gone, notified, now, plan)


def _new_vm_port(st: "EngineState", dpid: int, port: int) -> bool:
    """Whether (dpid, port) is a server's VM port this engine has not seen yet."""
    return (port not in st.ports.present.get(dpid, ()) and st.topo.hosts_vms(dpid)
            and not st.topo.fabric.is_link_port(dpid, port)
            and st.table.at_port(dpid, port) is None)


def port_up(st: "EngineState", dpid: int, port: int, now: Optional[float],
            plan: Plan) -> None:
    """The switch has this port (``now``: it was just added or its link came up): a VM
    a notice expects on this server may be pre-provisioned there, and searches for
    lost VMs probe it."""
    st.ports.port_seen(dpid, port, now)
    if now is None:
        return
    arrival_notice.port_came_up(st, dpid, port, now, plan)
    arrival_probe.port_came_up(st, dpid, port, now, plan)


def flow_removed(st: "EngineState", dpid: int, cookie: int, idle_timeout: bool,
                 plan: Plan) -> None:
    """A flow with the send-flow-removed flag left a switch on its own."""
    owner = decode_cookie(cookie)
    if owner is None or owner.kind is not CookieKind.BINDING or not idle_timeout:
        return
    binding = st.table.index.by_id.get(owner.owner_id)
    if binding is not None and binding.dpid == dpid and binding.state.forwards:
        template = st.template_of(binding)
        idle = template.idle_timeout if template else 0
        binding_ops.unbind(st, binding, plan, f"silent for {idle} s (idle timeout)")


def confirm(st: "EngineState", macs: Iterable[str]) -> None:
    """The switches applied the plans that provisioned these VMs."""
    for mac in macs:
        binding = st.table.bindings.get(mac)
        if binding is not None and binding.state is VmState.PROVISIONING:
            active = replace(binding, state=VmState.ACTIVE)
            st.table.add(active)
            # both states forward: the same flows; keep one binding object, not two
            st.desired.retarget(active.owner, st.placement(active))


def set_library(st: "EngineState", library: TemplateLibrary, domain: Optional[str],
                plan: Plan) -> None:
    """Put a new (validated) library in force; re-provision affected VMs in place."""
    libraries = st.libraries
    if domain is None:
        previous: Optional[TemplateLibrary] = libraries.main
        libraries.main = library
    else:
        previous = libraries.of_domain.get(domain, libraries.main)
        libraries.of_domain[domain] = library
    changed = _changed_templates(previous, library)
    for binding in st.table.of_templates(changed):
        template = st.template_of(binding)
        if template is None:
            binding_ops.unbind(st, binding, plan,
                               f"template {binding.template_id} left the library")
            continue
        binding = dhcp_snooping.reloaded(st, binding, template, plan)
        if (template.name, template.vlan) != (binding.template_name, binding.vlan):
            binding_ops.rebind(st, binding, replace(binding, template_name=template.name,
                                                    vlan=template.vlan), plan)
        else:
            binding_ops.touched(st, binding)
    for dpid, port in st.quarantine.clear():
        binding_ops.quarantine_changed(st, dpid, port)
    derived.flush(st, plan)
    st.desired.templates.drop_idle(changed, plan)     # no stale shared flows linger
    if plan.flow_count():
        plan.notes.append(f"re-provisioned VMs in place: {plan.flow_count()} flow changes")


def tick(st: "EngineState", now: float, plan: Plan) -> None:
    """Time passed: lift quarantines older than QUARANTINE_SECONDS; accept the moves
    whose old location stayed silent to the liveness probe; expire notice-only
    pre-provisionings; send the searches' probes that are due; remove the templates'
    shared flows that lingered unused long enough; unbind ended DHCP and DHCPv6 leases."""
    ports, notes = st.quarantine.expire(now)
    for dpid, port in ports:
        binding_ops.quarantine_changed(st, dpid, port)
    plan.notes += notes
    vm_identity.accept_due_moves(st, now, plan)
    arrival_notice.expire(st, now, plan)
    arrival_probe.tick(st, now, plan)
    st.desired.expire_templates(now, plan)
    dhcp_snooping.expire(st, now, plan)
    ipv6_binding.expire(st, now, plan)


def _changed_templates(old: Optional[TemplateLibrary], new: TemplateLibrary) -> Set[int]:
    """Ids of templates added, removed or changed between two libraries."""
    if old is new:
        return set()
    old_templates = dict(old.templates) if old is not None else {}
    new_templates = dict(new.templates)
    return {template_id for template_id in set(old_templates) | set(new_templates)
            if old_templates.get(template_id) != new_templates.get(template_id)}
