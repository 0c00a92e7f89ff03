"""The conformance sweep's oracle: what a probe between two VMs must do, from the docs.

Written from ``docs/templates.md`` and ``docs/architecture.md`` ("Which rules
go where", "Template merge") alone, on the library as its YAML text says it:
it imports nothing of ``ryu_apps.core`` (no parser, compiler, trace or table
model), so a defect there cannot hide in it. IPv4, and IPv6 for seeds that give
their VMs an IPv6 address (no ``bind_ipv6``: the IPv6 guard stays off, and
static neighbours keep neighbour discovery out of the probes). What it states:

- VMs of different VLANs never reach each other;
- a packet a VM sends is judged by its template's ``virtual_switch`` rules of
  direction ``from_vm``, then (where it crosses the access port) its template's
  ``access_port`` ``from_vm`` rules, the receiver's ``access_port`` ``to_vm``
  rules, then the receiver's ``virtual_switch`` ``to_vm`` rules; in each side
  the first rule of that direction that matches decides, else the side's
  ``default_action``;
- a rule field left out matches anything; ``ethertype`` ``arp`` never matches IP;
  a rule's family is its ``ethertype``, else its prefixes' family, else its
  protocol's (``icmp`` IPv4, ``icmpv6`` IPv6), else both (a ``tcp`` rule with no
  prefix matches IPv4 and IPv6: "one rule for both where none is"); a plain
  address is a /32 or /128; a port range is inclusive; an ICMP type name is its
  protocol's family's number; a rule without ``icmp_code`` matches every code;
- the access port's rules apply where traffic crosses the access port (VMs on
  different servers); between VMs of one server they apply only under the
  template merge: VMs of different templates share a VLAN on that server and
  their ``access_port`` sections differ, and then every VM of that VLAN there
  is held to its own template's port-side rules for all it sends and receives;
- a VM whose ``virtual_switch`` has ``bind_ip`` (``true``, ``first_seen``) sends IPv4
  only from its own (bound) address and its ``allowed_addresses``; a datagram from
  any other source is dropped at its port whatever the rules say; without
  ``bind_ip`` (or ``false``) there is no IPv4 guard and the rules judge every source;
- a VM whose ``virtual_switch`` has ``bind_ipv6`` (``link_local``, ``first_seen``)
  sends IPv6 only from its link-local address, its bound global one (``first_seen``:
  the first it sends from) and its IPv6 ``allowed_addresses``; anything else it sends
  (a request, or a reply) is dropped whatever the rules say (docs/security.md);
- a ``stateful`` virtual-switch side commits what it allows (a rule or, read
  from the code's side of an ambiguity the docs leave, its ``default_action``)
  and passes that connection's replies without any rule; the access port is
  always stateless; the original direction is judged by the rules again.

A probe is an exchange: ICMP echo (request type 8, reply type 0; ICMPv6 128 and
129), an ARP request
and its reply (rules of ethertype ``arp`` and rules that match every frame judge
them; never tracked), or TCP or UDP from a fixed source port; it works when the
request and the reply both pass.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

#: ICMP (IPv4) type names of docs/templates.md.
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "redirect": 5,
              "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10,
              "time-exceeded": 11, "parameter-problem": 12}
#: ICMPv6 type names of docs/templates.md.
ICMP6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
               "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
               "router-solicitation": 133, "router-advertisement": 134,
               "neighbor-solicitation": 135, "neighbor-advertisement": 136, "redirect": 137}
#: Echo request and reply types per ICMP protocol.
ECHO = {"icmp": (8, 0), "icmpv6": (128, 129)}


@dataclass(frozen=True)
class Endpoint:
    """A VM as the oracle sees it: name, template id, IPv4 address, its server, and its
    IPv6 address if it has one."""

    name: str
    template_id: int
    ip: str
    server: Tuple[int, int]
    ip6: Optional[str] = None


@dataclass(frozen=True)
class Packet:
    """One IP packet's (or ARP frame's) fields the rules can match."""

    protocol: str                       # icmp, icmpv6, tcp, udp, or arp
    src_ip: str
    dst_ip: str
    src_port: Optional[int] = None
    dst_port: Optional[int] = None
    icmp_type: Optional[int] = None

    def reply(self) -> "Packet":
        """The answer: addresses and ports swapped, an echo request answered."""
        echo = ECHO.get(self.protocol)
        icmp = echo[1] if echo and self.icmp_type == echo[0] else self.icmp_type
        return Packet(self.protocol, self.dst_ip, self.src_ip, self.dst_port, self.src_port,
                      icmp)

    @property
    def family(self) -> int:
        """4 or 6 (ARP: 4, by its addresses)."""
        return ipaddress.ip_address(self.src_ip).version


@dataclass(frozen=True)
class Probe:
    """What is sent: ``icmp``, ``arp`` (a request), or ``tcp``/``udp`` to ``port`` from
    ``source_port``; ``icmp6``, ``tcp6`` and ``udp6`` the same over IPv6; ``udp`` with a
    ``source_ip`` is sent from that address and judged one way (did it arrive)."""

    protocol: str
    port: Optional[int] = None
    source_port: Optional[int] = None
    source_ip: Optional[str] = None      # udp only: sent from this address, not the VM's

    def __str__(self) -> str:
        if self.protocol in ("icmp", "arp", "icmp6"):
            return self.protocol
        text = f"{self.protocol}/{self.port}<{self.source_port}"
        return text + (f" from {self.source_ip}" if self.source_ip else "")

    @property
    def ipv6(self) -> bool:
        return self.protocol.endswith("6")


@dataclass(frozen=True)
class Step:
    """One side's decision on one packet."""

    vm: str
    template_id: int
    side: str                          # virtual_switch or access_port
    direction: str                     # from_vm or to_vm
    rule: Optional[int]                # acl index, None: the default action or a reply
    action: str                        # allow or deny
    why: str = ""                      # "default", "established reply"

    def __str__(self) -> str:
        where = f"acl[{self.rule}]" if self.rule is not None else self.why
        return (f"{self.action} by {self.vm}'s template {self.template_id} {self.side} "
                f"{self.direction} {where}")


