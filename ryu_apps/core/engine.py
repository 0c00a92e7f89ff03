"""The network devices' control logic: events in, plans out (pure).

The Ryu app feeds it what the switches report (a switch connected with the
flows it holds, a link seen by LLDP, a packet from a VM, a port gone, a flow
that idled out, a VM listed in OVSDB) and what the external management entity
says (see :mod:`ryu_apps.core.lifecycle`), and sends the
:class:`~ryu_apps.core.flow_plan.Plan` it returns. It never sends, reads a
clock or touches a socket: time comes in as ``now``.

Each access switch is a network device: a VM belongs to the device its server
hangs off, has a :class:`~ryu_apps.core.binding.VmState` there, and devices
talk to each other only through :mod:`ryu_apps.core.device_messages`, which a
plan carries out and the app delivers.
"""

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
from ryu_apps.core.fabric import SHARED_FABRIC, Fabric, PortRef, Role, RootedTree, SwitchInfo
from ryu_apps.core.flow_compiler import (
    Placement,
    TransitPath,
    port_group_flows,
    transit_path,
    vlan_switch_flows,
)
from ryu_apps.core.flow_plan import DesiredFlows, PacketOut, Plan
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.switch_flows import infra_flows
from ryu_apps.core.identifiers import IdentifierError, IdentifierScheme, canonical_mac
from ryu_apps.core.identity import MOVE_HOLD_SECONDS, PROBE_MAC, IdentityPolicy, MoveGuard
from ryu_apps.core.lifecycle import VmLifecycle
from ryu_apps.core.link_guard import LinkGuard
from ryu_apps.core.shared_fabric import SharedFabric
from ryu_apps.core.topology_events import TopologyEvents
from ryu_apps.core.vm_identity import VmIdentity
from ryu_apps.core.pipeline import MAX_BINDING_ID, Priority, Table
from ryu_apps.core.binding_index import BindingIndex
from ryu_apps.core.vlan_flooding import VlanFlooding
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


