"""The network device's control logic: events in, plans out (pure).

The Ryu app feeds it what the switches report (a switch connected with the
flows it holds, a link seen by LLDP, a packet from a new VM, a port gone) and
sends the :class:`~ryu_apps.core.flow_plan.Plan` it returns. It never sends,
reads a clock or touches a socket, so every decision is unit-testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Set

from ryu_apps.core.binding import Binding, Detection
from ryu_apps.core.cookies import INFRA_OWNER, MAX_OWNER_ID, vlan_owner
from ryu_apps.core.fabric import Fabric, PortRef, Role, SwitchInfo
from ryu_apps.core.flow_compiler import binding_flows, infra_flows, vlan_flows
from ryu_apps.core.flow_plan import DesiredFlows, PacketOut, Plan
from ryu_apps.core.identifiers import IdentifierError, IdentifierScheme, format_mac, parse_mac


@dataclass
class Refusal:
    """Why a MAC seen on a VM port was not provisioned."""

    mac: str
    template_id: int | None
    reason: str


@dataclass
class PacketVerdict:
    """The outcome of a packet from a VM port: a plan and what to log."""

    plan: Plan = field(default_factory=Plan)
    provisioned: Binding | None = None
    refusal: Refusal | None = None
    first_refusal: bool = False


class ProvisioningEngine:
    """Bindings, fabric and desired flows of one controller (pure state machine)."""

    def __init__(self, library, scheme: IdentifierScheme) -> None:
        self.library = library
        self.scheme = scheme
        self.fabric = Fabric()
        self.bindings: Dict[str, Binding] = {}
        self._by_port: Dict[tuple, Binding] = {}
        self._ids_in_use: Set[int] = set()
        self.desired = DesiredFlows()
        self.refused: Dict[str, Refusal] = {}
        self._next_binding_id = 1

    # -- switches and links ------------------------------------------------
    def switch_up(self, dpid: int, role: Role, name: str,
                  observed: Iterable) -> Plan:
        """A switch connected and reported the dynprov flows it holds."""
        plan = Plan()
        self.fabric.add_switch(SwitchInfo(dpid, role, name))
        self._recompile_all(plan)
        # Reconcile: whatever the switch holds, bring it to the desired set.
        plan.changes.pop(dpid, None)
        self.desired.reconcile(dpid, observed, plan)
        return plan

    def switch_down(self, dpid: int) -> Plan:
        """A switch disconnected: its flows stay desired so it keeps forwarding."""
        return Plan()

    def link_seen(self, a: PortRef, b: PortRef) -> Plan:
        """LLDP showed that port ``a`` reaches port ``b``."""
        plan = Plan()
        if a.dpid not in self.fabric.switches or b.dpid not in self.fabric.switches:
            return plan
        if self.fabric.add_link(a, b):
            plan.notes.append(f"link {a.dpid:016x}:{a.port} <-> {b.dpid:016x}:{b.port}")
            self._recompile_all(plan)
        return plan

    def port_down(self, dpid: int, port: int) -> Plan:
        """A port went away: drop its link and the bindings behind it."""
        plan = Plan()
        link_changed = self.fabric.remove_link(PortRef(dpid, port))
        gone = [b for b in [self._binding_at(dpid, port)] if b is not None]
        for binding in gone:
            self._drop(binding)
        if link_changed:
            self._recompile_all(plan)
        else:
            for binding in gone:
                self.desired.replace(binding.owner, set(), plan)
            self._recompile_vlans({b.vlan for b in gone}, plan)
        return plan

    # -- VMs ----------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, eth_src: str,
                  data: bytes = b"", now: float = 0.0) -> PacketVerdict:
        """A packet reached the controller from a port with no binding for it."""
        return self._admit(dpid, in_port, eth_src, now, Detection.PACKET, data)

    def vm_attached(self, dpid: int, port: int, mac: str, now: float = 0.0) -> PacketVerdict:
        """The server's OVSDB says VM ``mac`` is attached to ``port`` (it may be silent)."""
        return self._admit(dpid, port, mac, now, Detection.OVSDB, b"")

    def vm_detached(self, dpid: int, port: int) -> Plan:
        """The server's OVSDB no longer lists a VM on ``port``."""
        plan = Plan()
        binding = self._binding_at(dpid, port)
        if binding is not None:
            self._unbind(binding, plan)
            self._recompile_vlans({binding.vlan}, plan)
            plan.notes.append(f"deprovisioned VM {binding.mac}: detached from port {port}")
        return plan

    def _admit(self, dpid: int, port: int, eth_src: str, now: float,
               detected_by: Detection, data: bytes) -> PacketVerdict:
        verdict = PacketVerdict()
        if self.fabric.role(dpid) is not Role.SERVER:
            return verdict
        if self.fabric.is_link_port(dpid, port):
            return verdict
        mac = _canonical(eth_src)
        existing = self.bindings.get(mac)
        if existing and (existing.dpid, existing.port) == (dpid, port):
            return verdict  # already provisioned: idempotent, send nothing
        holder = self._binding_at(dpid, port)
        if holder is not None:
            self._refuse(verdict, mac, None,
                         f"port already bound to VM {holder.mac}: spoofed source MAC")
            return verdict
        binding = self._select(eth_src, dpid, port, verdict)
        if binding is None:
            return verdict
        binding = replace(binding, since=now, detected_by=detected_by)
        plan = verdict.plan
        if existing:
            self._unbind(existing, plan)
        self._store(binding)
        self.desired.replace(binding.owner, binding_flows(self.fabric, binding), plan)
        self._recompile_vlans({binding.vlan} | ({existing.vlan} if existing else set()), plan)
        if data:
            plan.packet_outs.append(PacketOut(dpid, port, data))
        verdict.provisioned = binding
        return verdict

    # -- queries -------------------------------------------------------------
    def binding_by_id(self, binding_id: int) -> Binding | None:
        """The binding with this id, if any."""
        return next((b for b in self.bindings.values() if b.binding_id == binding_id), None)

    def access_port_of(self, binding: Binding) -> PortRef | None:
        """The access-switch port the binding's server hangs off (on the tree)."""
        for port in sorted(self.fabric.tree_ports(binding.dpid)):
            peer = self.fabric.peer(PortRef(binding.dpid, port))
            if peer is not None and self.fabric.role(peer.dpid) is not Role.SERVER:
                return peer
        return None

    def _select(self, eth_src: str, dpid: int, port: int,
                verdict: PacketVerdict) -> Binding | None:
        """Decode the MAC and select its template; record a refusal on failure."""
        try:
            mac = format_mac(parse_mac(eth_src))
            template_id = self.scheme.decode(mac)
        except IdentifierError as error:
            self._refuse(verdict, _canonical(eth_src), None, str(error))
            return None
        template = self.library.get(template_id)
        if template is None:
            self._refuse(verdict, mac, template_id,
                         f"template {template_id} (0x{template_id:04X}) is not in the library")
            return None
        self.refused.pop(mac, None)
        return Binding(self._allocate_binding_id(), mac, template_id, template.name,
                       template.vlan, dpid, port)

    def _refuse(self, verdict: PacketVerdict, mac: str, template_id: int | None,
                reason: str) -> None:
        verdict.refusal = Refusal(mac, template_id, reason)
        verdict.first_refusal = mac not in self.refused
        self.refused[mac] = verdict.refusal

    def _allocate_binding_id(self) -> int:
        candidate = self._next_binding_id
        while candidate in self._ids_in_use:
            candidate = candidate % MAX_OWNER_ID + 1
        self._next_binding_id = candidate % MAX_OWNER_ID + 1
        return candidate

    def _unbind(self, binding: Binding, plan: Plan) -> None:
        self._drop(binding)
        self.desired.replace(binding.owner, set(), plan)

    # -- recompilation -------------------------------------------------------
    def _recompile_all(self, plan: Plan) -> None:
        infra: Set = set()
        for dpid in self.fabric.switches:
            infra |= infra_flows(self.fabric, dpid)
        self.desired.replace(INFRA_OWNER, infra, plan)
        for binding in self.bindings.values():
            self.desired.replace(binding.owner, binding_flows(self.fabric, binding), plan)
        self._recompile_vlans({b.vlan for b in self.bindings.values()}
                              | {o.owner_id for o in self.desired.owners()
                                 if o.kind == vlan_owner(1).kind}, plan)

    def _recompile_vlans(self, vlans: Iterable[int], plan: Plan) -> None:
        for vlan in sorted(set(vlans)):
            members = [b for b in self.bindings.values() if b.vlan == vlan]
            self.desired.replace(vlan_owner(vlan), vlan_flows(self.fabric, vlan, members), plan)

    def _binding_at(self, dpid: int, port: int) -> Binding | None:
        return self._by_port.get((dpid, port))

    def _store(self, binding: Binding) -> None:
        self.bindings[binding.mac] = binding
        self._by_port[(binding.dpid, binding.port)] = binding
        self._ids_in_use.add(binding.binding_id)

    def _drop(self, binding: Binding) -> None:
        self.bindings.pop(binding.mac, None)
        self._by_port.pop((binding.dpid, binding.port), None)
        self._ids_in_use.discard(binding.binding_id)

    def bindings_on(self, dpid: int) -> List[Binding]:
        """Bindings whose VM port is on this switch."""
        return sorted((b for b in self.bindings.values() if b.dpid == dpid),
                      key=lambda b: b.port)


def _canonical(mac: str) -> str:
    try:
        return format_mac(parse_mac(mac))
    except IdentifierError:
        return mac.lower()