@dataclass(frozen=True)
class Verdict:
    """Whether the request arrives (``forward``) and the exchange works (``passes``)."""

    forward: bool
    passes: bool
    reason: str                        # what decided: a deny step, the VLANs, or all allowed
    steps: Tuple[Step, ...]


class Oracle:
    """Expected verdicts for one library (its YAML mapping) and one set of VMs."""

    def __init__(self, library: dict, vms: Iterable[Endpoint]) -> None:
        self.templates: Dict[int, dict] = {_id(t["id"]): t for t in library["templates"]}
        self.vms: Dict[str, Endpoint] = {vm.name: vm for vm in vms}

    def vlan(self, vm: Endpoint) -> int:
        return int(self.templates[vm.template_id]["vlan"])

    def merged(self, server: Tuple[int, int], vlan: int) -> bool:
        """The template merge on ``server`` for ``vlan``: templates whose port sides differ."""
        sides = {}
        for vm in self.vms.values():
            if vm.server == server and self.vlan(vm) == vlan:
                sides[vm.template_id] = self.templates[vm.template_id]["access_port"]
        return len(sides) > 1 and any(s != next(iter(sides.values())) for s in sides.values())

    def port_rules_apply(self, src: Endpoint, dst: Endpoint) -> bool:
        if src.server != dst.server:
            return True
        return self.merged(src.server, self.vlan(src))

    def verdict(self, src_name: str, dst_name: str, probe: Probe) -> Verdict:
        """The expected outcome of ``probe`` from VM ``src_name`` to VM ``dst_name``."""
        src, dst = self.vms[src_name], self.vms[dst_name]
        if self.vlan(src) != self.vlan(dst):
            return Verdict(False, False, f"different VLANs {self.vlan(src)} and "
                                         f"{self.vlan(dst)}", ())
        src_ip, dst_ip = (src.ip6, dst.ip6) if probe.ipv6 else (src.ip, dst.ip)
        if src_ip is None or dst_ip is None:
            raise ValueError(f"{probe} between {src.name} and {dst.name}: no IPv6 address")
        if probe.source_ip is not None:
            return self._from_other(src, dst, probe)
        if probe.ipv6 and self._ipv6_refused(src, src_ip) is not None:
            return Verdict(False, False, f"request: {self._ipv6_refused(src, src_ip)}", ())
        if probe.protocol in ("icmp", "icmp6"):
            protocol = "icmpv6" if probe.ipv6 else "icmp"
            packet = Packet(protocol, src_ip, dst_ip, icmp_type=ECHO[protocol][0])
        elif probe.protocol == "arp":
            packet = Packet("arp", src_ip, dst_ip)
        else:
            packet = Packet(probe.protocol.rstrip("6"), src_ip, dst_ip, probe.source_port,
                            probe.port)
        ports = self.port_rules_apply(src, dst)
        forward = self._path(src, dst, packet, ports, committed=set())
        steps = list(forward)
        denied = _first_deny(forward)
        if denied is not None:
            return Verdict(False, False, f"request: {denied}", tuple(steps))
        if probe.ipv6 and self._ipv6_refused(dst, dst_ip) is not None:
            return Verdict(True, False, f"reply: {self._ipv6_refused(dst, dst_ip)}",
                           tuple(steps))
        committed = {vm.name for vm in (src, dst)
                     if self._stateful(vm) and packet.protocol != "arp"}   # ARP: untracked
        reverse = self._path(dst, src, packet.reply(), ports, committed)
        steps += reverse
        denied = _first_deny(reverse)
        if denied is not None:
            return Verdict(True, False, f"reply: {denied}", tuple(steps))
        return Verdict(True, True, "every side allows the request and the reply", tuple(steps))

    def _from_other(self, src: Endpoint, dst: Endpoint, probe: Probe) -> Verdict:
        """A datagram from an address not the VM's own, judged one way: the IPv4 guard
        (``bind_ip`` other than false) drops it unless an ``allowed_addresses`` prefix
        holds it (docs/templates.md), whatever the rules say; else the rules judge it."""
        assert probe.source_ip is not None
        if probe.ipv6:
            return self._from_other6(src, dst, probe)
        side = self.templates[src.template_id]["virtual_switch"]
        guard = side.get("bind_ip", False)
        allowed = [ipaddress.ip_network(str(p), strict=True)
                   for p in side.get("allowed_addresses") or ()]
        address = ipaddress.ip_address(probe.source_ip)
        if guard not in (False, "false") and not any(address in p for p in allowed):
            return Verdict(False, False, f"source {address} is {src.name}'s neither bound nor "
                                         f"allowed address (bind_ip: {guard})", ())
        packet = Packet("udp", probe.source_ip, dst.ip, probe.source_port, probe.port)
        steps = self._path(src, dst, packet, self.port_rules_apply(src, dst), committed=set())
        denied = _first_deny(steps)
        if denied is not None:
            return Verdict(False, False, f"request: {denied}", tuple(steps))
        why = "allowed address" if guard not in (False, "false") else "no IPv4 guard"
        return Verdict(True, True, f"{why}; every side allows the request", tuple(steps))

    def _from_other6(self, src: Endpoint, dst: Endpoint, probe: Probe) -> Verdict:
        """An IPv6 datagram from an address not the VM's own, judged one way: the IPv6
        guard (``bind_ipv6``) drops it unless an IPv6 ``allowed_addresses`` prefix holds
        it (docs/security.md "IPv6 anti-spoofing"); else the rules judge it."""
        assert probe.source_ip is not None and dst.ip6 is not None
        refused = self._ipv6_refused(src, probe.source_ip)
        if refused is not None:
            return Verdict(False, False, refused, ())
        packet = Packet("udp", probe.source_ip, dst.ip6, probe.source_port, probe.port)
        steps = self._path(src, dst, packet, self.port_rules_apply(src, dst), committed=set())
        denied = _first_deny(steps)
        if denied is not None:
            return Verdict(False, False, f"request: {denied}", tuple(steps))
        mode = self.templates[src.template_id]["virtual_switch"].get("bind_ipv6", False)
        why = "allowed address" if mode not in (False, "false") else "no IPv6 guard"
        return Verdict(True, True, f"{why}; every side allows the request", tuple(steps))

    def _ipv6_refused(self, vm: Endpoint, source: str) -> Optional[str]:
        """Why ``vm``'s IPv6 guard drops what it sends from ``source``, or None: with
        ``bind_ipv6`` a VM sends only from its link-local address (sweep VMs have none),
        its bound global one (``first_seen``: its own address, which the sweep has it
        send from first) and its IPv6 ``allowed_addresses``."""
        side = self.templates[vm.template_id]["virtual_switch"]
        mode = side.get("bind_ipv6", False)
        if mode in (False, "false", None):
            return None
        address = ipaddress.ip_address(source)
        if address.is_link_local or (mode == "first_seen" and source == vm.ip6):
            return None
        if any(address in ipaddress.ip_network(str(p)) for p in
               side.get("allowed_addresses") or ()):
            return None
        return (f"source {address} is not {vm.name}'s link-local, bound or allowed IPv6 "
                f"address (bind_ipv6: {mode})")

    def _stateful(self, vm: Endpoint) -> bool:
        return self.templates[vm.template_id]["virtual_switch"].get("stateful") is True

    def _path(self, sender: Endpoint, receiver: Endpoint, packet: Packet, ports: bool,
              committed: set) -> List[Step]:
        """Each side's step for one packet, in order, up to the first deny."""
        sides = [(sender, "virtual_switch", "from_vm")]
        if ports:
            sides += [(sender, "access_port", "from_vm"), (receiver, "access_port", "to_vm")]
        sides.append((receiver, "virtual_switch", "to_vm"))
        steps: List[Step] = []
        for vm, side, direction in sides:
            if side == "virtual_switch" and vm.name in committed:
                step = Step(vm.name, vm.template_id, side, direction, None, "allow",
                            "established reply")
            else:
                step = judge(self.templates[vm.template_id], side, direction, packet, vm.name)
            steps.append(step)
            if step.action == "deny":
                break
        return steps


