"""What the network must do, from the facts alone: a behavioural oracle.

Written from the templates' documented semantics (docs/templates.md,
docs/architecture.md "Which rules go where"), not from the compiler: it imports
no engine or compiler module, only the template model, the binding record and
the fabric's role and port names. Given the switches and their roles, the links
that are up and the VMs bound to ports with their templates and states, it says
where a frame a VM sends must arrive:

- a frame between two forwarding VMs of one VLAN that every ACL on its way
  allows (the sender's ``virtual_switch`` from_vm, its ``access_port`` from_vm
  where the frame crosses its access port, the receiver's ``access_port`` and
  ``virtual_switch`` to_vm) arrives exactly at the receiver's port, once,
  untagged, and nowhere else;
- while a VM migrates (a pre-provisioned destination port), frames to it arrive
  at both its ports;
- a group-addressed frame arrives at every other forwarding VM of the VLAN whose
  rules allow it, once each;
- whether a VM's own frames reach its other port while it moves, and whether
  frames reach a new port on the server the VM already is on, is left open; so
  is whether a pre-provisioned port's frames are forwarded before the VM is
  activated (they may only ever reach what the rules allow);
- everything else arrives nowhere: other VLANs, denied traffic, a VM's frames
  with another source MAC or from a port it is not bound to, frames of a VM
  that does not forward (a copy to the controller at the ingress switch is the
  only thing allowed for those, since that is how VMs are detected);
- a VM whose template binds its IPv4 address (``bind_ip``) may send IPv4 and ARP
  only with that address or one of its template's ``allowed_addresses``, and
  before it is learned, only to the controller (or from an allowed address);
- a VM whose template is no ``dhcp_server`` sends no DHCP (udp source 67) or
  DHCPv6 (udp source 547) server message anywhere.

The access port's rules apply to traffic that crosses the access port, except
when VMs of different templates share a VLAN behind one access port (the
template merge): then each VM's own port-side rules apply to all it sends and
receives (docs/architecture.md, "Template merge").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from ryu_apps.core.binding import VmState
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.template_model import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    IP_TCP,
    IP_UDP,
    Action,
    AclRule,
    Direction,
    SwitchSide,
    Template,
)
from tests.support.fake_switches import Packet

BROADCAST = "ff:ff:ff:ff:ff:ff"
#: Where a copy of a frame leaves the network: (switch, port).
Exit = Tuple[int, int]


@dataclass(frozen=True)
class Vm:
    """A bound VM as the facts describe it."""

    mac: str
    dpid: int
    port: int
    template: Template
    state: VmState
    ip: Optional[str] = None     # the IPv4 address bound by anti-spoofing, if learned

    @property
    def forwards(self) -> bool:
        """Whether the VM's traffic flows in its state (docs/migration.md)."""
        return self.state in (VmState.PROVISIONING, VmState.ACTIVE, VmState.MIGRATING_OUT)


@dataclass
class Facts:
    """Switches, links that are up, bound VMs and migrations' destination ports."""

    roles: Dict[int, Role]
    links: Set[FrozenSet[PortRef]] = field(default_factory=set)
    vms: List[Vm] = field(default_factory=list)
    incoming: List[Vm] = field(default_factory=list)   # pre-provisioned destinations


# -- ACL semantics ---------------------------------------------------------------------
def _address_in(text: Optional[str], prefix) -> bool:
    return text is not None and prefix.version == 4 and \
        ipaddress.IPv4Address(text) in prefix


def _port_of(packet: Packet, which: str) -> Optional[int]:
    if packet.ip_proto == IP_TCP:
        return getattr(packet, f"tcp_{which}")
    if packet.ip_proto == IP_UDP:
        return getattr(packet, f"udp_{which}")
    return None


def rule_matches(rule: AclRule, packet: Packet) -> bool:
    """Whether one ACL rule matches a packet (None fields match anything)."""
    ethertypes = rule.ethertypes()
    if ethertypes is not None and packet.eth_type not in ethertypes:
        return False
    if rule.protocol is not None and packet.ip_proto != rule.protocol:
        return False
    for prefix, address in ((rule.src, packet.ipv4_src), (rule.dst, packet.ipv4_dst)):
        if prefix is not None and not (packet.eth_type == ETH_IPV4
                                       and _address_in(address, prefix)):
            return False
    for ports, which in ((rule.src_port, "src"), (rule.dst_port, "dst")):
        value = _port_of(packet, which)
        if ports is not None and (value is None or not ports.low <= value <= ports.high):
            return False
    return True


