"""The provisioning engine as it was before it was indexed (a test reference).

A verbatim copy of ``ryu_apps/core/engine.py`` before the scale work (every
event rescans all bindings, recompiles whole VLANs, keeps every binding's
compiled flows), with the old per-owner flow store and the old from-scratch
path compilation. Property tests drive it and the real engine with the same
events and require identical switch tables. It shares the lifecycle mixin
with the real engine, so lifecycle changes apply to both.
"""

# flake8: noqa
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Set

from ryu_apps.core.binding import Binding, Detection, VmState
from ryu_apps.core.cookies import (
    INFRA_OWNER,
    CookieKind,
    decode_cookie,
    port_group_owner,
    quarantine_owner,
    vlan_owner,
)
from ryu_apps.core.domains import DomainMap
from ryu_apps.core.fabric import Fabric, PortRef, Role, SwitchInfo
from ryu_apps.core.flow_compiler import (
    Placement,
    _server_side,
    port_group_flows,
    vlan_flows,
)
from ryu_apps.core.flow_plan import PacketOut, Plan, diff_flows
from ryu_apps.core.flowspec import Output, flow, make_match, tagged
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.switch_flows import infra_flows
from ryu_apps.core.identifiers import IdentifierError, IdentifierScheme, format_mac, parse_mac
from ryu_apps.core.identity import PROBE_MAC, IdentityPolicy, MoveGuard
from ryu_apps.core.lifecycle import VmLifecycle
from ryu_apps.core.link_guard import LinkGuard
from ryu_apps.core.topology_events import TopologyEvents
from ryu_apps.core.vm_identity import VmIdentity
from ryu_apps.core.pipeline import MAX_BINDING_ID, Priority, Table
from ryu_apps.core.quarantine import (  # noqa: F401 (re-exported for callers)
    QUARANTINE_MACS_PER_PORT,
    QUARANTINE_SECONDS,
    Quarantine,
    Refusal,
)

@dataclass
class PacketVerdict:
    """The outcome of a packet from a VM port: a plan and what to log."""

    plan: Plan = field(default_factory=Plan)
    provisioned: Binding | None = None
    refusal: Refusal | None = None
    first_refusal: bool = False


class GroupKey(NamedTuple):
    """VMs of one VLAN behind one access-switch port."""

    dpid: int
    port: int
    vlan: int


