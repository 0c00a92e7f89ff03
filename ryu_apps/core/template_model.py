"""The configuration template model: what a VM's network config is made of (pure).

A :class:`Template` says which VLAN a VM joins and which ACLs and bandwidth
limits apply to it on two sides: ``virtual_switch`` (the VM's own port on the
server's virtual switch) and ``access_port`` (the port of the access switch the
server hangs off, shared by all of that server's VMs). Instances are built and
validated by :mod:`ryu_apps.core.template_validation`; every value here is
already in range and consistent.

Match semantics of an :class:`AclRule` (``None`` always means "any"):

- ``ethertype`` None and ``protocol`` None: every frame, whatever its ethertype.
- ``ethertype`` None and ``protocol`` set (tcp/udp): IPv4 and IPv6 packets.
- port ranges only ever appear with tcp or udp; prefixes agree with ethertype.
- ``icmp_type`` (and ``icmp_code``, only with a type) only with icmp or icmpv6.
"""

from __future__ import annotations

import enum
import ipaddress
import types
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Union

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
IP_TCP = 6
IP_UDP = 17

#: ``bind_ip`` modes (virtual switch only; None: IPv4 unguarded). ``first_seen``: the
#: VM is bound to the first IPv4 address it sends from (``bind_ip: true`` is its alias);
#: ``dhcp``: only to the address a DHCPACK from an allowed server gave it
#: (core/dhcp_snooping.py).
BIND_IP_FIRST_SEEN = "first_seen"
BIND_IP_DHCP = "dhcp"
BIND_IP_MODES = (BIND_IP_FIRST_SEEN, BIND_IP_DHCP)
IP_ICMP = 1
IP_ICMPV6 = 58

#: Ethertypes a rule with a protocol but no ethertype applies to.
IP_ETHERTYPES = (ETH_IPV4, ETH_IPV6)

Prefix = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

ETHERTYPE_NAMES = {ETH_IPV4: "ipv4", ETH_IPV6: "ipv6", ETH_ARP: "arp"}
PROTOCOL_NAMES = {IP_TCP: "tcp", IP_UDP: "udp", IP_ICMP: "icmp", IP_ICMPV6: "icmpv6"}

MIN_PORT = 1
MAX_PORT = 65535


class Action(enum.Enum):
    """What an ACL rule (or a side's default) does with matching traffic."""

    ALLOW = "allow"
    DENY = "deny"


class Direction(enum.Enum):
    """Which traffic of the VM a rule looks at."""

    TO_VM = "to_vm"      # traffic delivered to the VM
    FROM_VM = "from_vm"  # traffic the VM sends


