"""Compile bindings and access-port groups into flows (pure; VLANs are in vlan_compiler).

The tables are described in :mod:`ryu_apps.core.pipeline` and
docs/architecture.md. In short, a frame from a VM on a server's virtual switch
goes CLASSIFY (its port and MAC; its meter; its template tag written to the
metadata) -> ANTI_SPOOF (its bound IP) -> FROM_VM_ACL -> FROM_VM_PORT_ACL
(tagged with its VLAN here) -> FORWARD; on the access switch it is admitted
per (server port, VLAN) with the template's port ACL and aggregate meter; a
frame for a VM ends FORWARD (its port and template tag written) -> TO_VM_ACL ->
TO_VM_PORT_ACL -> OUTPUT (the VM's port). On a server the ACL tables hold each
template's rules once, keyed by the template tag
(:mod:`~ryu_apps.core.template_tables`); this module compiles a VM's own few
flows. Access switches' egress ACL tables are keyed by the egress port in the
metadata, so a flooded frame is checked once per port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple, Union

from ryu_apps.core import address_guard, ipv6_guard
from ryu_apps.core.acl_compiler import acl_entries, rules_for
from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.cookies import Owner
from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    FlowSpec,
    MeterSpec,
    Output,
    PopVlan,
    flow,
    make_match,
    tagged,
)
from ryu_apps.core.pipeline import (
    BINDING_METER_BASE,
    Priority,
    Table,
    from_vm_metadata,
    port_group_meter,
    to_vm_metadata,
)
from ryu_apps.core.switch_flows import PACKET_IN_BYTES
from ryu_apps.core.template_model import (
    ETH_ARP,
    ETH_IPV4,
    Action,
    Direction,
    SwitchSide,
    Template,
)
from ryu_apps.core.transit import NO_PATH, TransitPath, to_vm_match, transit_flow, transit_flows

Entry = Union[FlowSpec, MeterSpec]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a binding's template is enforced: everything its flows are compiled from.

    The engine keeps this (a few references to objects it holds anyway)
    instead of the compiled flows, and compiles them again when they are
    needed: to diff against a changed placement, to reconcile a switch, to
    list them.
    """

    binding: Binding
    template: Template
    port_rules_on_vswitch: bool = False  # the template merge moved them here
    path: TransitPath = NO_PATH

    @property
    def home(self) -> int:
        """The server switch the VM sits on."""
        return self.binding.dpid

    def flows(self) -> Set["Entry"]:
        """Every flow and meter of the binding."""
        return binding_flows(self)

    def flows_on(self, dpid: int) -> Set["Entry"]:
        """The binding's flows and meters on one switch."""
        if dpid == self.binding.dpid:
            return {f for f in binding_flows(self) if f.dpid == dpid}
        hop = self.path.get(dpid)
        if hop is None or not self.binding.state.forwards:
            return set()
        binding = self.binding
        match = to_vm_match(binding.vlan, binding.mac)
        return {transit_flow(dpid, *hop, match, binding.owner.cookie)}

    def away(self) -> Set["Entry"]:
        """The binding's flows on switches other than its server (its path)."""
        return set(transit_flows(self.binding, self.path))

    def same_home(self, other: "Placement") -> bool:
        """True when only the path differs (the server's flows are the same)."""
        return (type(self) is type(other) and self.binding == other.binding
                and self.template is other.template
                and self.port_rules_on_vswitch == other.port_rules_on_vswitch)


@dataclass(frozen=True, slots=True)
class HandedOut(Placement):
    """A migration's source once the VM is active elsewhere, until MigrationDone releases
    it: it keeps what its port needs, but not the way to the VM (its FORWARD entries, on
    its server and its path, matched on the VM's VLAN and MAC alone). Those are the new
    binding's now: one switch entry can have one owner, and the redirect
    (:mod:`~ryu_apps.core.migration_paths`) covers the old path."""

    def flows(self) -> Set["Entry"]:
        """The binding's flows and meters but its FORWARD entries."""
        return {f for f in binding_flows(self) if not _forwards_to_vm(f)}

    def flows_on(self, dpid: int) -> Set["Entry"]:
        """Its flows and meters on its server (it has none elsewhere)."""
        return {f for f in self.flows() if f.dpid == dpid}

    def away(self) -> Set["Entry"]:
        """None: its path's entries are the new binding's."""
        return set()


def handed_out(placement: Placement) -> HandedOut:
    """The placement of a source the VM left (see :class:`HandedOut`)."""
    return HandedOut(placement.binding, placement.template, placement.port_rules_on_vswitch,
                     placement.path)


def _forwards_to_vm(entry: Entry) -> bool:
    return isinstance(entry, FlowSpec) and entry.table_id == Table.FORWARD


