"""A seeded generator of a valid template library and the VMs that use it.

The conformance sweep (``ryu_apps.lab.sweep``) runs dynprov on libraries and
topologies other than the demo's. From one seed (``random.Random(seed)``, no
wall-clock randomness) this module draws:

- 3-5 templates with random 16-bit ids (some written as hex strings) usable
  under ``prefix/16`` (bit 0x0100, the MAC's I/G bit, clear; in some seeds one
  of 0-15; never the default library's 0x00F0-0x00FF, whose conntrack zones
  other test beds on this machine use), names, VLANs (in most seeds two
  templates share one; sometimes 1 or 4094), and
  both sides with random ACL rules: ICMP (with or without an echo type), rules
  of every IPv4 protocol, TCP and UDP with ports and port ranges, prefixes
  drawn from the VMs' /16, allow and deny, default actions, ``bind_ip`` and, on
  some templates, ``stateful: true``;
- a topology size (access switches 1-3, servers per access switch 1-2) and the
  VMs: 1-3 per server (3 at least; in some seeds 7-9 on one server, more than a
  flood chunk's 6 ports), each with a template, a ``prefix/16`` MAC (in scheme
  seeds the scheme's, ``sweep_schemes``) and an address in its template's /24;
- in about half the seeds (drawn apart, so the rest of a seed is the same either
  way) IPv6 too: each VM also gets ``ip6_of`` its IPv4 address (the template's /24
  ``10.a.b.0`` maps to the /64 ``fd00:0:a:b::``, the /16 to the /48) and each side
  0-3 IPv6 rules among its others (ICMPv6 with or without an echo type, TCP and
  UDP with an IPv6 prefix, ``ethertype: ipv6``).

The library is a plain YAML-level mapping (what a file would hold), so the
oracle (``sweep_oracle``) reads the same text an operator writes, not dynprov's
parsed model. Rules that the validator refuses as unreachable (shadowed or
duplicate) are dropped and the library validated again; any other refusal is a
generator bug and raises.
"""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass
from typing import Dict, List, Tuple

from ryu_apps.lab.sweep_bandwidth import add_bandwidth
from ryu_apps.lab.sweep_oracle import Endpoint
from ryu_apps.lab.sweep_schemes import draw_scheme, encode, scheme_ids, stray_ids
from ryu_apps.lab.sweep_sources import add_allowed_addresses
from ryu_apps.lab.sweep_sources6 import add_ipv6_guard, keep_ipv6_guard

#: Ports the rules draw from: well-known services and a few high ones.
SERVICE_PORTS = (22, 53, 80, 123, 443, 3306, 5432, 6379, 8080, 9000)
#: Source ports the probes use (the ephemeral range Linux draws from).
SOURCE_PORTS = (32768, 60999)
#: Port ranges the rules may name (both ends inclusive).
PORT_RANGES = ("1-1023", "1024-65535", "8000-8099", "5000-5999", "40000-49999")
_UNREACHABLE = re.compile(r"\.acl\[(\d+)\]$")


@dataclass(frozen=True)
class VmPlan:
    """One VM of a sweep: name, template, MAC, IPv4 address, (access, server) numbers."""

    name: str
    template_id: int
    mac: str
    ip: str
    access: int
    server: int

    @property
    def server_key(self) -> Tuple[int, int]:
        return (self.access, self.server)


@dataclass(frozen=True)
class SweepCase:
    """What one seed draws: the library document, the topology size and the VMs."""

    seed: int
    library: dict
    access: int
    servers: int
    vms: Tuple[VmPlan, ...]
    network: str                 # the VMs' /16
    subnets: Tuple[str, ...]     # each template's /24, in library order
    ipv6: bool = False           # the VMs have IPv6 addresses (``ip6_of``) too
    sources: bool = False        # VMs also send from other addresses (``source_address``)
    sources6: bool = False       # IPv6 guards, and IPv6 from other addresses (sweep_sources6)
    scheme: str = "prefix/16"    # the controller's identifier scheme (sweep_schemes)
    strays: Tuple[VmPlan, ...] = ()   # VMs whose MAC selects no template (sweep_schemes)

    def template(self, template_id: int) -> dict:
        """The library entry of ``template_id``."""
        return next(t for t in self.library["templates"] if id_of(t) == template_id)


def ip6_of(address: str) -> str:
    """The IPv6 address a sweep VM pairs with IPv4 ``address``: 10.a.b.c -> fd00:0:a:b::c
    (hex); the same map takes a /24 to a /64 and a /16 to a /48."""
    _, a, b, c = (int(part) for part in address.split("/")[0].split("."))
    return f"fd00:0:{a:x}:{b:x}::{c:x}"


