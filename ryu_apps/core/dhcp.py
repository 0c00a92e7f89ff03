"""DHCPv4 messages in Ethernet frames: the fields snooping needs (pure).

:func:`parse_dhcp` reads an Ethernet frame carrying IPv4/UDP between ports 67
and 68 (RFC 2131): the frame's addresses, the BOOTP header's ``op``, ``xid``,
``ciaddr``, ``yiaddr``, ``chaddr`` and the options snooping decides on (53
message type, 51 lease time, 54 server identifier, 50 requested address).
It never raises: every read is bounds-checked, the options are walked at most
once over the frame, and anything short, fragmented or malformed is None.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Optional

from ryu_apps.core.ipv6_frames import l3_offset

SERVER_PORT, CLIENT_PORT = 67, 68
#: BOOTP ``op``: a request (client to server) and a reply (server to client).
BOOTREQUEST, BOOTREPLY = 1, 2
#: Option 53 values (RFC 2132 9.6).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {DISCOVER: "DHCPDISCOVER", OFFER: "DHCPOFFER", REQUEST: "DHCPREQUEST",
                 DECLINE: "DHCPDECLINE", ACK: "DHCPACK", NAK: "DHCPNAK",
                 RELEASE: "DHCPRELEASE", INFORM: "DHCPINFORM"}
_MAGIC = b"\x63\x82\x53\x63"
_BOOTP = 236                 # the fixed BOOTP header, before the magic cookie
_OPT_PAD, _OPT_END = 0, 255
_OPT_REQUESTED, _OPT_LEASE, _OPT_TYPE, _OPT_SERVER_ID = 50, 51, 53, 54
_ETH_IPV4, _IP_UDP = 0x0800, 17


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """One DHCPv4 message as a frame carried it (addresses as text; MACs lower case)."""

    eth_src: str
    eth_dst: str
    ip_src: str
    ip_dst: str
    udp_src: int
    udp_dst: int
    op: int
    xid: int
    ciaddr: str
    yiaddr: str
    chaddr: str
    message_type: Optional[int] = None
    lease_time: Optional[int] = None       # seconds; 0xFFFFFFFF is infinite
    server_id: Optional[str] = None
    requested_ip: Optional[str] = None

    @property
    def from_server(self) -> bool:
        """A server's message to a client (udp 67 -> 68, a BOOTREPLY)."""
        return (self.udp_src, self.udp_dst, self.op) == (SERVER_PORT, CLIENT_PORT, BOOTREPLY)

    @property
    def from_client(self) -> bool:
        """A client's message to a server (udp 68 -> 67, a BOOTREQUEST)."""
        return (self.udp_src, self.udp_dst, self.op) == (CLIENT_PORT, SERVER_PORT, BOOTREQUEST)

    @property
    def name(self) -> str:
        """The message type's name (DHCPACK, ...), or BOOTP without option 53."""
        if self.message_type is None:
            return "BOOTP"
        return MESSAGE_NAMES.get(self.message_type, f"DHCP type {self.message_type}")


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ipv4(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def udp_payload(frame: bytes) -> Optional[tuple[int, int, str, str, bytes]]:
    """(udp source port, destination port, IP source, IP destination, payload) of an
    unfragmented IPv4/UDP frame, or None."""
    if len(frame) < 14:
        return None
    ethertype, offset = l3_offset(frame)
    if ethertype != _ETH_IPV4 or len(frame) < offset + 20:
        return None
    version, header = frame[offset] >> 4, (frame[offset] & 0x0F) * 4
    flags_fragment = struct.unpack("!H", frame[offset + 6:offset + 8])[0]
    if version != 4 or header < 20 or frame[offset + 9] != _IP_UDP \
            or flags_fragment & 0x3FFF:   # more fragments, or not the first
        return None
    udp = offset + header
    if len(frame) < udp + 8:
        return None
    source, destination, length = struct.unpack("!HHH", frame[udp:udp + 6])
    end = min(len(frame), udp + length) if length >= 8 else len(frame)
    return (source, destination, _ipv4(frame[offset + 12:offset + 16]),
            _ipv4(frame[offset + 16:offset + 20]), frame[udp + 8:end])


def is_dhcp(frame: bytes) -> bool:
    """Whether the frame is IPv4/UDP between the DHCP ports (67 and 68, either way)."""
    found = udp_payload(frame)
    return found is not None and {found[0], found[1]} == {SERVER_PORT, CLIENT_PORT}


def parse_dhcp(frame: bytes) -> Optional[DhcpMessage]:
    """The DHCP message of an Ethernet frame, or None (not DHCP, or malformed)."""
    found = udp_payload(frame)
    if found is None or {found[0], found[1]} != {SERVER_PORT, CLIENT_PORT}:
        return None
    udp_src, udp_dst, ip_src, ip_dst, payload = found
    if len(payload) < _BOOTP or payload[1] != 1 or payload[2] != 6:   # Ethernet, 6 bytes
        return None
    options = _options(payload[_BOOTP + 4:]) if payload[_BOOTP:_BOOTP + 4] == _MAGIC else {}
    if options is None:
        return None
    kind = options.get(_OPT_TYPE, b"")
    lease = options.get(_OPT_LEASE, b"")
    server = options.get(_OPT_SERVER_ID, b"")
    requested = options.get(_OPT_REQUESTED, b"")
    return DhcpMessage(
        eth_src=_mac(frame[6:12]), eth_dst=_mac(frame[0:6]), ip_src=ip_src, ip_dst=ip_dst,
        udp_src=udp_src, udp_dst=udp_dst, op=payload[0],
        xid=struct.unpack("!I", payload[4:8])[0], ciaddr=_ipv4(payload[12:16]),
        yiaddr=_ipv4(payload[16:20]), chaddr=_mac(payload[28:34]),
        message_type=kind[0] if len(kind) == 1 else None,
        lease_time=struct.unpack("!I", lease)[0] if len(lease) == 4 else None,
        server_id=_ipv4(server) if len(server) == 4 else None,
        requested_ip=_ipv4(requested) if len(requested) == 4 else None)


def _options(raw: bytes) -> Optional[Dict[int, bytes]]:
    """The options (first occurrence of each code) up to END; None if one overruns."""
    found: Dict[int, bytes] = {}
    index = 0
    while index < len(raw):
        code = raw[index]
        if code == _OPT_END:
            break
        if code == _OPT_PAD:
            index += 1
            continue
        if index + 1 >= len(raw) or index + 2 + raw[index + 1] > len(raw):
            return None
        length = raw[index + 1]
        found.setdefault(code, raw[index + 2:index + 2 + length])
        index += 2 + length
    return found