def side_allows(side: SwitchSide, direction: Direction, packet: Packet) -> bool:
    """The first rule of this direction that matches decides; else the side's default."""
    for rule in side.acl:
        if rule.direction is direction and rule_matches(rule, packet):
            return rule.action is Action.ALLOW
    return side.default_action is Action.ALLOW


# -- the network ---------------------------------------------------------------------------
class Oracle:
    """Expected exits of frames, from :class:`Facts`."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self._peers: Dict[PortRef, PortRef] = {}
        for link in facts.links:
            a, b = tuple(link)
            if a.dpid in facts.roles and b.dpid in facts.roles:
                self._peers[a], self._peers[b] = b, a
        self._component = self._components()
        self._merged = self._merged_vms()

    def _components(self) -> Dict[int, int]:
        component: Dict[int, int] = {}
        for start in sorted(self.facts.roles):
            if start in component:
                continue
            stack = [start]
            while stack:
                here = stack.pop()
                if here in component:
                    continue
                component[here] = start
                stack += [b.dpid for a, b in self._peers.items() if a.dpid == here]
        return component

    def access_port(self, dpid: int) -> Optional[PortRef]:
        """The access-switch port a server hangs off, if any."""
        ports = sorted(b for a, b in self._peers.items()
                       if a.dpid == dpid and self.facts.roles[b.dpid] is Role.ACCESS)
        return ports[0] if ports else None

    def _merged_vms(self) -> Set[str]:
        """VMs whose port-side rules sit on their own port: their group mixes templates."""
        groups: Dict[tuple, List[Vm]] = {}
        for vm in self.facts.vms + self.facts.incoming:
            access = self.access_port(vm.dpid)
            if access is not None and (vm.forwards or vm.state is VmState.PRE_PROVISIONED):
                groups.setdefault((access, vm.template.vlan), []).append(vm)
        merged: Set[str] = set()
        for members in groups.values():
            if len({vm.template.access_port for vm in members}) > 1:
                merged |= {vm.mac for vm in members}
        return merged

    def connected(self, a: int, b: int) -> bool:
        """Whether a path of links that are up joins two switches."""
        return self._component.get(a) == self._component.get(b) is not None

    def _port_side_applies(self, vm: Vm, other: Vm) -> bool:
        if vm.mac in self._merged:
            return True
        return vm.dpid != other.dpid and self.access_port(vm.dpid) is not None

    def sender_may_send(self, sender: Vm, packet: Packet) -> bool:
        """Anti-spoofing and the sender's from_vm rules on its virtual switch."""
        side = sender.template.virtual_switch
        if not side.dhcp_server and packet.ip_proto == IP_UDP and (
                (packet.eth_type, packet.udp_src) in ((ETH_IPV4, 67), (ETH_IPV6, 547))):
            return False   # the rogue-DHCP-server guard
        if side.bind_ip and packet.eth_type in (ETH_IPV4, ETH_ARP):
            source = packet.ipv4_src if packet.eth_type == ETH_IPV4 else packet.arp_spa
            allowed = source is not None and any(
                ipaddress.ip_address(source) in prefix for prefix in side.allowed_addresses)
            if not allowed and (sender.ip is None or source != sender.ip):
                return False
        return side_allows(sender.template.virtual_switch, Direction.FROM_VM, packet)

    def allows(self, sender: Vm, receiver: Vm, packet: Packet) -> bool:
        """Whether every rule on the way from ``sender`` to ``receiver`` lets it pass."""
        if sender.template.vlan != receiver.template.vlan:
            return False
        if not self.connected(sender.dpid, receiver.dpid):
            return False
        if not self.sender_may_send(sender, packet):
            return False
        if self._port_side_applies(sender, receiver) and not side_allows(
                sender.template.access_port, Direction.FROM_VM, packet):
            return False
        if self._port_side_applies(receiver, sender) and not side_allows(
                receiver.template.access_port, Direction.TO_VM, packet):
            return False
        return side_allows(receiver.template.virtual_switch, Direction.TO_VM, packet)

    def exits(self, sender: Vm, packet: Packet) -> Set[Exit]:
        """Where the frame ``sender`` sends from its own port must leave the network."""
        sends = sender.forwards or sender.state is VmState.PRE_PROVISIONED
        if not sends or packet.eth_src != sender.mac:
            return set()
        if int(packet.eth_dst.split(":")[0], 16) & 1:
            receivers = [vm for vm in self.facts.vms if vm.forwards and vm.mac != sender.mac]
        else:
            receivers = [vm for vm in self.facts.vms + self.facts.incoming
                         if vm.mac == packet.eth_dst and vm.mac != sender.mac
                         and (vm.forwards or self._migrating(vm))]
        return {(vm.dpid, vm.port) for vm in receivers if self.allows(sender, vm, packet)}

    def open_exits(self, sender: Vm, packet: Packet) -> Set[Exit]:
        """Exits the facts leave open: the sender's own other ports while it moves, and
        a receiver's new port on the server it already is on (both-ways delivery is
        promised along the path between two servers only)."""
        same_server_moves = {(vm.dpid, vm.port) for vm in self.facts.incoming
                             if vm.mac == packet.eth_dst and any(
                                 b.mac == vm.mac and b.dpid == vm.dpid for b in self.facts.vms)}
        return self.own_ports(sender) | same_server_moves

    def own_ports(self, sender: Vm) -> Set[Exit]:
        """The sender's other ports while it moves: whether its own frames come back
        there is left open (the VM runs at one of them only)."""
        return {(vm.dpid, vm.port) for vm in self.facts.vms + self.facts.incoming
                if vm.mac == sender.mac and (vm.dpid, vm.port) != (sender.dpid, sender.port)}

    def _migrating(self, destination: Vm) -> bool:
        """A pre-provisioned destination of a VM that still forwards at its source."""
        return destination.state is VmState.PRE_PROVISIONED and any(
            vm.mac == destination.mac and vm.forwards for vm in self.facts.vms)

    def vm(self, mac: str) -> Optional[Vm]:
        """The bound VM with this MAC (not a migration's destination)."""
        return next((vm for vm in self.facts.vms if vm.mac == mac), None)


