"""IPv6 headers of a frame for packet-in handling: addresses, extension headers, ICMPv6
and neighbour discovery (pure; :mod:`~ryu_apps.core.frames` parses Ethernet, ARP, IPv4)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Optional

_VLAN_TPIDS = (0x8100, 0x88A8)

_ETH_IPV6 = 0x86DD
_IPV6_HEADER = 40
#: Extension headers skipped to reach the upper-layer protocol (length in 8-octet units,
#: not counting the first 8; AH counts 4-octet units, not counting the first 2).
_EXTENSIONS = frozenset({0, 43, 60, 135, 139, 140})
_FRAGMENT, _AUTH, _NO_NEXT = 44, 51, 59
#: At most this many extension headers are walked (a chain of junk ends the walk).
MAX_EXTENSION_HEADERS = 8
_ICMPV6, _ND_NS, _ND_NA = 58, 135, 136
_UDP = 17
_ND_OPTION_SLL, _ND_OPTION_TLL = 1, 2


@dataclass(frozen=True)
class Ipv6Info:
    """An IPv6 packet's addresses and upper layer (None where it could not be reached)."""

    src: str
    dst: str
    protocol: Optional[int]          # upper-layer protocol after extension headers
    icmp_type: Optional[int] = None  # ICMPv6 only
    nd_target: Optional[str] = None  # NS/NA target address
    nd_lladdr: Optional[str] = None  # NS source / NA target link-layer option


def l3_offset(data: bytes) -> tuple[int, int]:
    """(ethertype, offset of the layer-3 header) after any VLAN tags."""
    ethertype = struct.unpack("!H", data[12:14])[0]
    offset = 14
    while ethertype in _VLAN_TPIDS and len(data) >= offset + 4:
        ethertype = struct.unpack("!H", data[offset + 2:offset + 4])[0]
        offset += 4
    return ethertype, offset


def parse_ipv6(data: bytes) -> Optional[Ipv6Info]:
    """The IPv6 header (and ICMPv6/ND fields) of an Ethernet frame; None if not IPv6.

    Never raises: every read is bounds-checked, extension headers are walked at
    most :data:`MAX_EXTENSION_HEADERS` deep, and a non-first fragment, ESP or a
    truncated header leaves the upper layer unknown (``protocol`` None).
    """
    if len(data) < 14:
        return None
    ethertype, offset = l3_offset(data)
    if ethertype != _ETH_IPV6 or len(data) < offset + _IPV6_HEADER:
        return None
    header = data[offset:offset + _IPV6_HEADER]
    src = str(ipaddress.IPv6Address(header[8:24]))
    dst = str(ipaddress.IPv6Address(header[24:40]))
    protocol, upper = _upper_layer(data, header[6], offset + _IPV6_HEADER)
    if protocol != _ICMPV6 or upper is None or len(data) < upper + 4:
        return Ipv6Info(src, dst, protocol)
    icmp_type = data[upper]
    target = lladdr = None
    if icmp_type in (_ND_NS, _ND_NA) and len(data) >= upper + 24:
        target = str(ipaddress.IPv6Address(data[upper + 8:upper + 24]))
        wanted = _ND_OPTION_SLL if icmp_type == _ND_NS else _ND_OPTION_TLL
        lladdr = _nd_option(data, upper + 24, wanted)
    return Ipv6Info(src, dst, protocol, icmp_type, target, lladdr)


def udp_payload(data: bytes) -> Optional[tuple[Ipv6Info, tuple[int, int], bytes]]:
    """(IPv6 header, (source port, destination port), payload) of a UDP-over-IPv6 frame;
    None if it is not one or its UDP header is cut. The payload is cut to the UDP
    length (or the frame's end). Never raises."""
    info = parse_ipv6(data)
    if info is None or info.protocol != _UDP:
        return None
    ethertype, offset = l3_offset(data)
    _, upper = _upper_layer(data, data[offset + 6], offset + _IPV6_HEADER)
    if upper is None or len(data) < upper + 8:
        return None
    sport, dport, length = struct.unpack("!HHH", data[upper:upper + 6])
    end = min(len(data), upper + length) if length >= 8 else len(data)
    return info, (sport, dport), data[upper + 8:end]


def _upper_layer(data: bytes, next_header: int, offset: int) -> tuple[Optional[int],
                                                                       Optional[int]]:
    """(upper-layer protocol, its offset) past the extension headers, or (None, None)."""
    for _ in range(MAX_EXTENSION_HEADERS + 1):
        if next_header in _EXTENSIONS or next_header == _AUTH:
            if len(data) < offset + 2:
                return None, None
            unit, extra = (4, 2) if next_header == _AUTH else (8, 1)
            next_header, offset = data[offset], offset + (data[offset + 1] + extra) * unit
            if offset > len(data):
                return None, None   # the header runs past the frame
        elif next_header == _FRAGMENT:
            if len(data) < offset + 8:
                return None, None
            if struct.unpack("!H", data[offset + 2:offset + 4])[0] & 0xFFF8:
                return None, None   # not the first fragment: no upper-layer header here
            next_header, offset = data[offset], offset + 8
        elif next_header == _NO_NEXT:
            return None, None
        else:
            return next_header, offset
    return None, None


def _nd_option(data: bytes, offset: int, wanted: int) -> Optional[str]:
    """The link-layer address of the first ND option of type ``wanted``, if any."""
    while len(data) >= offset + 8:
        kind, length = data[offset], data[offset + 1]
        if length == 0:
            return None   # malformed (RFC 4861: the node must discard the packet)
        if kind == wanted:
            return ":".join(f"{b:02x}" for b in data[offset + 2:offset + 8])
        offset += length * 8
    return None