class ReferenceEngine(VmLifecycle, VmIdentity, TopologyEvents):
    """Bindings, fabric and desired flows of one controller (pure state machine)."""

    def __init__(self, library, scheme: IdentifierScheme,
                 domains: DomainMap | None = None,
                 domain_libraries: Dict[str, object] | None = None) -> None:
        self.main_library = library
        self.domains = domains or DomainMap(())
        self.domain_libraries = dict(domain_libraries or {})
        self.scheme = scheme
        self.fabric = Fabric()
        self.bindings: Dict[str, Binding] = {}    # by MAC: where the VM is now
        self.incoming: Dict[str, Binding] = {}    # by MAC: pre-provisioned destinations
        self.outgoing: Dict[str, Binding] = {}    # by MAC: sources awaiting MigrationDone
        self.desired = DesiredFlows()
        self.quarantine = Quarantine()
        self.attachments: Dict[tuple, str] = {}   # (dpid, port) -> MAC, from OVSDB
        # identity and topology guards (shared with the engine: issue 11)
        self._attached_at: Dict[str, Set[tuple]] = {}
        self._iface_ids: Dict[tuple, str] = {}
        self._notified: Dict[str, int] = {}
        self._ports_down: Set[tuple] = set()
        self.identity_default = IdentityPolicy.AUTO
        self.moves = MoveGuard()
        self.links = LinkGuard()
        self._by_port: Dict[tuple, Binding] = {}
        self._ids_in_use: Set[int] = set()
        self._next_binding_id = 1
        self._groups: Dict[GroupKey, Set[str]] = {}
        self._moved: Set[int] = set()  # bindings whose port-side rules sit on their vswitch port
        self.history: Dict[str, VmState] = {}     # last state of every VM ever seen

    # -- libraries -------------------------------------------------------------
    @property
    def library(self):
        """The main library (the default domain's)."""
        return self.main_library

    @library.setter
    def library(self, library) -> None:
        self.main_library = library

    def library_of_switch(self, server_dpid: int):
        """The library of the mobility domain a server belongs to (None: no domain)."""
        domain = self.domain_of_server(server_dpid)
        if domain is None:
            return None
        if domain.templates is None:
            return self.main_library
        return self.domain_libraries.get(domain.name, self.main_library)

    def domain_of_server(self, server_dpid: int):
        """The mobility domain of a server, through its access switch."""
        if not self.domains.explicit:
            return self.domains.of_switch("")
        access = self.access_switch_of(server_dpid)
        if access is None:
            return None
        return self.domains.of_switch(self.fabric.switches[access.dpid].name)

    def template_of(self, binding: Binding):
        """The template in force for a binding (from its domain's library)."""
        library = self.library_of_switch(binding.dpid) or self.main_library
        return library.get(binding.template_id)

    # -- switches and links ------------------------------------------------
    def switch_up(self, dpid: int, role: Role, name: str, observed: Iterable,
                  now: float = 0.0) -> Plan:
        """A switch connected and reported the dynprov flows and meters it holds."""
        observed = list(observed)
        plan = Plan()
        self.links.switch_connected(dpid)
        self.fabric.add_switch(SwitchInfo(dpid, role, name))
        if role.hosts_vms:
            self._restore_bindings(dpid, observed, now, plan)
        self._recompile_all(plan)
        plan.changes.pop(dpid, None)
        self.desired.reconcile(dpid, observed, plan)
        return plan

    def switch_down(self, dpid: int) -> Plan:
        """A switch disconnected: its flows stay desired so it keeps forwarding."""
        self.links.switch_disconnected(dpid)
        return Plan()

    def _fabric_changed(self, plan: Plan, touched, everything: bool = False) -> None:
        self._recompile_all(plan)

    def port_down(self, dpid: int, port: int, deleted: bool = True, now: float = 0.0) -> Plan:
        """A port went away: drop its link and the VM behind it."""
        plan = Plan()
        self._remove_link_at(PortRef(dpid, port), now, plan)
        self._detach(dpid, port)
        waiting = self._waiting_move(dpid, port)
        self._vm_port_gone(dpid, port, f"port {port} of {dpid:016x} went away", plan)
        if self.quarantine.forget_port(dpid, port):
            self._apply_quarantine(dpid, port, plan)
        self.moves.drop_port(dpid, port)
        self._resume_waiting(waiting, now, plan, "its old port went away")
        return plan

    # -- VMs ----------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, eth_src: str, data: bytes = b"",
                  now: float = 0.0, sender_ip: str | None = None,
                  tagged: bool = False, eth_dst: str | None = None) -> PacketVerdict:
        """A packet reached the controller from a VM port.

        A VLAN-tagged frame never comes from a VM (VMs send untagged): it is
        fabric traffic seen before the link was discovered, and is ignored.
        """
        if tagged:
            return PacketVerdict()
        mac = _canonical(eth_src)
        binding = self._by_port.get((dpid, in_port))
        if binding is not None and binding.mac == mac:
            if eth_dst == PROBE_MAC:
                return PacketVerdict(self._alive(binding))
            return self._known_vm_spoke(binding, sender_ip, data, now)
        return self._admit(dpid, in_port, eth_src, now, Detection.PACKET, data,
                           sender_ip=sender_ip)

    def vm_attached(self, dpid: int, port: int, mac: str, now: float = 0.0,
                    iface_id: str | None = None) -> PacketVerdict:
        """The server's OVSDB says VM ``mac`` is attached to ``port`` (it may be silent).

        A VM still running elsewhere is being migrated here by its hypervisor:
        its new port is pre-provisioned, and activated when the VM speaks there
        or its old port goes away.
        """
        mac = _canonical(mac)
        self._attach(dpid, port, mac, iface_id)
        if not self._hosts_vms(dpid):
            return PacketVerdict()   # recorded; a bridge this controller does not run
        clash = self._iface_clash(dpid, port, mac)
        holder = self._by_port.get((dpid, port))
        if holder is not None and holder.mac != mac and \
                self.policy_of(dpid) is not IdentityPolicy.PACKETS and \
                holder.detected_by is not Detection.OVSDB:
            verdict = PacketVerdict()
            if holder.state is VmState.PRE_PROVISIONED:   # its row said another VM
                self._drop_incoming(holder.mac, verdict.plan)
            else:
                self._unbind(holder, verdict.plan, "the hypervisor names another VM on its port")
            verdict.plan.extend(self.vm_attached(dpid, port, mac, now, iface_id).plan)
            return verdict
        current = self.bindings.get(mac)
        if current is not None and (current.dpid, current.port) == (dpid, port):
            return PacketVerdict()   # the hypervisor confirms where the VM already is
        if current is not None and (current.dpid, current.port) != (dpid, port):
            verdict = PacketVerdict()
            self._pre_provision(current, dpid, port, verdict.plan, "its hypervisor created "
                                f"port {port} on {self._name(dpid)}")
            return verdict
        return self._admit(dpid, port, mac, now, Detection.OVSDB, b"")

    def vm_detached(self, dpid: int, port: int, mac: str | None = None,
                    now: float = 0.0) -> Plan:
        """The server's OVSDB no longer lists VM ``mac`` (or any VM) on ``port``."""
        plan = Plan()
        self._detach(dpid, port)
        binding = self._by_port.get((dpid, port))
        if mac is not None and binding is not None and binding.mac != _canonical(mac):
            return plan
        waiting = self._waiting_move(dpid, port)
        self._vm_port_gone(dpid, port, f"detached from port {port} of {self._name(dpid)}",
                           plan)
        self._resume_waiting(waiting, now, plan, "the hypervisor's row for it went away")
        return plan

    def _hosts_vms(self, dpid: int) -> bool:
        role = self.fabric.role(dpid)
        return role is not None and role.hosts_vms

    def flow_removed(self, dpid: int, cookie: int, idle_timeout: bool) -> Plan:
        """A flow with the send-flow-removed flag left a switch on its own."""
        plan = Plan()
        owner = decode_cookie(cookie)
        if owner is None or owner.kind is not CookieKind.BINDING or not idle_timeout:
            return plan
        binding = self.binding_by_id(owner.owner_id)
        if binding is not None and binding.dpid == dpid and binding.state.forwards:
            template = self.template_of(binding)
            idle = template.idle_timeout if template else 0
            self._unbind(binding, plan, f"silent for {idle} s (idle timeout)")
        return plan

    def confirm(self, macs: Iterable[str]) -> None:
        """The switches applied the plans that provisioned these VMs."""
        for mac in macs:
            binding = self.bindings.get(mac)
            if binding is not None and binding.state is VmState.PROVISIONING:
                self._store(replace(binding, state=VmState.ACTIVE))

    def set_library(self, library, domain: str | None = None) -> Plan:
        """Put a new (validated) library in force; re-provision affected VMs in place."""
        plan = Plan()
        if domain is None:
            self.main_library = library
        else:
            self.domain_libraries[domain] = library
        for binding in list(self._all_bindings()):
            template = self.template_of(binding)
            if template is None:
                self._unbind(binding, plan, f"template {binding.template_id} left the library")
                continue
            if (template.name, template.vlan) != (binding.template_name, binding.vlan):
                self._rebind(binding, replace(binding, template_name=template.name,
                                              vlan=template.vlan), plan)
            else:
                self._apply_binding(binding, plan)
                self._refresh_group(self._group_key(binding), plan)
        for dpid, port in self.quarantine.clear():
            self._apply_quarantine(dpid, port, plan)
        if plan.flow_count():
            plan.notes.append(f"re-provisioned VMs in place: {plan.flow_count()} flow changes")
        return plan

    def tick(self, now: float) -> Plan:
        """Time passed: lift quarantines older than QUARANTINE_SECONDS."""
        plan = Plan()
        ports, notes = self.quarantine.expire(now)
        for dpid, port in ports:
            self._apply_quarantine(dpid, port, plan)
        plan.notes += notes
        self._accept_due_moves(now, plan)
        return plan

    # -- admission ------------------------------------------------------------
    def _admit(self, dpid: int, port: int, eth_src: str, now: float,
               detected_by: Detection, data: bytes, sender_ip: str | None = None,
               trusted_move: bool = False) -> PacketVerdict:
        verdict = PacketVerdict()
        role = self.fabric.role(dpid)
        if role is None or not role.hosts_vms or self.fabric.is_link_port(dpid, port):
            return verdict
        mac = _canonical(eth_src)
        holder = self._by_port.get((dpid, port))
        if holder is not None:
            self._refuse(verdict, mac, None, dpid, port, now,
                         f"port already bound to VM {holder.mac}: spoofed source MAC")
            return verdict
        refusal = self._identity_refusal(dpid, port, mac, detected_by, now)
        if refusal is not None:
            self._refuse(verdict, mac, None, dpid, port, now, refusal)
            return verdict
        existing = self.bindings.get(mac)
        if existing is not None and existing.state is VmState.RESTARTING:
            verdict.provisioned = self._come_back(existing, dpid, port, data, verdict.plan)
            return verdict
        if existing is not None and not trusted_move and detected_by is Detection.PACKET \
                and not self._move_believed(existing, dpid, port, now, verdict):
            return verdict
        template = self._select(mac, eth_src, dpid, port, now, verdict)
        if template is None:
            return verdict
        binding = Binding(self._allocate_binding_id(), mac, template.template_id,
                          template.name, template.vlan, dpid, port, since=now,
                          ip=existing.ip if existing else None, detected_by=detected_by,
                          device=self._device_of(dpid),
                          seen_ip=sender_ip or (existing.seen_ip if existing else None))
        plan = verdict.plan
        if existing is not None:
            self._unbind(existing, plan, f"moved to port {port} of {self._name(dpid)}")
        self._drop_incoming(mac, plan)
        self._bind(binding, plan)
        if data:
            plan.packet_outs.append(PacketOut(dpid, port, data))
        verdict.provisioned = binding
        return verdict

    def _select(self, mac: str, raw_mac: str, dpid: int, port: int, now: float,
                verdict: PacketVerdict):
        """Decode the MAC and select its template; quarantine the MAC on failure."""
        try:
            template_id = self.scheme.decode(raw_mac)
        except IdentifierError as error:
            self._refuse(verdict, mac, None, dpid, port, now, str(error))
            return None
        domain = self.domain_of_server(dpid)
        if domain is None:
            self._refuse(verdict, mac, template_id, dpid, port, now,
                         f"server {self._name(dpid)} is in no mobility domain "
                         f"(its access switch is unknown or listed in no domain)")
            return None
        template = self.library_of_switch(dpid).get(template_id)
        if template is None:
            where = ("the library" if not self.domains.explicit
                     else f"the library of mobility domain '{domain.name}'")
            self._refuse(verdict, mac, template_id, dpid, port, now,
                         f"template {template_id} (0x{template_id:04X}) is not in {where}")
        return template

    def _refuse(self, verdict: PacketVerdict, mac: str, template_id: int | None,
                dpid: int, port: int, now: float, reason: str) -> None:
        refusal, first, note = self.quarantine.refuse(
            Refusal(mac, template_id, reason, dpid, port, since=now))
        verdict.refusal, verdict.first_refusal = refusal, first
        if note:
            verdict.plan.notes.append(note)
        if first:
            self._apply_quarantine(dpid, port, verdict.plan)

    def _apply_quarantine(self, dpid: int, port: int, plan: Plan) -> None:
        self.desired.replace(quarantine_owner(port), self.quarantine.flows(dpid, port), plan,
                             dpid=dpid)

    def _known_vm_spoke(self, binding: Binding, sender_ip: str | None, data: bytes,
                        now: float) -> PacketVerdict:
        """A packet from a VM on its own port reached the controller."""
        verdict = PacketVerdict()
        if binding.state is VmState.PRE_PROVISIONED:
            self._activate(binding, verdict.plan, "announced itself")
            verdict.provisioned = self.bindings.get(binding.mac)
            return verdict   # the pipeline already forwarded the packet
        if binding.state is VmState.RESTARTING:
            verdict.provisioned = self._come_back(binding, binding.dpid, binding.port, data,
                                                  verdict.plan)
            return verdict
        template = self.template_of(binding)
        if (sender_ip is None or binding.ip is not None or template is None
                or not template.virtual_switch.bind_ip):
            return verdict
        learned = replace(binding, ip=sender_ip)
        self._store(learned)
        self._apply_binding(learned, verdict.plan)
        verdict.plan.notes.append(f"VM {binding.mac} bound to IP {sender_ip}")
        if data:
            verdict.plan.packet_outs.append(PacketOut(binding.dpid, binding.port, data))
        return verdict

    # -- bindings -------------------------------------------------------------
    def _bind(self, binding: Binding, plan: Plan) -> None:
        self._store(binding)
        self._apply_binding(binding, plan)
        self._refresh_group(self._group_key(binding), plan)
        self._refresh_vlans({binding.vlan}, plan)
        self._lift_quarantine(binding, plan)
        if binding.state is VmState.PROVISIONING:
            plan.confirms.append(binding.mac)

    def _lift_quarantine(self, binding: Binding, plan: Plan) -> None:
        if self.quarantine.release_mac(binding.mac, binding.dpid, binding.port):
            self._apply_quarantine(binding.dpid, binding.port, plan)

    def _unbind(self, binding: Binding, plan: Plan, reason: Optional[str],
                final_state: VmState = VmState.DEPROVISIONED) -> None:
        key = self._group_key(binding)
        self._drop(binding)
        self.history[binding.mac] = final_state
        self.desired.replace(binding.owner, set(), plan)
        self._end_liveness(binding, plan)
        self.moves.forget(binding.mac)
        self._notified.pop(binding.mac, None)
        self._refresh_group(key, plan)
        self._refresh_vlans({binding.vlan}, plan)
        if reason:
            plan.notes.append(f"deprovisioned VM {binding.mac} (binding {binding.binding_id}):"
                              f" {reason}")

    def _rebind(self, old: Binding, new: Binding, plan: Plan) -> None:
        """Replace a binding's flows with a changed binding's, make-before-break."""
        old_key = self._group_key(old)
        self._drop(old)
        self._store(new)
        if old.owner != new.owner:
            self.desired.replace(old.owner, set(), plan)
        self._apply_binding(new, plan)
        for key in {old_key, self._group_key(new)}:
            self._refresh_group(key, plan)
        self._refresh_vlans({old.vlan, new.vlan}, plan)

    def _apply_binding(self, binding: Binding, plan: Plan) -> None:
        template = self.template_of(binding)
        placement = Placement(binding, template, binding.binding_id in self._moved)
        self.desired.replace(binding.owner, binding_flows(self.fabric, placement), plan)

    def _store(self, binding: Binding) -> None:
        table = self.incoming if binding.state is VmState.PRE_PROVISIONED else self.bindings
        table[binding.mac] = binding
        self._by_port[(binding.dpid, binding.port)] = binding
        self._ids_in_use.add(binding.binding_id)
        self.history[binding.mac] = binding.state

    def _drop(self, binding: Binding) -> None:
        table = self.incoming if binding.state is VmState.PRE_PROVISIONED else self.bindings
        if _same(table.get(binding.mac), binding):
            del table[binding.mac]
        if _same(self._by_port.get((binding.dpid, binding.port)), binding):
            del self._by_port[(binding.dpid, binding.port)]
        if not any(b.binding_id == binding.binding_id for b in self._all_bindings()):
            self._ids_in_use.discard(binding.binding_id)
        self._moved.discard(binding.binding_id)
        for members in self._groups.values():
            members.discard(binding.mac)

    def _allocate_binding_id(self) -> int:
        candidate = self._next_binding_id
        while candidate in self._ids_in_use:
            candidate = candidate % MAX_BINDING_ID + 1
        self._next_binding_id = candidate % MAX_BINDING_ID + 1
        return candidate

    def _holds_binding_id(self, binding_id: int) -> bool:
        return any(b.binding_id == binding_id for b in self._all_bindings())

    def _all_bindings(self) -> Iterator[Binding]:
        yield from self.bindings.values()
        yield from self.incoming.values()

    def _restore_bindings(self, dpid: int, observed: List, now: float, plan: Plan) -> None:
        """Rebuild bindings from a server's own flows (after a controller restart)."""
        for spec in observed:
            owner = decode_cookie(getattr(spec, "cookie", 0))
            if (not isinstance(spec, FlowSpec) or owner is None
                    or owner.kind is not CookieKind.BINDING
                    or spec.table_id != Table.CLASSIFY or spec.priority != Priority.BINDING
                    or not spec.instructions):
                continue
            fields = spec.match_dict()
            mac, port = fields.get("eth_src"), fields.get("in_port")
            template = self.main_library.get(owner.template_id)
            if (mac is None or port is None or template is None or mac in self.bindings
                    or owner.owner_id in self._ids_in_use):
                continue
            binding = Binding(owner.owner_id, mac, template.template_id, template.name,
                              template.vlan, dpid, port, since=now,
                              ip=_bound_ip(observed, owner.cookie),
                              detected_by=Detection.RESTORED, state=VmState.ACTIVE)
            self._store(binding)
            plan.notes.append(f"restored VM {mac} (binding {binding.binding_id}) "
                              f"from the flows of {dpid:016x} port {port}")

    # -- recompilation -------------------------------------------------------
    def _group_key(self, binding: Binding) -> Optional[GroupKey]:
        access = self.access_port_of(binding)
        if access is None or self.fabric.role(access.dpid) is not Role.ACCESS:
            return None
        return GroupKey(access.dpid, access.port, binding.vlan)

    def _refresh_group(self, key: Optional[GroupKey], plan: Plan) -> None:
        """Admission and port ACL of one VLAN on one access port; the template merge."""
        if key is None:
            return
        members = [b for b in self._all_bindings() if self._group_key(b) == key
                   and (b.state.forwards or b.state is VmState.PRE_PROVISIONED)]
        self._groups[key] = {b.mac for b in members}
        owner = port_group_owner(key.port, key.vlan)
        if not members:
            self._groups.pop(key, None)
            self.desired.replace(owner, set(), plan, dpid=key.dpid)
            return
        sides = {self.template_of(b).access_port for b in members}
        merged = len(sides) > 1
        side = None if merged else next(iter(sides))
        self.desired.replace(owner, port_group_flows(key.dpid, key.port, key.vlan, owner, side),
                             plan, dpid=key.dpid)
        for binding in members:
            if (binding.binding_id in self._moved) != merged:
                (self._moved.add if merged else self._moved.discard)(binding.binding_id)
                self._apply_binding(binding, plan)
                if merged:
                    plan.notes.append(
                        f"VM {binding.mac}: port-side rules of template {binding.template_id} "
                        f"moved to its virtual-switch port (templates behind access port "
                        f"{key.port} of {key.dpid:016x} in VLAN {key.vlan} conflict)")

    def _refresh_vlans(self, vlans: Iterable[int], plan: Plan) -> None:
        for vlan in sorted(set(vlans)):
            members = [b for b in self._all_bindings() if b.vlan == vlan]
            self.desired.replace(vlan_owner(vlan), vlan_flows(self.fabric, vlan, members), plan)

    def _recompile_all(self, plan: Plan) -> None:
        infra: Set = set()
        for dpid in self.fabric.switches:
            infra |= infra_flows(self.fabric, dpid)
        self.desired.replace(INFRA_OWNER, infra, plan)
        for binding in list(self._all_bindings()):
            device = self._device_of(binding.dpid)
            if device != binding.device:
                self._store(replace(binding, device=device))
        keys = set(self._groups) | {self._group_key(b) for b in self._all_bindings()}
        for key in sorted(k for k in keys if k is not None):
            self._refresh_group(key, plan)
        for binding in self._all_bindings():
            self._apply_binding(binding, plan)
        vlans = {b.vlan for b in self._all_bindings()}
        vlans |= {o.owner_id for o in self.desired.owners() if o.kind is CookieKind.VLAN}
        self._refresh_vlans(vlans, plan)

    # -- queries -------------------------------------------------------------
    @property
    def refused(self) -> Dict[str, Refusal]:
        """Refused MACs and why (the REST API lists them)."""
        return self.quarantine.refused

    def binding_by_id(self, binding_id: int) -> Binding | None:
        """The binding with this id, if any."""
        return next((b for b in self._all_bindings() if b.binding_id == binding_id), None)

    def access_switch_of(self, server_dpid: int) -> PortRef | None:
        """The access-switch port a server hangs off (on the tree)."""
        for port in sorted(self.fabric.tree_ports(server_dpid)):
            peer = self.fabric.peer(PortRef(server_dpid, port))
            if peer is not None and not self.fabric.role(peer.dpid).hosts_vms:
                return peer
        return None

    def access_port_of(self, binding: Binding) -> PortRef | None:
        """The access-switch port the binding's server hangs off (on the tree)."""
        return self.access_switch_of(binding.dpid)

    def bindings_of_device(self, device: int) -> List[Binding]:
        """The VMs one network device (access switch) holds, in every state."""
        held = list(self._all_bindings()) + list(self.outgoing.values())
        return sorted((b for b in held if b.device == device), key=lambda b: b.mac)

    def moved_port_rules(self) -> Set[str]:
        """MACs whose template's port-side rules were moved to their vswitch port."""
        return {b.mac for b in self._all_bindings() if b.binding_id in self._moved}

    def _device_of(self, server_dpid: int) -> int | None:
        access = self.access_switch_of(server_dpid)
        return access.dpid if access is not None else None

    def _announce(self, binding, plan, at_once: bool = False) -> None:
        """The pre-refactor engine knew no shared fabric: nothing to announce (the
        live VmLifecycle mixin calls this on activation)."""

    def _name(self, dpid: int) -> str:
        info = self.fabric.switches.get(dpid)
        return info.name if info and info.name else f"{dpid:016x}"