@dataclass(frozen=True)
class PortRange:
    """An inclusive range of TCP/UDP ports; a single port has ``low == high``."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not MIN_PORT <= self.low <= self.high <= MAX_PORT:
            raise ValueError(f"invalid port range {self.low}-{self.high}")

    def contains(self, other: PortRange | int) -> bool:
        """Whether every port of ``other`` (a range or one port) is in this range."""
        if isinstance(other, PortRange):
            return self.low <= other.low and other.high <= self.high
        return self.low <= other <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class AclRule:
    """One ACL entry; a field of ``None`` matches anything."""

    action: Action
    direction: Direction
    ethertype: int | None
    protocol: int | None
    src: Prefix | None
    dst: Prefix | None
    src_port: PortRange | None
    dst_port: PortRange | None
    icmp_type: int | None = None
    icmp_code: int | None = None

    def ethertypes(self) -> tuple[int, ...] | None:
        """The ethertypes this rule matches, or None for every ethertype."""
        if self.ethertype is not None:
            return (self.ethertype,)
        if self.protocol is not None:
            return IP_ETHERTYPES
        return None

    def covers(self, other: "AclRule") -> bool:
        """Whether this rule matches every packet ``other`` matches (ignores actions)."""
        return (self.direction is other.direction
                and _ethertypes_cover(self.ethertypes(), other.ethertypes())
                and (self.protocol is None or self.protocol == other.protocol)
                and _prefix_covers(self.src, other.src)
                and _prefix_covers(self.dst, other.dst)
                and _ports_cover(self.src_port, other.src_port)
                and _ports_cover(self.dst_port, other.dst_port)
                and self.icmp_type in (None, other.icmp_type)
                and self.icmp_code in (None, other.icmp_code))

    def describe(self) -> str:
        """One line, e.g. ``allow to_vm ethertype=ipv4 protocol=tcp dst_port=443``."""
        parts = [self.action.value, self.direction.value]
        ethertypes = self.ethertypes()
        if ethertypes is not None:
            names = (ETHERTYPE_NAMES.get(e, hex(e)) for e in ethertypes)
            parts.append(f"ethertype={','.join(names)}")
        if self.protocol is not None:
            parts.append(f"protocol={PROTOCOL_NAMES.get(self.protocol, self.protocol)}")
        for name in ("src", "dst", "src_port", "dst_port", "icmp_type", "icmp_code"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value}")
        if len(parts) == 2:
            parts.append("(all traffic)")
        return " ".join(parts)


def _ethertypes_cover(outer: tuple[int, ...] | None,
                      inner: tuple[int, ...] | None) -> bool:
    if outer is None:
        return True
    return inner is not None and set(inner) <= set(outer)


def _prefix_covers(outer: Prefix | None, inner: Prefix | None) -> bool:
    # A /0 prefix is "any address" of a family the ethertype check already pins.
    if outer is None or outer.prefixlen == 0:
        return True
    if inner is None or inner.version != outer.version:
        return False
    return inner.subnet_of(outer)  # type: ignore[arg-type]


def _ports_cover(outer: PortRange | None, inner: PortRange | None) -> bool:
    if outer is None:
        return True
    return inner is not None and outer.contains(inner)


@dataclass(frozen=True)
class Bandwidth:
    """A rate limit (an OpenFlow meter band): rate in kbit/s, burst in kbit."""

    rate_kbps: int
    burst_kbits: int


@dataclass(frozen=True)
class SwitchSide:
    """ACL, default and bandwidth limit enforced at one place in the network.

    ``bind_ip`` (virtual switch only): None leaves IPv4 unguarded; a mode of
    :data:`BIND_IP_MODES` binds the VM's IPv4 address first-seen or from DHCP
    (``True`` given here stands for ``first_seen``, ``False`` for None).
    ``bind_ipv6`` (virtual switch only): None leaves IPv6 unguarded; ``link_local``
    lets the VM send IPv6 only from its EUI-64 link-local address, with the
    neighbour-discovery guard (docs/security.md). ``router``: the VM may send
    router advertisements and redirects. ``stateful``: the rules' connections are
    tracked, their replies pass without mirror rules (core/conntrack.py).
    ``dhcp_server``: the VM may send DHCP and
    DHCPv6 server messages (udp source port 67 or 547; the rogue-server guard drops
    them from every other VM). ``allowed_addresses``: prefixes the VM may also send
    from (IPv4 ones need ``bind_ip``, IPv6 ones ``bind_ipv6``), like Neutron's
    allowed-address pairs.
    """

    default_action: Action
    acl: tuple[AclRule, ...]
    bandwidth: Bandwidth | None
    bind_ip: str | None = None
    bind_ipv6: str | None = None
    router: bool = False
    #: Connections its rules allow are tracked (virtual switch only; core/conntrack.py).
    stateful: bool = False
    dhcp_server: bool = False
    allowed_addresses: tuple[Prefix, ...] = ()

    def __post_init__(self) -> None:
        if self.bind_ip is True or self.bind_ip is False:   # the boolean spelling
            object.__setattr__(self, "bind_ip", BIND_IP_FIRST_SEEN if self.bind_ip else None)

    @property
    def binds_from_dhcp(self) -> bool:
        """Whether the VM's IPv4 address is bound only from a snooped DHCPACK."""
        return self.bind_ip == BIND_IP_DHCP

    @property
    def binds_first_seen(self) -> bool:
        """Whether the VM's IPv4 address is bound to the first one it sends from."""
        return self.bind_ip == BIND_IP_FIRST_SEEN


@dataclass(frozen=True)
class Template:
    """A named network configuration selected by ``template_id``."""

    template_id: int
    name: str
    description: str
    vlan: int
    idle_timeout: int
    virtual_switch: SwitchSide
    access_port: SwitchSide
    source: str  # the file it came from


@dataclass(frozen=True)
class TemplateLibrary:
    """The validated set of templates in force, keyed by template id."""

    templates: Mapping[int, Template]
    default_idle_timeout: int
    sources: tuple[str, ...] = ()
    #: The YAML line of each ACL rule, by (template id, side, index in the side's
    #: ``acl``), where the loader knows it (core/rule_origin.py reads it).
    rule_lines: Mapping[tuple[int, str, int], int] = field(
        default_factory=dict, repr=False, compare=False)
    _by_name: Mapping[str, Template] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frozen = types.MappingProxyType(dict(sorted(self.templates.items())))
        object.__setattr__(self, "templates", frozen)
        object.__setattr__(self, "_by_name", types.MappingProxyType(
            {t.name: t for t in frozen.values()}))

    def get(self, template_id: int) -> Template | None:
        """The template with this id, or None."""
        return self.templates.get(template_id)

    def by_name(self, name: str) -> Template | None:
        """The template with this name, or None."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.templates)

    def __iter__(self) -> Iterator[Template]:
        return iter(self.templates.values())

    def __contains__(self, template_id: object) -> bool:
        return template_id in self.templates