class ProvisioningEngine(VmLifecycle, SharedFabric, VmIdentity, TopologyEvents):
    """Bindings, fabric and desired flows of one controller (pure state machine)."""

    def __init__(self, library, scheme: IdentifierScheme,
                 domains: DomainMap | None = None,
                 domain_libraries: Dict[str, object] | None = None,
                 identity: IdentityPolicy = IdentityPolicy.AUTO,
                 move_hold: float = MOVE_HOLD_SECONDS) -> None:
        self._settings = (scheme, domains, identity, move_hold)
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
        self._attached_at: Dict[str, Set[tuple]] = {}   # MAC -> its OVSDB ports
        self._iface_ids: Dict[tuple, str] = {}    # (dpid, port) -> OVSDB iface-id
        self._notified: Dict[str, int] = {}       # MAC -> server a migration notice named
        #: Whom to believe about a port's VM where the domain does not say.
        self.identity_default = identity
        self.moves = MoveGuard(hold=move_hold)
        self.links = LinkGuard()
        self._ports_down: Set[tuple] = set()      # (dpid, port) whose link is down
        self._unannounced: Set[tuple] = set()     # VM ports to announce when their link is up
        self._expected_ips: Dict[str, str] = {}   # MAC -> IPv4 of a VM handed over to us
        self._by_port: Dict[tuple, Binding] = {}
        self._ids_in_use: Set[int] = set()
        self._next_binding_id = 1
        #: bindings and incoming by id, server, VLAN, template and device
        self._index = BindingIndex()
        #: groups (VLAN on an access port) with flows -> (server behind, side compiled)
        self._group_server: Dict[GroupKey, tuple] = {}
        self._server_groups: Dict[int, Set[GroupKey]] = {}
        self._moved: Set[int] = set()  # bindings whose port-side rules sit on their vswitch port
        self.history: Dict[str, VmState] = {}     # last state of every VM ever seen
        self._tree = self.fabric.rooted_tree()
        self._flooding = VlanFlooding(self._tree)
        self._dirty_vlans: Dict[int, Set[int]] = {}   # vlan -> switches to recompute
        self._paths: Dict[int, TransitPath] = {}      # server -> its path (shared by its VMs)

    def reset(self) -> None:
        """Forget every switch, link and VM; keep the libraries and settings. The app
        then relearns everything from the switches, as after a restart."""
        scheme, domains, identity, move_hold = self._settings
        ProvisioningEngine.__init__(self, self.main_library, scheme, domains,
                                    self.domain_libraries, identity, move_hold)

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
        known = dpid in self.fabric.switches
        if self.fabric.add_switch(SwitchInfo(dpid, role, name)):
            # a new switch joins alone; a known one with a new role or name may
            # change every path, every device and every domain
            self._fabric_changed(plan, {dpid} | self._neighbours(dpid), everything=known)
        if role.hosts_vms:
            self._restore_bindings(dpid, observed, now, plan)
        else:
            self._restore_shared_uplinks(dpid, observed, plan)
        plan.changes.pop(dpid, None)
        self.desired.reconcile(dpid, observed, plan)
        return plan

    def switch_down(self, dpid: int) -> Plan:
        """A switch disconnected: its flows stay desired so it keeps forwarding."""
        self.links.switch_disconnected(dpid)
        return Plan()

    def port_down(self, dpid: int, port: int, deleted: bool = True, now: float = 0.0) -> Plan:
        """A port went away (or its link went down): drop its link and the VM behind it.

        A VM whose MAC waits as a conflict elsewhere moves there (its old port is gone).
        """
        plan = Plan()
        self._unannounced.discard((dpid, port))
        if deleted:
            self._ports_down.discard((dpid, port))
        else:
            self._ports_down.add((dpid, port))
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

        A VLAN-tagged frame never comes from a VM (VMs send untagged; the
        pipeline drops them): one that still arrives is fabric traffic seen
        before its link was discovered, and is ignored. A frame to PROBE_MAC
        from a bound VM is its answer to the liveness probe.
        """
        if tagged:
            return PacketVerdict()
        mac = canonical_mac(eth_src)
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
        or its old port goes away. Where the identity policy believes the
        hypervisor, a VM bound to this port by its packets with another MAC
        is deprovisioned: the hypervisor says whose port it is.
        """
        mac = canonical_mac(mac)
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
                self._unbind(holder, verdict.plan, f"the hypervisor (OVSDB) names VM {mac} "
                                                   f"on its port {port} of {self._name(dpid)}")
            verdict.plan.extend(self.vm_attached(dpid, port, mac, now, iface_id).plan)
            return verdict
        current = self.bindings.get(mac)
        if current is not None and (current.dpid, current.port) == (dpid, port):
            return PacketVerdict()   # the hypervisor confirms where the VM already is
        if current is not None and (current.dpid, current.port) != (dpid, port):
            verdict = PacketVerdict()
            if clash is not None:
                verdict.plan.warnings.append(clash)
            self._pre_provision(current, dpid, port, verdict.plan, "its hypervisor created "
                                f"port {port} on {self._name(dpid)}")
            return verdict
        if current is None and (dpid, port) in self._ports_down:
            return self._expect(dpid, port, mac, now)
        return self._admit(dpid, port, mac, now, Detection.OVSDB, b"")

    def _expect(self, dpid: int, port: int, mac: str, now: float) -> PacketVerdict:
        """A VM unknown here is attached to a port whose link is down: it is not
        running on it yet (a hypervisor creates the port before the VM resumes there,
        maybe coming from another process's server). Pre-provision the port, its
        frames delivered both there and toward the shared fabric; the link coming up
        or the VM's first frame activates it."""
        verdict = PacketVerdict()
        role = self.fabric.role(dpid)
        if role is None or not role.hosts_vms or self.fabric.is_link_port(dpid, port) \
                or (dpid, port) in self._by_port or mac in self.incoming:
            return verdict
        template = self._select(mac, mac, dpid, port, now, verdict)
        if template is None:
            return verdict
        incoming = Binding(self._allocate_binding_id(), mac, template.template_id,
                           template.name, template.vlan, dpid, port, since=now,
                           ip=self._expected_ips.pop(mac, None),
                           detected_by=Detection.OVSDB, device=self._device_of(dpid),
                           state=VmState.PRE_PROVISIONED)
        plan = verdict.plan
        self._store(incoming)
        self._apply_binding(incoming, plan)
        self._toward_shared_fabric_too(incoming, plan, expected=True)
        self._refresh_group(self._group_key(incoming), plan)
        self._refresh_vlans({incoming.vlan}, plan)
        self._lift_quarantine(incoming, plan)
        plan.notes.append(f"pre-provisioned VM {mac} on {self._name(dpid)} port {port} "
                          f"(binding {incoming.binding_id}): attached to a port whose link "
                          "is down; activated when it comes up or the VM speaks")
        return verdict

    def vm_detached(self, dpid: int, port: int, mac: str | None = None,
                    now: float = 0.0) -> Plan:
        """The server's OVSDB no longer lists VM ``mac`` (or any VM) on ``port``; a
        conflict that waited for the VM elsewhere is its move."""
        plan = Plan()
        self._detach(dpid, port)
        binding = self._by_port.get((dpid, port))
        if mac is not None and binding is not None and binding.mac != canonical_mac(mac):
            return plan
        waiting = self._waiting_move(dpid, port)
        self._vm_port_gone(dpid, port, f"detached from port {port} of {self._name(dpid)}",
                           plan)
        self._resume_waiting(waiting, now, plan, "the hypervisor's row for it went away")
        return plan

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
                active = replace(binding, state=VmState.ACTIVE)
                self._store(active)
                # both states forward: the same flows; keep one binding object, not two
                self.desired.retarget(active.owner, self._placement(active))

    def cede(self, mac: str) -> Plan:
        """Another process owns VM ``mac`` now (its claim in the shared store won):
        deprovision it here, a pre-provisioned port of it too."""
        plan = Plan()
        mac = canonical_mac(mac)
        binding = self.bindings.get(mac)
        if binding is not None:
            self._unbind(binding, plan, "another process owns it now")
        self._drop_incoming(mac, plan)
        return plan

    def set_library(self, library, domain: str | None = None) -> Plan:
        """Put a new (validated) library in force; re-provision affected VMs in place."""
        plan = Plan()
        if domain is None:
            previous, self.main_library = self.main_library, library
        else:
            previous = self.domain_libraries.get(domain, self.main_library)
            self.domain_libraries[domain] = library
        for binding in self._bindings_of_templates(_changed_templates(previous, library)):
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
        """Time passed: lift quarantines older than QUARANTINE_SECONDS; accept the moves
        whose old location stayed silent to the liveness probe."""
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
        """Provision MAC ``eth_src`` on this port if its identity and template allow.

        A MAC bound elsewhere moves here only if the move is believed
        (:meth:`_move_believed`; ``trusted_move``: it was already).
        """
        verdict = PacketVerdict()
        role = self.fabric.role(dpid)
        if role is None or not role.hosts_vms or self.fabric.is_link_port(dpid, port):
            return verdict
        mac = canonical_mac(eth_src)
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
        ip = existing.ip if existing else self._expected_ips.pop(mac, None)
        binding = Binding(self._allocate_binding_id(), mac, template.template_id,
                          template.name, template.vlan, dpid, port, since=now,
                          ip=ip, detected_by=detected_by,
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
        # the group first: it decides whether the binding carries its port-side rules
        self._refresh_group(self._group_key(binding), plan)
        self._apply_binding(binding, plan)
        self._refresh_vlans({binding.vlan}, plan)
        self._lift_quarantine(binding, plan)
        if binding.state is VmState.PROVISIONING:
            plan.confirms.append(binding.mac)
        self._announce(binding, plan)

    def _lift_quarantine(self, binding: Binding, plan: Plan) -> None:
        """The VM is believed at its binding's port: frames it sent there before
        (refused then) are no longer dropped."""
        if self.quarantine.release_mac(binding.mac, binding.dpid, binding.port):
            self._apply_quarantine(binding.dpid, binding.port, plan)

    def _unbind(self, binding: Binding, plan: Plan, reason: Optional[str],
                final_state: VmState = VmState.DEPROVISIONED) -> None:
        key = self._group_key(binding)
        self._drop(binding)
        self.history[binding.mac] = final_state
        self.desired.replace(binding.owner, set(), plan)
        self._end_migration_paths(binding, plan)
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
        if new.vlan != old.vlan or not old.state.forwards:
            self._announce(new, plan)

    def _apply_binding(self, binding: Binding, plan: Plan) -> None:
        self.desired.place(binding.owner, self._placement(binding), plan)

    def _placement(self, binding: Binding) -> Placement:
        return Placement(binding, self.template_of(binding), binding.binding_id in self._moved,
                         self._path(binding.dpid))

    def _path(self, server: int) -> TransitPath:
        path = self._paths.get(server)
        if path is None:
            path = self._paths[server] = transit_path(self.fabric, server)
        return path

    def _store(self, binding: Binding) -> None:
        table = self.incoming if binding.state is VmState.PRE_PROVISIONED else self.bindings
        previous = table.get(binding.mac)
        table[binding.mac] = binding
        if previous is None or not self._index.swap(previous, binding):
            if previous is not None:
                self._unindex(previous)
            self._index.add(binding)
            self._vlan_member(binding, +1)
        elif previous.state.forwards != binding.state.forwards or \
                _present(previous) != _present(binding) or previous.port != binding.port:
            self._vlan_member(previous, -1)
            self._vlan_member(binding, +1)
        self._by_port[(binding.dpid, binding.port)] = binding
        self._ids_in_use.add(binding.binding_id)
        self.history[binding.mac] = binding.state

    def _drop(self, binding: Binding) -> None:
        table = self.incoming if binding.state is VmState.PRE_PROVISIONED else self.bindings
        stored = table.get(binding.mac)
        if _same(stored, binding):
            del table[binding.mac]
            self._unindex(stored)
        if _same(self._by_port.get((binding.dpid, binding.port)), binding):
            del self._by_port[(binding.dpid, binding.port)]
        if not self._holds_binding_id(binding.binding_id):
            self._ids_in_use.discard(binding.binding_id)

    def _unindex(self, binding: Binding) -> None:
        self._index.remove(binding)
        self._moved.discard(binding.binding_id)
        self._vlan_member(binding, -1)

    def _vlan_member(self, binding: Binding, delta: int) -> None:
        """A binding joins (+1) or leaves (-1) its VLAN on its server: mark what to redo."""
        dirty = self._dirty_vlans.setdefault(binding.vlan, set())
        dirty.add(binding.dpid)
        if binding.state.forwards:
            change = self._flooding.join if delta > 0 else self._flooding.leave
            dirty |= change(binding.vlan, binding.dpid)
            self._shared_fabric_member(binding.vlan, dirty)

    def _allocate_binding_id(self) -> int:
        candidate = self._next_binding_id
        while candidate in self._ids_in_use:
            candidate = candidate % MAX_BINDING_ID + 1
        self._next_binding_id = candidate % MAX_BINDING_ID + 1
        return candidate

    def _holds_binding_id(self, binding_id: int) -> bool:
        """Whether a current or incoming binding has this id (an index lookup)."""
        return binding_id in self._index.by_id

    def _all_bindings(self) -> Iterator[Binding]:
        yield from self.bindings.values()
        yield from self.incoming.values()

    def _bindings_of_templates(self, template_ids: Iterable[int]) -> List[Binding]:
        found: List[Binding] = []
        for template_id in sorted(set(template_ids)):
            found += self._index.of_template(template_id)
        return found

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
                              detected_by=Detection.RESTORED, state=VmState.ACTIVE,
                              device=self._device_of(dpid))
            self._store(binding)
            self._refresh_group(self._group_key(binding), plan)
            self._apply_binding(binding, plan)
            self._refresh_vlans({binding.vlan}, plan)
            plan.notes.append(f"restored VM {mac} (binding {binding.binding_id}) "
                              f"from the flows of {dpid:016x} port {port}")

    # -- recompilation -------------------------------------------------------
    def _group_key(self, binding: Binding) -> Optional[GroupKey]:
        return self._server_group(binding.dpid, binding.vlan)

    def _server_group(self, server: int, vlan: int) -> Optional[GroupKey]:
        access = self.access_switch_of(server)
        if access is None or self.fabric.role(access.dpid) is not Role.ACCESS:
            return None
        return GroupKey(access.dpid, access.port, vlan)

    def _group_members(self, key: GroupKey) -> List[Binding]:
        peer = self.fabric.peer(PortRef(key.dpid, key.port))
        if peer is None or self._server_group(peer.dpid, key.vlan) != key:
            return []
        return [b for b in self._index.on_server(peer.dpid, key.vlan) if _present(b)]

    def _refresh_group(self, key: Optional[GroupKey], plan: Plan) -> None:
        """Admission and port ACL of one VLAN on one access port; the template merge."""
        if key is None:
            return
        members = self._group_members(key)
        owner = port_group_owner(key.port, key.vlan)
        old_server, old_side = self._group_server.pop(key, (None, None))
        if old_server is not None:
            self._server_groups.get(old_server, set()).discard(key)
        if not members:
            self.desired.replace(owner, set(), plan, dpid=key.dpid)
            return
        server = members[0].dpid
        sides = {self.template_of(b).access_port
                 for b in {b.template_id: b for b in members}.values()}
        merged = len(sides) > 1
        side = None if merged else next(iter(sides))
        self._group_server[key] = (server, side)
        self._server_groups.setdefault(server, set()).add(key)
        if old_server != server or old_side is not side or side is None:
            self.desired.replace(owner, port_group_flows(key.dpid, key.port, key.vlan, owner,
                                                         side), plan, dpid=key.dpid)
        for binding in sorted(members, key=lambda b: b.mac):
            if (binding.binding_id in self._moved) != merged:
                (self._moved.add if merged else self._moved.discard)(binding.binding_id)
                self._apply_binding(binding, plan)
                if merged:
                    plan.notes.append(
                        f"VM {binding.mac}: port-side rules of template {binding.template_id} "
                        f"moved to its virtual-switch port (templates behind access port "
                        f"{key.port} of {key.dpid:016x} in VLAN {key.vlan} conflict)")

    def _refresh_vlans(self, vlans: Iterable[int], plan: Plan) -> None:
        """Recompute the VLANs' shared flows on the switches whose inputs changed."""
        for vlan in sorted(set(vlans)):
            dirty = self._dirty_vlans.pop(vlan, None)
            if not dirty:
                continue
            owner = vlan_owner(vlan)
            dirty.discard(SHARED_FABRIC)
            for dpid in sorted(dirty):
                self.desired.replace(owner, self._vlan_flows_on(vlan, dpid), plan, dpid=dpid)

    def _vlan_flows_on(self, vlan: int, dpid: int) -> Set:
        local: Set[int] = set()
        present = False
        for binding in self._index.on_server(dpid, vlan):
            if binding.state.forwards:
                local.add(binding.port)
            present = present or _present(binding)
        return vlan_switch_flows(self.fabric, vlan, dpid, self._flooding.flood_ports(vlan, dpid),
                                 sorted(local), present)

    def _fabric_changed(self, plan: Plan, touched: Set[int], everything: bool = False) -> None:
        """Switches or links changed: redo what depends on them, and only that.

        ``touched``: switches whose own links or role changed (their
        infrastructure flows and every VLAN's flows on them are redone).
        Servers whose way through the fabric changed get new paths, groups and
        devices; VLAN flood ports are recomputed where the tree changed them.
        """
        old_tree, tree = self._tree, self.fabric.rooted_tree()
        self._tree = tree
        for dpid in sorted(touched):
            if dpid in self.fabric.switches:
                self.desired.replace(INFRA_OWNER, infra_flows(self.fabric, dpid), plan,
                                     dpid=dpid)
        servers = self._index.servers() | set(self._server_groups) | set(self._paths)
        if everything:
            affected = servers
        else:
            affected = self._servers_moved(old_tree, tree, servers) | (servers & touched)
        flood_changes = self._flooding.rebuild(tree)
        for vlan in set(flood_changes) | set(self._index_vlans()):
            dirty = self._dirty_vlans.setdefault(vlan, set())
            dirty |= flood_changes.get(vlan, set()) | touched
        for server in sorted(affected):
            self._server_moved(server, plan)
        self._refresh_vlans(list(self._dirty_vlans), plan)

    def _index_vlans(self) -> Set[int]:
        return set(self._flooding.vlans()) | set(self._dirty_vlans)

    def _servers_moved(self, old: RootedTree, new: RootedTree,
                       servers: Set[int]) -> Set[int]:
        """Servers whose way to any other switch may differ between two trees."""
        added, removed = old.changed_edges(new)
        affected: Set[int] = set()
        for edges, tree in ((removed, old), (added, new)):
            for (u, _), (v, _) in edges:
                child = u if tree.parent.get(u, (None,))[0] == v else v
                side = tree.subtree(child)
                if any(not self._hosts_vms(d) for d in side):
                    return set(servers)
                affected.update(side)
        return affected & servers

    def _hosts_vms(self, dpid: int) -> bool:
        role = self.fabric.role(dpid)
        return role is not None and role.hosts_vms

    def _server_moved(self, server: int, plan: Plan) -> None:
        """Redo one server's path, access-port groups and device after a fabric change."""
        path = transit_path(self.fabric, server)
        old_path = self._paths.get(server)
        if old_path is not None and old_path == path:
            path = old_path
        self._paths[server] = path
        device = self._device_of(server)
        bindings = self._index.on_server(server)
        for binding in bindings:
            if binding.device != device:
                self._store(replace(binding, device=device))
        keys = set(self._server_groups.get(server, ()))
        keys |= {self._server_group(server, vlan) for vlan in self._index.vlans_on(server)}
        for key in sorted(k for k in keys if k is not None):
            self._refresh_group(key, plan)
        for binding in self._index.on_server(server):
            self._apply_binding(binding, plan)

    def _neighbours(self, dpid: int) -> Set[int]:
        return {self.fabric.peer(PortRef(dpid, port)).dpid
                for port in self.fabric.link_ports(dpid)}

    # -- queries -------------------------------------------------------------
    @property
    def refused(self) -> Dict[str, Refusal]:
        """Refused MACs and why (the REST API lists them)."""
        return self.quarantine.refused

    def binding_by_id(self, binding_id: int) -> Binding | None:
        """The binding with this id, if any."""
        return self._index.by_id.get(binding_id)

    def hosts_vm(self, dpid: int, port: int) -> bool:
        """Whether a VM (bound or pre-provisioned) is behind this port, so no switch is."""
        return (dpid, port) in self._by_port

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
        held = self._index.of_device(device)
        held += [b for b in self.outgoing.values() if b.device == device]
        return sorted(held, key=lambda b: b.mac)

    def moved_port_rules(self) -> Set[str]:
        """MACs whose template's port-side rules were moved to their vswitch port."""
        return {b.mac for b in self._all_bindings() if b.binding_id in self._moved}

    def _device_of(self, server_dpid: int) -> int | None:
        access = self.access_switch_of(server_dpid)
        return access.dpid if access is not None else None

    def _name(self, dpid: int) -> str:
        info = self.fabric.switches.get(dpid)
        return info.name if info and info.name else f"{dpid:016x}"


def _present(binding: Binding) -> bool:
    """Whether the VM needs its VLAN's way up (forwarding or pre-provisioned)."""
    return binding.state.forwards or binding.state is VmState.PRE_PROVISIONED


def _changed_templates(old, new) -> Set[int]:
    """Ids of templates added, removed or changed between two libraries."""
    if old is new:
        return set()
    old_templates = dict(old.templates) if old is not None else {}
    new_templates = dict(new.templates)
    return {template_id for template_id in set(old_templates) | set(new_templates)
            if old_templates.get(template_id) != new_templates.get(template_id)}


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