def _same(stored: Optional[Binding], binding: Binding) -> bool:
    return stored is not None and stored.binding_id == binding.binding_id


def _bound_ip(observed: List, cookie: int) -> Optional[str]:
    for spec in observed:
        if (isinstance(spec, FlowSpec) and spec.cookie == cookie
                and spec.table_id == Table.ANTI_SPOOF):
            ip = spec.match_dict().get("ipv4_src")
            if isinstance(ip, str) and ip != "0.0.0.0":
                return ip
    return None


def _canonical(mac: str) -> str:
    try:
        return format_mac(parse_mac(mac))
    except IdentifierError:
        return mac.lower()


def binding_flows(fabric, placement):
    """The old compilation: server side, then a scan of every switch for the path."""
    binding = placement.binding
    state = binding.state
    if state is VmState.SUSPENDED:
        return {flow(binding.dpid, Table.CLASSIFY, Priority.BINDING,
                     make_match(in_port=binding.port, eth_src=binding.mac),
                     binding.owner.cookie)}
    if state in (VmState.RESTARTING, VmState.DEPROVISIONED, VmState.DETECTED):
        return set()
    entries = _server_side(placement)
    if state is VmState.PRE_PROVISIONED:
        return entries
    cookie = binding.owner.cookie
    vid = tagged(binding.vlan)
    for dpid, info in fabric.switches.items():
        if info.role.hosts_vms:
            continue
        port = fabric.next_hop_port(dpid, binding.dpid)
        if port is None:
            continue
        match = make_match(vlan_vid=vid, eth_dst=binding.mac)
        if port in _server_facing(fabric, dpid):
            entries.add(flow(dpid, Table.FORWARD, Priority.BINDING, match, cookie,
                             metadata=port, goto=Table.TO_VM_PORT_ACL))
        else:
            entries.add(flow(dpid, Table.FORWARD, Priority.BINDING, match, cookie,
                             actions=(Output(port),)))
    return entries