# -- one VM -------------------------------------------------------------------
def binding_flows(placement: Placement) -> Set[Entry]:
    """Everything one VM needs in its state: its port on the server, its path.

    Suspended: only a drop at its port. Restarting or deprovisioned: nothing
    (its next packet reaches the controller). Pre-provisioned (a migration's
    destination): its port is ready and what it sends is forwarded at once, a
    copy of all but its IPv4 going to the controller to activate it (an
    announcement, ARP, neighbour discovery; its IPv4 is mostly answers, a copy
    of each would stream to the controller until the switch drops the copying
    flow), but nothing is delivered to the port and no path leads there yet.
    """
    binding = placement.binding
    state = binding.state
    if state is VmState.SUSPENDED:
        return {flow(binding.dpid, Table.CLASSIFY, Priority.BINDING,
                     _from_vm_match(binding.port, binding.mac),
                     binding.owner.cookie)}
    if state in (VmState.RESTARTING, VmState.DEPROVISIONED, VmState.DETECTED):
        return set()
    cookie = binding.owner.cookie
    entries = _server_side(placement, cookie)
    if state is VmState.PRE_PROVISIONED:
        return entries
    return entries | transit_flows(binding, placement.path, cookie)


def _from_vm_match(port: int, mac: str) -> tuple:
    """``make_match(in_port=port, eth_src=mac)``, spelt out (built per VM)."""
    return (("eth_src", mac), ("in_port", port))


def needs_template(binding: Binding) -> bool:
    """Whether the VM's state has server-side flows that use its template's shared ones."""
    return binding.state.forwards or binding.state is VmState.PRE_PROVISIONED


def _server_side(placement: Placement, cookie: int) -> Set[Entry]:
    """A VM's own flows on its server (at most 6): its classifier (through its meter:
    :func:`vm_limit`), the anti-spoofing of its bound IPv4 (and IPv6:
    :mod:`~ryu_apps.core.ipv6_guard`), its delivery (with ``bind_ip: dhcp``, its DHCP output copied
    for snooping); its template's ACLs are shared
    (:mod:`~ryu_apps.core.template_tables`), and so is the OUTPUT table's flow that
    sends a delivery out of the port it wrote into the metadata
    (:func:`~ryu_apps.core.switch_flows.infra_flows`)."""
    binding, template = placement.binding, placement.template
    dpid, port = binding.dpid, binding.port
    vswitch = template.virtual_switch
    entries: Set[Entry] = set()
    meter = None
    limit = vm_limit(placement)
    if limit is not None:
        meter = BINDING_METER_BASE + binding.binding_id
        entries.add(MeterSpec(dpid, meter, limit[0], limit[1], cookie=cookie))
    pre_provisioned = binding.state is VmState.PRE_PROVISIONED
    learn = vswitch.binds_first_seen and binding.ip is None
    learn_ipv6 = ipv6_guard.learns(vswitch) and not binding.ipv6
    entries.add(flow(dpid, Table.CLASSIFY, Priority.BINDING,
                     _from_vm_match(port, binding.mac), cookie,
                     meter=meter, goto=Table.ANTI_SPOOF,
                     actions=(Output(OFPP_CONTROLLER, PACKET_IN_BYTES),) if pre_provisioned
                     else (),
                     metadata=from_vm_metadata(binding.template_id, learn, learn_ipv6),
                     idle_timeout=0 if pre_provisioned else template.idle_timeout))
    if pre_provisioned:   # its IPv4 (answers, mostly) forwarded without a copy each
        entries.add(flow(dpid, Table.CLASSIFY, Priority.PRE_PROVISIONED_IPV4,
                         make_match(in_port=port, eth_src=binding.mac, eth_type=ETH_IPV4),
                         cookie, meter=meter, goto=Table.ANTI_SPOOF,
                         metadata=from_vm_metadata(binding.template_id, learn)))
    entries |= _anti_spoof(placement, cookie)
    delivered = to_vm_metadata(port, binding.template_id)
    if vswitch.binds_from_dhcp:
        entries.add(address_guard.dhcp_delivery(dpid, port, delivered, cookie))
    entries |= ipv6_guard.dhcpv6_delivery(dpid, port, delivered, vswitch, cookie)
    if not pre_provisioned:
        entries.add(flow(dpid, Table.FORWARD, Priority.BINDING,
                         to_vm_match(binding.vlan, binding.mac),
                         cookie, actions=(PopVlan(),), metadata=delivered,
                         goto=Table.TO_VM_ACL))
    return entries


def vm_limit(placement: Placement) -> Optional[Tuple[int, int]]:
    """(rate kbit/s, burst kbit) of the VM's one meter, or None: its virtual switch's
    bandwidth and, where the template merge moved its port side here, that side's
    (counted per VM), whichever is tighter (two drop meters in a row pass what the
    tighter passes; one meter keeps every other flow of the VM shared)."""
    template = placement.template
    if not placement.port_rules_on_vswitch:   # the common case: its own bandwidth alone
        own = template.virtual_switch.bandwidth
        return None if own is None else (own.rate_kbps, own.burst_kbits)
    limits = (template.virtual_switch.bandwidth, template.access_port.bandwidth)
    present = [b for b in limits if b is not None]
    if not present:
        return None
    return (min(b.rate_kbps for b in present), min(b.burst_kbits for b in present))