def _net6(network: str) -> ipaddress.IPv6Network:
    """``ip6_of`` for a /24 or a /16."""
    net = ipaddress.IPv4Network(network)
    return ipaddress.IPv6Network((ip6_of(str(net.network_address)),
                                  64 if net.prefixlen == 24 else 48))


def id_of(template: dict) -> int:
    """A library entry's id, written as an integer or a hex string (``"0x00FA"``)."""
    value = template["id"]
    return int(value, 16) if isinstance(value, str) else int(value)


def mac_of(template_id: int, unique_id: int) -> str:
    """The ``prefix/16`` MAC of (template id, 32-bit unique id)."""
    value = (template_id << 32) | unique_id
    return ":".join("%02x" % ((value >> shift) & 0xFF) for shift in range(40, -8, -8))


def _template_ids(rng: random.Random, count: int) -> List[int]:
    ids: List[int] = []
    small = rng.random() < 0.25    # one id of 0-15: zone 0, the lowest tags and cookies
    while len(ids) < count:
        candidate = rng.randrange(0, 16) if small and not ids else rng.randrange(1, 0x10000)
        if candidate & 0x0100 or 0x00F0 <= candidate <= 0x00FF or candidate in ids:
            continue
        ids.append(candidate)
    return ids


def _vlans(rng: random.Random, count: int) -> List[int]:
    distinct = count if rng.random() < 0.15 else rng.randint(1, max(1, count // 2))
    pool = rng.sample(range(2, 4094), distinct)
    if rng.random() < 0.2:                     # the ends of the range
        pool[0] = rng.choice((1, 4094))
    vlans = pool + [rng.choice(pool) for _ in range(count - distinct)]
    rng.shuffle(vlans)
    return vlans


def _prefix(rng: random.Random, subnets: List[ipaddress.IPv4Network],
            hosts: List[str]) -> str:
    return _drawn_prefix(rng, subnets, hosts, half=25, wide=16, host=str)


def _drawn_prefix(rng: random.Random, subnets: list, hosts: List[str], half: int,
                  wide: int, host) -> str:
    """A rule's prefix: one of the seed's subnets, half of one, a VM's address
    (``host`` spells it), else the ``wide`` supernet of the first subnet."""
    kind = rng.random()
    if kind < 0.4:
        return str(rng.choice(subnets))
    if kind < 0.6:
        return str(list(rng.choice(subnets).subnets(new_prefix=half))[rng.randrange(2)])
    if kind < 0.85 and hosts:
        return host(rng.choice(hosts))
    return str(subnets[0].supernet(new_prefix=wide))


def _ports(rng: random.Random) -> object:
    if rng.random() < 0.7:
        return rng.choice(SERVICE_PORTS)
    return rng.choice(PORT_RANGES)


def _rule(rng: random.Random, subnets: List[ipaddress.IPv4Network],
          hosts: List[str]) -> dict:
    rule: dict = {"action": rng.choice(("allow", "allow", "allow", "deny")),
                  "direction": rng.choice(("to_vm", "from_vm"))}
    if rng.random() < 0.15:
        rule["ethertype"] = "ipv4"
    if rng.random() < 0.12:   # every IPv4 packet from or to a prefix, whatever its protocol
        rule[rng.choice(("src", "dst"))] = _prefix(rng, subnets, hosts)
        return rule
    protocol = rng.choice(("icmp", "tcp", "tcp", "udp"))
    rule["protocol"] = protocol
    for field in ("src", "dst"):
        if rng.random() < 0.35:
            rule[field] = _prefix(rng, subnets, hosts)
    if protocol == "icmp":
        if rng.random() < 0.4:
            rule["icmp_type"] = rng.choice(("echo-request", "echo-reply", 8, 0))
            if rng.random() < 0.3:
                rule["icmp_code"] = 0
    else:
        if rng.random() < 0.8:
            rule["dst_port"] = _ports(rng)
        if rng.random() < 0.25:
            rule["src_port"] = _ports(rng)
    return rule


def _side(rng: random.Random, subnets: List[ipaddress.IPv4Network], hosts: List[str],
          rules: int, virtual_switch: bool) -> dict:
    allow_share = 0.6 if virtual_switch else 0.75
    side: dict = {"default_action": "allow" if rng.random() < allow_share else "deny"}
    if virtual_switch:
        if rng.random() < 0.5:
            side["bind_ip"] = True
        if rng.random() < 0.3:   # stateful: mostly deny by default, where replies matter
            side["stateful"] = True
            side["default_action"] = "deny" if rng.random() < 0.7 else "allow"
    acl = [_rule(rng, subnets, hosts) for _ in range(rules)]
    if virtual_switch and rng.random() < 0.5:   # ARP both ways, as the docs advise
        acl[:0] = [{"action": "allow", "direction": d, "ethertype": "arp"}
                   for d in ("to_vm", "from_vm")]
    if acl:
        side["acl"] = acl
    return side


def generate(seed: int) -> SweepCase:
    """The sweep case of ``seed``: a library that validates, a topology, its VMs."""
    rng = random.Random(seed)
    count = rng.randint(3, 5)
    scheme = draw_scheme(seed)
    ids = scheme_ids(random.Random(seed * 7907 + 31), _template_ids(rng, count), scheme)
    vlans = _vlans(rng, count)
    network = ipaddress.IPv4Network((f"10.{rng.randint(1, 250)}.0.0", 16))
    subnets = rng.sample(list(network.subnets(new_prefix=24))[1:255], count)
    access, servers = rng.randint(1, 3), rng.randint(1, 2)
    vms: List[VmPlan] = []
    used_hosts: Dict[int, int] = {}
    dense = (rng.randint(1, access), rng.randint(1, servers)) if rng.random() < 0.2 else None
    for a in range(1, access + 1):
        for s in range(1, servers + 1):
            # a dense server: more VMs than one flood chunk (6 ports) holds
            for _ in range(rng.randint(7, 9) if (a, s) == dense else rng.randint(1, 3)):
                index = rng.randrange(count)
                used_hosts[index] = used_hosts.get(index, 9) + 1
                ip = str(subnets[index].network_address + used_hosts[index])
                unique = rng.randrange(1, 1 << 32)
                vms.append(VmPlan(f"v{len(vms) + 1}", ids[index],
                                  encode(scheme, ids[index], unique), ip, a, s))
    while len(vms) < 3:   # a pair or more to probe, and a third VM for the merge
        index = rng.randrange(count)
        used_hosts[index] = used_hosts.get(index, 9) + 1
        ip = str(subnets[index].network_address + used_hosts[index])
        vms.append(VmPlan(f"v{len(vms) + 1}", ids[index],
                          encode(scheme, ids[index], rng.randrange(1, 1 << 32)), ip, 1, 1))
    hosts = [vm.ip for vm in vms]
    templates = []
    for index, template_id in enumerate(ids):
        templates.append({
            "id": f"0x{template_id:04X}" if rng.random() < 0.3 else template_id,
            "name": f"t{template_id:04x}",
            "description": f"sweep seed {seed}, template {index}",
            "vlan": vlans[index],
            "virtual_switch": _side(rng, subnets, hosts, rng.randint(0, 6), True),
            "access_port": _side(rng, subnets, hosts, rng.randint(0, 3), False)})
    library = {"templates": templates}
    ipv6 = random.Random(seed * 15485863 + 6).random() < 0.5
    if ipv6:
        _add_ipv6_rules(random.Random(seed * 7 + 6), library, [str(s) for s in subnets], hosts)
    sources = random.Random(seed * 104723 + 12).random() < 0.6
    if sources:
        add_allowed_addresses(random.Random(seed * 31 + 12), library, network, subnets)
    sources6 = ipv6 and random.Random(seed * 7727 + 21).random() < 0.7
    if sources6:
        add_ipv6_guard(random.Random(seed * 53 + 21), library, str(network),
                       [str(s) for s in subnets])
    _prune_unreachable(library)
    if random.Random(seed * 104729 + 13).random() < 0.25:   # limits change no validation
        add_bandwidth(random.Random(seed * 37 + 13), library,
                      [Endpoint(vm.name, vm.template_id, vm.ip, vm.server_key) for vm in vms])
    return SweepCase(seed, library, access, servers, tuple(vms), str(network),
                     tuple(str(s) for s in subnets), ipv6, sources, sources6, scheme,
                     _strays(seed, scheme, ids, subnets[0], access, servers))


def _strays(seed: int, scheme: str, ids: List[int], subnet: ipaddress.IPv4Network,
            access: int, servers: int) -> Tuple[VmPlan, ...]:
    """A scheme seed's 1-2 VMs whose MAC selects no template (``sweep_schemes``)."""
    if scheme == "prefix/16":
        return ()
    rng = random.Random(seed * 7907 + 30)
    return tuple(VmPlan(f"x{n + 1}", template_id,
                        encode(scheme, template_id, rng.randrange(1, 1 << 32)),
                        str(subnet.network_address + 200 + n),
                        rng.randint(1, access), rng.randint(1, servers))
                 for n, template_id in enumerate(stray_ids(rng, scheme, ids,
                                                           rng.randint(1, 2))))


def redraw(case: SweepCase) -> SweepCase:
    """A reload's library for ``case``: the same templates (ids, names) and VMs, new
    VLANs and new sides (rules, default actions, ``bind_ip``, ``stateful``)."""
    rng = random.Random(case.seed * 1000003 + 7)
    subnets = [ipaddress.IPv4Network(s) for s in case.subnets]
    hosts = [vm.ip for vm in case.vms]
    vlans = _vlans(rng, len(subnets))
    templates = [dict(entry, vlan=vlans[index],
                      description=f"sweep seed {case.seed}, template {index}, reloaded",
                      virtual_switch=_side(rng, subnets, hosts, rng.randint(0, 6), True),
                      access_port=_side(rng, subnets, hosts, rng.randint(0, 3), False))
                 for index, entry in enumerate(case.library["templates"])]
    library = {"templates": templates}
    if case.ipv6:
        _add_ipv6_rules(random.Random(case.seed * 7 + 66), library, list(case.subnets), hosts)
    for old, new in zip(case.library["templates"], templates):   # IPv4 ones need bind_ip
        allowed = [a for a in old["virtual_switch"].get("allowed_addresses") or ()
                   if ":" not in str(a)]
        if allowed and new["virtual_switch"].get("bind_ip"):
            new["virtual_switch"]["allowed_addresses"] = allowed
        keep_ipv6_guard(old["virtual_switch"], new["virtual_switch"])
    _prune_unreachable(library)
    return SweepCase(case.seed, library, case.access, case.servers, case.vms, case.network,
                     case.subnets, case.ipv6, case.sources, case.sources6, case.scheme,
                     case.strays)


def _prefix6(rng: random.Random, subnets: List[ipaddress.IPv6Network], hosts: List[str]) -> str:
    return _drawn_prefix(rng, subnets, hosts, half=65, wide=48, host=ip6_of)


def _rule6(rng: random.Random, subnets: List[ipaddress.IPv6Network], hosts: List[str]) -> dict:
    """An IPv6-only rule: ICMPv6, all IPv6 (from or to a prefix), or TCP/UDP with a prefix."""
    rule: dict = {"action": rng.choice(("allow", "allow", "deny")),
                  "direction": rng.choice(("to_vm", "from_vm"))}
    kind = rng.random()
    if kind < 0.3:
        rule["protocol"] = "icmpv6"
        if rng.random() < 0.6:
            rule["icmp_type"] = rng.choice(("echo-request", "echo-reply", 128, 129))
        if rng.random() < 0.3:
            rule[rng.choice(("src", "dst"))] = _prefix6(rng, subnets, hosts)
        return rule
    if kind < 0.45:
        rule["ethertype"] = "ipv6"
        if rng.random() < 0.6:
            rule[rng.choice(("src", "dst"))] = _prefix6(rng, subnets, hosts)
        return rule
    if rng.random() < 0.3:
        rule["ethertype"] = "ipv6"
    rule["protocol"] = rng.choice(("tcp", "udp"))
    rule[rng.choice(("src", "dst"))] = _prefix6(rng, subnets, hosts)
    if rng.random() < 0.8:
        rule["dst_port"] = _ports(rng)
    if rng.random() < 0.2:
        rule["src_port"] = _ports(rng)
    return rule


def _add_ipv6_rules(rng: random.Random, library: dict, subnets: List[str],
                    hosts: List[str]) -> None:
    """0-3 IPv6 rules (0-2 on the access port) at random places in every side's ACL."""
    nets = [_net6(s) for s in subnets]
    for template in library["templates"]:
        for side, most in (("virtual_switch", 3), ("access_port", 2)):
            acl = template[side].setdefault("acl", [])
            for _ in range(rng.randint(0, most)):
                acl.insert(rng.randint(0, len(acl)), _rule6(rng, nets, hosts))
            if not acl:
                del template[side]["acl"]


def _prune_unreachable(library: dict) -> None:
    """Drop the rules the validator calls shadowed or duplicate; raise on anything else."""
    from ryu_apps.core.template_validation import TemplateValidationError, build_library

    for _ in range(50):
        try:
            build_library([("sweep.yaml", library)], origin="sweep")
            return
        except TemplateValidationError as failure:
            drops: Dict[Tuple[int, str], List[int]] = {}
            for error in failure.errors:
                found = _UNREACHABLE.search(str(error.field or ""))
                message = str(error.message)
                if not found or not ("shadowed" in message or "duplicate" in message):
                    raise RuntimeError(
                        f"sweep generator made an invalid library: {error}") from failure
                side = str(error.field).split(".")[0]
                template_id = _error_template_id(library, error)
                drops.setdefault((template_id, side), []).append(int(found.group(1)))
            for (template_id, side), indexes in drops.items():
                entry = next(t for t in library["templates"] if id_of(t) == template_id)
                acl = entry[side]["acl"]
                for index in sorted(set(indexes), reverse=True):
                    del acl[index]
                if not acl:
                    del entry[side]["acl"]
    raise RuntimeError("sweep generator: library still invalid after 50 rounds of pruning")


def _error_template_id(library: dict, error: object) -> int:
    text = str(getattr(error, "template", "")) + " "
    for entry in library["templates"]:
        if text.startswith(f"template {id_of(entry)} "):
            return id_of(entry)
    raise RuntimeError(f"sweep generator: cannot tell which template {error} is about")
