"""Which earlier ACL rule covers a new one: an index by field, answered as bit sets (pure)."""

from __future__ import annotations

from typing import Dict, Tuple

from ryu_apps.core.template_model import MAX_PORT, AclRule, PortRange, Prefix


class CoverIndex:
    """The rules of one ACL seen so far, to find the first one that covers a rule.

    A rule covers another when each of its fields does (``AclRule.covers``):
    (direction, protocol, ethertypes, ICMP type and code), src, dst, src ports,
    dst ports. For
    each field the index answers "which rules cover this value" as a bit set
    (a Python int, bit *i* for ``acl[i]``) from a dict or a small tree; the
    rules covering all five are the intersection, the first is its lowest
    bit. A rule is compared with no other rule one by one.
    """

    def __init__(self) -> None:
        self.groups: Dict[tuple, int] = {}
        self.src, self.dst = _PrefixSets(), _PrefixSets()
        self.src_ports, self.dst_ports = _PortSets(), _PortSets()

    def add(self, rule: AclRule, index: int) -> None:
        bit = 1 << index
        group = (rule.direction, rule.protocol, rule.ethertypes(), rule.icmp_type,
                 rule.icmp_code)
        self.groups[group] = self.groups.get(group, 0) | bit
        self.src.add(rule.src, bit)
        self.dst.add(rule.dst, bit)
        self.src_ports.add(rule.src_port, bit)
        self.dst_ports.add(rule.dst_port, bit)

    def first_cover(self, rule: AclRule) -> int | None:
        """The lowest index of a rule added so far that matches all of ``rule``'s traffic."""
        ethertypes = rule.ethertypes()
        found = 0
        for (direction, protocol, group_ethertypes, icmp_type, icmp_code), bits \
                in self.groups.items():
            if direction is rule.direction and \
                    (protocol is None or protocol == rule.protocol) and \
                    icmp_type in (None, rule.icmp_type) and \
                    icmp_code in (None, rule.icmp_code) and \
                    _ethertypes_cover(group_ethertypes, ethertypes):
                found |= bits
        if found:   # each lookup only while some rule still covers every field so far
            found &= self.src.covering(rule.src)
        if found:
            found &= self.dst.covering(rule.dst)
        if found:
            found &= self.src_ports.covering(rule.src_port)
        if found:
            found &= self.dst_ports.covering(rule.dst_port)
        if not found:
            return None
        return (found & -found).bit_length() - 1


def _ethertypes_cover(outer: Tuple[int, ...] | None, inner: Tuple[int, ...] | None) -> bool:
    return outer is None or (inner is not None and set(inner) <= set(outer))


_ANY = "any"


class _PrefixSets:
    """Rules by prefix: any address (none, or a /0), or (family, length, network bits)."""

    __slots__ = ("bits", "lengths")

    def __init__(self) -> None:
        self.bits: Dict[object, int] = {}
        self.lengths: Dict[int, set] = {4: set(), 6: set()}

    def add(self, prefix: Prefix | None, bit: int) -> None:
        if prefix is None or prefix.prefixlen == 0:
            key: object = _ANY
        else:
            key = (prefix.version, prefix.prefixlen,
                   int(prefix.network_address) >> (prefix.max_prefixlen - prefix.prefixlen))
            self.lengths[prefix.version].add(prefix.prefixlen)
        self.bits[key] = self.bits.get(key, 0) | bit

    def covering(self, prefix: Prefix | None) -> int:
        """Rules whose prefix holds every address of ``prefix`` (None: any address)."""
        found = self.bits.get(_ANY, 0)
        if prefix is None or prefix.prefixlen == 0:
            return found
        address = int(prefix.network_address)
        for length in self.lengths[prefix.version]:
            if length <= prefix.prefixlen:
                key = (prefix.version, length, address >> (prefix.max_prefixlen - length))
                found |= self.bits.get(key, 0)
        return found


_PORT_SLOTS = MAX_PORT + 1


class _PortSets:
    """Rules by port range: any port (None), or a range low-high.

    Two sparse Fenwick trees of bit sets answer "ranges with low <= L" and
    "ranges with high >= H" in about 16 steps each; a range holds L-H when
    both hold.
    """

    __slots__ = ("any", "by_low", "by_high")

    def __init__(self) -> None:
        self.any = 0
        self.by_low: Dict[int, int] = {}
        self.by_high: Dict[int, int] = {}

    def add(self, ports: PortRange | None, bit: int) -> None:
        if ports is None:
            self.any |= bit
            return
        _fenwick_add(self.by_low, ports.low, bit)
        _fenwick_add(self.by_high, _PORT_SLOTS - ports.high, bit)

    def covering(self, ports: PortRange | None) -> int:
        """Rules whose range holds every port of ``ports`` (None: any port)."""
        if ports is None or not self.by_low:
            return self.any
        return self.any | (_fenwick_union(self.by_low, ports.low)
                           & _fenwick_union(self.by_high, _PORT_SLOTS - ports.high))


def _fenwick_add(tree: Dict[int, int], position: int, bit: int) -> None:
    while position <= _PORT_SLOTS:
        tree[position] = tree.get(position, 0) | bit
        position += position & -position


def _fenwick_union(tree: Dict[int, int], position: int) -> int:
    """The union of the bit sets added at positions 1..``position``."""
    found = 0
    while position > 0:
        found |= tree.get(position, 0)
        position -= position & -position
    return found