#: A VM's own flows on its server (issue #13), besides the per-VM address allows below.
MAX_OWN_FLOWS = 6
#: The IPv6 guard's per-VM allows (bind_ipv6: its link-local's source and NA; the OUTPUT
#: flow is shared, so a guarded VM fits in 6 too); allowed prefixes are the template's.
#: docs/templates.md gives these costs.
IPV6_GUARD_OWN_FLOWS = 2


def own_flow_budget(bound_ipv6: int = 0) -> int:
    """At most how many flows of its own a VM has on its server: 6 (its classifier, IPv4
    and ARP source checks, delivery, and the IPv6 guard's two), and two more for each
    global IPv6 address bound to it (``bind_ipv6: first_seen`` or ``dhcpv6``).

    (A merged template whose port side meters each VM also gives each VM a metered
    pass, and with ``bind_ipv6`` its DAD probes and allowed prefixes; no default
    template does.)"""
    return MAX_OWN_FLOWS + IPV6_GUARD_OWN_FLOWS * bound_ipv6


def probes(sender: Vm, receiver_mac: str, receiver_ip: str,
           sender_ip: str) -> Iterable[Packet]:
    """A few frames that exercise VLANs and the default library's rules."""
    def tcp(src_port: int, dst_port: int) -> Packet:
        return Packet(sender.mac, receiver_mac, ETH_IPV4, ip_proto=IP_TCP,
                      ipv4_src=sender_ip, ipv4_dst=receiver_ip,
                      tcp_src=src_port, tcp_dst=dst_port)
    yield Packet(sender.mac, receiver_mac, ETH_IPV4, ip_proto=1, ipv4_src=sender_ip,
                 ipv4_dst=receiver_ip)
    yield tcp(40000, 80)
    yield tcp(80, 40000)
    yield tcp(40000, 5432)
    yield tcp(40000, 22)


def arp_broadcast(sender: Vm, sender_ip: str) -> Packet:
    """An ARP request from ``sender``."""
    return Packet(sender.mac, BROADCAST, ETH_ARP, arp_spa=sender_ip)