def _first_deny(steps: List[Step]) -> Optional[Step]:
    return next((s for s in steps if s.action == "deny"), None)


def judge(template: dict, side: str, direction: str, packet: Packet, vm: str = "") -> Step:
    """The first rule of ``direction`` in ``template``'s ``side`` that matches, or the
    side's default action."""
    entries = template[side]
    for index, rule in enumerate(entries.get("acl") or ()):
        if rule["direction"] == direction and rule_matches(rule, packet):
            return Step(vm, _id(template["id"]), side, direction, index, rule["action"])
    return Step(vm, _id(template["id"]), side, direction, None, entries["default_action"],
                "default")


def _id(value: object) -> int:
    """A template id as YAML gives it: an integer or a hex string like ``"0x00FA"``."""
    return int(value, 16) if isinstance(value, str) else int(str(value))


#: Fields that make a rule without ``ethertype`` an IP rule (inferred IPv4 or IPv6).
IP_FIELDS = ("protocol", "src", "dst", "src_port", "dst_port", "icmp_type", "icmp_code")


def rule_matches(rule: dict, packet: Packet) -> bool:
    """Whether one ACL rule (as written in YAML) matches an IP packet or an ARP frame."""
    if packet.protocol == "arp":   # ethertype arp, or a rule that matches every frame
        if rule.get("ethertype") is None:
            return not any(key in rule for key in IP_FIELDS)
        return rule["ethertype"] == "arp"
    if packet.family not in rule_families(rule):
        return False
    if rule.get("protocol") not in (None, packet.protocol):
        return False
    for key, address in (("src", packet.src_ip), ("dst", packet.dst_ip)):
        if key in rule:
            network = ipaddress.ip_network(str(rule[key]), strict=True)
            if ipaddress.ip_address(address) not in network:
                return False
    for key, port in (("src_port", packet.src_port), ("dst_port", packet.dst_port)):
        if key in rule:
            low, high = port_range(rule[key])
            if port is None or not low <= port <= high:
                return False
    if "icmp_type" in rule:
        wanted = rule["icmp_type"]
        names = ICMP6_TYPES if packet.protocol == "icmpv6" else ICMP_TYPES
        number = names[wanted] if isinstance(wanted, str) else int(wanted)
        if packet.icmp_type != number:
            return False
        if "icmp_code" in rule and int(rule["icmp_code"]) != 0:   # echo is code 0
            return False
    return True


def rule_families(rule: dict) -> Tuple[int, ...]:
    """The IP families a rule applies to: its ethertype's, else its prefixes', else its
    protocol's (icmp: 4, icmpv6: 6), else both; () for an ARP rule."""
    ethertype = rule.get("ethertype")
    if ethertype is not None:
        return {"ipv4": (4,), "ipv6": (6,)}.get(str(ethertype), ())
    for key in ("src", "dst"):
        if key in rule:
            return (ipaddress.ip_network(str(rule[key]), strict=True).version,)
    return {"icmp": (4,), "icmpv6": (6,)}.get(str(rule.get("protocol")), (4, 6))


def port_range(value: object) -> Tuple[int, int]:
    """``443`` -> (443, 443); ``"1024-65535"`` -> (1024, 65535)."""
    if isinstance(value, int):
        return value, value
    low, _, high = str(value).partition("-")
    return int(low), int(high or low)
