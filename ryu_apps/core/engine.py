"""The network device's control logic: events in, plans out (pure).

The Ryu app feeds it what the switches report (a switch connected with the
flows it holds, a link seen by LLDP, a packet from a VM, a port gone, a flow
that idled out, a VM listed in OVSDB) and sends the
:class:`~ryu_apps.core.flow_plan.Plan` it returns. It never sends, reads a
clock or touches a socket: time comes in as ``now``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, NamedTuple, Optional, Set

from ryu_apps.core.binding import Binding, Detection
from ryu_apps.core.cookies import (
    INFRA_OWNER,
    CookieKind,
    decode_cookie,
    port_group_owner,
    quarantine_owner,
    vlan_owner,
)
from ryu_apps.core.fabric import Fabric, PortRef, Role, SwitchInfo
from ryu_apps.core.flow_compiler import (
    Placement,
    binding_flows,
    infra_flows,
    port_group_flows,
    vlan_flows,
)
from ryu_apps.core.flow_plan import DesiredFlows, PacketOut, Plan
from ryu_apps.core.flowspec import FlowSpec, flow, make_match
from ryu_apps.core.identifiers import IdentifierError, IdentifierScheme, format_mac, parse_mac
from ryu_apps.core.pipeline import MAX_BINDING_ID, Priority, Table

#: Seconds a refused MAC's drop flow stays before the MAC is judged again.
QUARANTINE_SECONDS = 60.0
#: Refused MACs on one port before the whole port stops reaching the controller.
QUARANTINE_MACS_PER_PORT = 8


@dataclass
class Refusal:
    """Why a MAC seen on a VM port was not provisioned."""

    mac: str
    template_id: int | None
    reason: str
    dpid: int = 0
    port: int = 0
    count: int = 1
    since: float = 0.0


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


class ProvisioningEngine:
    """Bindings, fabric and desired flows of one controller (pure state machine)."""

    def __init__(self, library, scheme: IdentifierScheme) -> None:
        self.library = library
        self.scheme = scheme
        self.fabric = Fabric()
        self.bindings: Dict[str, Binding] = {}
        self.desired = DesiredFlows()
        self.refused: Dict[str, Refusal] = {}
        self._by_port: Dict[tuple, Binding] = {}
        self._ids_in_use: Set[int] = set()
        self._next_binding_id = 1
        self._groups: Dict[GroupKey, Set[str]] = {}
        self._moved: Set[str] = set()  # MACs whose port-side rules sit on their vswitch port
        self._quarantine: Dict[tuple, Dict[str, float]] = {}
        self._blocked_ports: Dict[tuple, float] = {}
        #: Packets refused from blocked ports, counted but neither logged nor flowed.
        self.blocked_refusals: Dict[tuple, int] = {}

    # -- switches and links ------------------------------------------------
    def switch_up(self, dpid: int, role: Role, name: str, observed: Iterable,
                  now: float = 0.0) -> Plan:
        """A switch connected and reported the dynprov flows and meters it holds."""
        observed = list(observed)
        plan = Plan()
        self.fabric.add_switch(SwitchInfo(dpid, role, name))
        if role is Role.SERVER:
            self._restore_bindings(dpid, observed, now, plan)
        self._recompile_all(plan)
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
        """A port went away: drop its link and the binding behind it."""
        plan = Plan()
        link_changed = self.fabric.remove_link(PortRef(dpid, port))
        binding = self._by_port.get((dpid, port))
        if binding is not None:
            self._unbind(binding, plan, f"port {port} of {dpid:016x} went away")
        if self._quarantine.pop((dpid, port), None) or self._blocked_ports.pop((dpid, port), None):
            self._apply_quarantine(dpid, port, plan)
        if link_changed:
            self._recompile_all(plan)
        return plan

    # -- VMs ----------------------------------------------------------------
    def packet_in(self, dpid: int, in_port: int, eth_src: str, data: bytes = b"",
                  now: float = 0.0, sender_ip: str | None = None,
                  tagged: bool = False) -> PacketVerdict:
        """A packet reached the controller from a VM port.

        A VLAN-tagged frame never comes from a VM (VMs send untagged): it is
        fabric traffic seen before the link was discovered, and is ignored.
        """
        if tagged:
            return PacketVerdict()
        binding = self._by_port.get((dpid, in_port))
        if binding is not None and binding.mac == _canonical(eth_src):
            return self._learn_ip(binding, sender_ip, data)
        return self._admit(dpid, in_port, eth_src, now, Detection.PACKET, data)

    def vm_attached(self, dpid: int, port: int, mac: str, now: float = 0.0) -> PacketVerdict:
        """The server's OVSDB says VM ``mac`` is attached to ``port`` (it may be silent)."""
        return self._admit(dpid, port, mac, now, Detection.OVSDB, b"")

    def vm_detached(self, dpid: int, port: int) -> Plan:
        """The server's OVSDB no longer lists a VM on ``port``."""
        plan = Plan()
        binding = self._by_port.get((dpid, port))
        if binding is not None:
            self._unbind(binding, plan, f"detached from port {port}")
        return plan

    def flow_removed(self, dpid: int, cookie: int, idle_timeout: bool) -> Plan:
        """A flow with the send-flow-removed flag left a switch on its own."""
        plan = Plan()
        owner = decode_cookie(cookie)
        if owner is None or owner.kind is not CookieKind.BINDING or not idle_timeout:
            return plan
        binding = self.binding_by_id(owner.owner_id)
        if binding is not None and binding.dpid == dpid:
            template = self.library.get(binding.template_id)
            idle = template.idle_timeout if template else 0
            self._unbind(binding, plan, f"silent for {idle} s (idle timeout)")
        return plan

    def set_library(self, library) -> Plan:
        """Put a new (validated) library in force; re-provision affected VMs in place."""
        plan = Plan()
        old, self.library = self.library, library
        for binding in list(self.bindings.values()):
            template = library.get(binding.template_id)
            if template is None:
                self._unbind(binding, plan, f"template {binding.template_id} left the library")
            elif template != old.get(binding.template_id):
                updated = replace(binding, template_name=template.name, vlan=template.vlan)
                if updated.vlan != binding.vlan:
                    self._unbind(binding, plan, None)
                    self._bind(updated, plan)
                else:
                    self._store(updated)
                    self._apply_binding(updated, plan)
                    self._refresh_group(self._group_key(updated), plan)
                plan.notes.append(f"re-provisioned VM {binding.mac} in place: "
                                  f"template {template.template_id} '{template.name}' changed")
        for key in list(self._quarantine) + list(self._blocked_ports):
            self._quarantine.pop(key, None)
            self._blocked_ports.pop(key, None)
            self._apply_quarantine(key[0], key[1], plan)
        self.refused.clear()
        return plan

    def tick(self, now: float) -> Plan:
        """Time passed: lift quarantines older than QUARANTINE_SECONDS."""
        plan = Plan()
        for key, macs in list(self._quarantine.items()):
            expired = [m for m, since in macs.items() if now - since >= QUARANTINE_SECONDS]
            for mac in expired:
                del macs[mac]
                self.refused.pop(mac, None)
            if expired:
                self._apply_quarantine(key[0], key[1], plan)
        for key, since in list(self._blocked_ports.items()):
            if now - since >= QUARANTINE_SECONDS:
                del self._blocked_ports[key]
                self._apply_quarantine(key[0], key[1], plan)
                plan.notes.append(f"port {key[1]} of {key[0]:016x} may reach the controller again")
        return plan

    # -- admission ------------------------------------------------------------
    def _admit(self, dpid: int, port: int, eth_src: str, now: float,
               detected_by: Detection, data: bytes) -> PacketVerdict:
        verdict = PacketVerdict()
        if self.fabric.role(dpid) is not Role.SERVER or self.fabric.is_link_port(dpid, port):
            return verdict
        mac = _canonical(eth_src)
        existing = self.bindings.get(mac)
        if existing and (existing.dpid, existing.port) == (dpid, port):
            return verdict  # already provisioned: idempotent, send nothing
        holder = self._by_port.get((dpid, port))
        if holder is not None:
            self._refuse(verdict, mac, None, dpid, port, now,
                         f"port already bound to VM {holder.mac}: spoofed source MAC")
            return verdict
        template = self._select(mac, eth_src, dpid, port, now, verdict)
        if template is None:
            return verdict
        binding = Binding(self._allocate_binding_id(), mac, template.template_id,
                          template.name, template.vlan, dpid, port, since=now,
                          detected_by=detected_by)
        plan = verdict.plan
        if existing:
            self._unbind(existing, plan, f"moved to port {port} of {dpid:016x}")
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
        template = self.library.get(template_id)
        if template is None:
            self._refuse(verdict, mac, template_id, dpid, port, now,
                         f"template {template_id} (0x{template_id:04X}) is not in the library")
        return template

    def _refuse(self, verdict: PacketVerdict, mac: str, template_id: int | None,
                dpid: int, port: int, now: float, reason: str) -> None:
        known = self.refused.get(mac)
        if known is not None:
            known.count += 1
            verdict.refusal = known
            return
        if (dpid, port) in self._blocked_ports:
            # Already dropping everything unknown from this port: only count.
            self.blocked_refusals[(dpid, port)] = self.blocked_refusals.get((dpid, port), 0) + 1
            verdict.refusal = Refusal(mac, template_id, reason, dpid, port, since=now)
            return
        verdict.refusal = self.refused[mac] = Refusal(mac, template_id, reason, dpid, port,
                                                      since=now)
        verdict.first_refusal = True
        macs = self._quarantine.setdefault((dpid, port), {})
        macs[mac] = now
        if len(macs) >= QUARANTINE_MACS_PER_PORT and (dpid, port) not in self._blocked_ports:
            self._blocked_ports[(dpid, port)] = now
            verdict.plan.notes.append(
                f"port {port} of {dpid:016x}: {len(macs)} refused MACs, packets from "
                f"unknown MACs on it are dropped for {QUARANTINE_SECONDS:.0f} s")
        self._apply_quarantine(dpid, port, verdict.plan)

    def _apply_quarantine(self, dpid: int, port: int, plan: Plan) -> None:
        owner = quarantine_owner(port)
        flows: Set[FlowSpec] = set()
        for mac in self._quarantine.get((dpid, port), {}):
            flows.add(flow(dpid, Table.CLASSIFY, Priority.QUARANTINE,
                           make_match(in_port=port, eth_src=mac), owner.cookie))
        if (dpid, port) in self._blocked_ports:
            flows.add(flow(dpid, Table.CLASSIFY, Priority.PORT_QUARANTINE,
                           make_match(in_port=port), owner.cookie))
        self.desired.replace(owner, flows, plan, dpid=dpid)

    def _learn_ip(self, binding: Binding, sender_ip: str | None, data: bytes) -> PacketVerdict:
        """A bound VM's first IPv4/ARP packet under a template that pins its IP."""
        verdict = PacketVerdict()
        template = self.library.get(binding.template_id)
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
        for key in [k for k in self._quarantine if binding.mac in self._quarantine[k]]:
            del self._quarantine[key][binding.mac]
            self._apply_quarantine(key[0], key[1], plan)
        self.refused.pop(binding.mac, None)

    def _unbind(self, binding: Binding, plan: Plan, reason: Optional[str]) -> None:
        key = self._group_key(binding)
        self._drop(binding)
        self.desired.replace(binding.owner, set(), plan)
        self._refresh_group(key, plan)
        self._refresh_vlans({binding.vlan}, plan)
        if reason:
            plan.notes.append(f"deprovisioned VM {binding.mac} (binding {binding.binding_id}):"
                              f" {reason}")

    def _apply_binding(self, binding: Binding, plan: Plan) -> None:
        template = self.library.get(binding.template_id)
        placement = Placement(binding, template, binding.mac in self._moved)
        self.desired.replace(binding.owner, binding_flows(self.fabric, placement), plan)

    def _store(self, binding: Binding) -> None:
        self.bindings[binding.mac] = binding
        self._by_port[(binding.dpid, binding.port)] = binding
        self._ids_in_use.add(binding.binding_id)

    def _drop(self, binding: Binding) -> None:
        self.bindings.pop(binding.mac, None)
        self._by_port.pop((binding.dpid, binding.port), None)
        self._ids_in_use.discard(binding.binding_id)
        self._moved.discard(binding.mac)
        for members in self._groups.values():
            members.discard(binding.mac)

    def _allocate_binding_id(self) -> int:
        candidate = self._next_binding_id
        while candidate in self._ids_in_use:
            candidate = candidate % MAX_BINDING_ID + 1
        self._next_binding_id = candidate % MAX_BINDING_ID + 1
        return candidate

    def _restore_bindings(self, dpid: int, observed: List, now: float, plan: Plan) -> None:
        """Rebuild bindings from a server's own flows (after a controller restart)."""
        for spec in observed:
            owner = decode_cookie(getattr(spec, "cookie", 0))
            if (not isinstance(spec, FlowSpec) or owner is None
                    or owner.kind is not CookieKind.BINDING
                    or spec.table_id != Table.CLASSIFY or spec.priority != Priority.BINDING):
                continue
            fields = spec.match_dict()
            mac, port = fields.get("eth_src"), fields.get("in_port")
            template = self.library.get(owner.template_id)
            if (mac is None or port is None or template is None or mac in self.bindings
                    or owner.owner_id in self._ids_in_use):
                continue
            binding = Binding(owner.owner_id, mac, template.template_id, template.name,
                              template.vlan, dpid, port, since=now,
                              ip=_bound_ip(observed, owner.cookie),
                              detected_by=Detection.RESTORED)
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
        members = [b for b in self.bindings.values() if self._group_key(b) == key]
        self._groups[key] = {b.mac for b in members}
        owner = port_group_owner(key.port, key.vlan)
        if not members:
            self._groups.pop(key, None)
            self.desired.replace(owner, set(), plan, dpid=key.dpid)
            return
        sides = {self.library.get(b.template_id).access_port for b in members}
        merged = len(sides) > 1
        side = None if merged else next(iter(sides))
        self.desired.replace(owner, port_group_flows(key.dpid, key.port, key.vlan, owner, side),
                             plan, dpid=key.dpid)
        for binding in members:
            if (binding.mac in self._moved) != merged:
                (self._moved.add if merged else self._moved.discard)(binding.mac)
                self._apply_binding(binding, plan)
                if merged:
                    plan.notes.append(
                        f"VM {binding.mac}: port-side rules of template {binding.template_id} "
                        f"moved to its virtual-switch port (templates behind access port "
                        f"{key.port} of {key.dpid:016x} in VLAN {key.vlan} conflict)")

    def _refresh_vlans(self, vlans: Iterable[int], plan: Plan) -> None:
        for vlan in sorted(set(vlans)):
            members = [b for b in self.bindings.values() if b.vlan == vlan]
            self.desired.replace(vlan_owner(vlan), vlan_flows(self.fabric, vlan, members), plan)

    def _recompile_all(self, plan: Plan) -> None:
        infra: Set = set()
        for dpid in self.fabric.switches:
            infra |= infra_flows(self.fabric, dpid)
        self.desired.replace(INFRA_OWNER, infra, plan)
        keys = set(self._groups) | {self._group_key(b) for b in self.bindings.values()}
        for key in sorted(k for k in keys if k is not None):
            self._refresh_group(key, plan)
        for binding in self.bindings.values():
            self._apply_binding(binding, plan)
        vlans = {b.vlan for b in self.bindings.values()}
        vlans |= {o.owner_id for o in self.desired.owners() if o.kind is CookieKind.VLAN}
        self._refresh_vlans(vlans, plan)

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

    def bindings_on(self, dpid: int) -> List[Binding]:
        """Bindings whose VM port is on this switch."""
        return sorted((b for b in self.bindings.values() if b.dpid == dpid),
                      key=lambda b: b.port)

    def moved_port_rules(self) -> Set[str]:
        """MACs whose template's port-side rules were moved to their vswitch port."""
        return set(self._moved)


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