def _server_facing(fabric, dpid):
    if fabric.role(dpid) is not Role.ACCESS:
        return set()
    return {port for port in fabric.link_ports(dpid)
            if fabric.role(fabric.peer(PortRef(dpid, port)).dpid).hosts_vms}


def _is_ours(entry) -> bool:
    from ryu_apps.core.pipeline import is_dynprov_meter
    from ryu_apps.core.flowspec import MeterSpec
    if isinstance(entry, MeterSpec):
        return is_dynprov_meter(entry.meter_id)
    return decode_cookie(entry.cookie) is not None


class DesiredFlows:
    """The flows each owner should have installed, across all switches."""

    def __init__(self) -> None:
        self._by_owner: Dict = {}

    def replace(self, owner, flows: Set, plan: Plan,
                dpid: int | None = None) -> None:
        """Set the owner's flows (only on ``dpid`` if given); record the diff."""
        old = self._by_owner.get(owner, set())
        if dpid is not None:
            kept = {f for f in old if f.dpid != dpid}
            old = {f for f in old if f.dpid == dpid}
            flows = {f for f in flows if f.dpid == dpid}
            merged = kept | flows
        else:
            merged = set(flows)
        diff_flows(old, flows, plan)
        if merged:
            self._by_owner[owner] = merged
        else:
            self._by_owner.pop(owner, None)

    def owners(self) -> List:
        """Every owner with flows."""
        return sorted(self._by_owner)

    def flows_of(self, owner) -> Set:
        """The owner's desired flows."""
        return set(self._by_owner.get(owner, ()))

    def on_switch(self, dpid: int) -> Set:
        """Every desired flow on one switch."""
        return {f for flows in self._by_owner.values() for f in flows if f.dpid == dpid}

    def reconcile(self, dpid: int, observed: Iterable[FlowSpec], plan: Plan) -> None:
        """Record what brings a switch's observed dynprov flows to the desired ones.

        ``observed`` holds the flows read back from the switch; flows whose
        cookie is not dynprov's are ignored and so never deleted.
        """
        ours = [f for f in observed if _is_ours(f)]
        diff_flows(ours, self.on_switch(dpid), plan)