def _anti_spoof(placement: Placement, cookie: int) -> Set[Entry]:
    """A VM sends only with its own MAC (CLASSIFY) and, if bound, its own IPv4.

    The template's shared flows (selected by the tag the classifier wrote)
    allow DHCP and ARP probes from 0.0.0.0 and the template's allowed
    prefixes, send IPv4 and ARP of a VM whose address is not bound yet to the
    controller, drop other IPv4 and ARP, and pass the rest; the VM's own flows
    allow its bound address. With ``bind_ipv6`` the VM's IPv6 and neighbour
    discovery are guarded (:mod:`~ryu_apps.core.ipv6_guard`).
    """
    binding = placement.binding
    dpid, port = binding.dpid, binding.port
    entries: Set[Entry] = set(ipv6_guard.vm_flows(
        dpid, port, binding.mac, placement.template.virtual_switch, cookie, bound=binding.ipv6))
    if not placement.template.virtual_switch.bind_ip or binding.ip is None:
        return entries
    # make_match's order, spelt out (sorted by field name): built per VM
    for match in ((("eth_type", ETH_IPV4), ("in_port", port), ("ipv4_src", binding.ip)),
                  (("arp_spa", binding.ip), ("eth_type", ETH_ARP), ("in_port", port))):
        entries.add(flow(dpid, Table.ANTI_SPOOF, Priority.SPOOF_ALLOW, match, cookie,
                         goto=Table.FROM_VM_ACL))
    return entries


#: Compiled ACL entries by (id of the rule tuple, direction, default), with the
#: tuple itself so its id is not reused while cached; bounded.
_ACL_CACHE: Dict[tuple, tuple] = {}
_ACL_CACHE_SIZE = 8192


def _cached_entries(acl: tuple, direction: Direction,
                    default: Action) -> List[Tuple[int, tuple, Action]]:
    """A side's ACL entries for one direction (compiled once per rule tuple)."""
    key = (id(acl), direction, default)
    cached = _ACL_CACHE.get(key)
    if cached is not None and cached[0] is acl:
        return cached[1]
    entries = [(priority, tuple(fields.items()), action)
               for priority, fields, action in acl_entries(rules_for(acl, direction), default)]
    if len(_ACL_CACHE) >= _ACL_CACHE_SIZE:
        _ACL_CACHE.clear()
    _ACL_CACHE[key] = (acl, entries)
    return entries


def acl_flows(dpid: int, table: Table, key: dict, cookie: int, acl: tuple,
               direction: Direction, default: Action, allow: dict) -> Set[FlowSpec]:
    """An ACL as flows: each allowed entry does ``allow``; a denied entry drops."""
    entries = set()
    key_items = tuple(key.items())
    for priority, fields, action in _cached_entries(tuple(acl), direction, default):
        match = tuple(sorted(key_items + fields))
        if action is Action.ALLOW:
            entries.add(flow(dpid, table, priority, match, cookie, **allow))
        else:
            entries.add(flow(dpid, table, priority, match, cookie))
    return entries


# -- an access port -------------------------------------------------------------
def port_group_flows(dpid: int, port: int, vlan: int, owner: Owner,
                     side: Optional[SwitchSide]) -> Set[Entry]:
    """A VLAN admitted on an access port, with the template's port-side rules.

    ``side`` is None when the VMs behind the port in this VLAN use templates whose
    port-side rules differ: those rules then live on each VM's port instead.
    """
    cookie = owner.cookie
    vid = tagged(vlan)
    entries: Set[Entry] = set()
    meter = None
    if side is not None and side.bandwidth is not None:
        meter = port_group_meter(port, vlan)
        entries.add(MeterSpec(dpid, meter, side.bandwidth.rate_kbps,
                              side.bandwidth.burst_kbits, cookie=cookie))
    entries.add(flow(dpid, Table.CLASSIFY, Priority.VLAN_ADMIT,
                     make_match(in_port=port, vlan_vid=vid), cookie,
                     meter=meter, goto=Table.FROM_VM_PORT_ACL))
    rules = side.acl if side is not None else ()
    default = side.default_action if side is not None else Action.ALLOW
    entries |= acl_flows(dpid, Table.FROM_VM_PORT_ACL, {"in_port": port, "vlan_vid": vid},
                          cookie, tuple(rules), Direction.FROM_VM, default,
                          allow=dict(goto=Table.FORWARD))
    entries |= acl_flows(dpid, Table.TO_VM_PORT_ACL, {"metadata": port, "vlan_vid": vid},
                          cookie, tuple(rules), Direction.TO_VM, default,
                          allow=dict(actions=(Output(port),)))
    return entries
