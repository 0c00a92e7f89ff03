"""DHCPv6 messages (RFC 8415) for address snooping (pure): what a Reply leases, what a
Release gives back.

:func:`parse` reads a DHCPv6 message (a UDP payload): its type, transaction id,
client and server DUIDs, and each IA_NA's addresses (IAADDR options) with their
lifetimes; :func:`from_frame` reads one out of an Ethernet frame (UDP between
ports 546 and 547). Neither ever raises: a truncated option ends the walk, a
malformed IA_NA or IAADDR is skipped, and junk gives None.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ryu_apps.core.ipv6_frames import Ipv6Info, udp_payload

SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY, RELEASE, DECLINE = range(1, 10)
CLIENT_PORT, SERVER_PORT = 546, 547
OPTION_CLIENTID, OPTION_SERVERID, OPTION_IA_NA, OPTION_IAADDR = 1, 2, 3, 5
OPTION_STATUS_CODE = 13
#: At most this many options are read per level (a flood of tiny options ends the walk).
MAX_OPTIONS = 64
#: A lifetime that never ends (RFC 8415 section 7.7).
INFINITY = 0xFFFFFFFF


@dataclass(frozen=True)
class Lease:
    """One IAADDR: an address of an IA_NA and its lifetimes (seconds)."""

    iaid: int
    address: str
    preferred: int
    valid: int


@dataclass(frozen=True)
class Message:
    """A DHCPv6 message as far as snooping reads it."""

    msg_type: int
    transaction_id: int
    client_duid: Optional[bytes] = None
    server_duid: Optional[bytes] = None
    leases: Tuple[Lease, ...] = ()

    def ends(self, now: float) -> Dict[str, Optional[float]]:
        """When each address it leases (valid lifetime above 0) stops being valid: ``now``
        plus its longest valid lifetime; None for an infinite one (0xffffffff)."""
        ends: Dict[str, Optional[float]] = {}
        for lease in self.leases:
            if not lease.valid:
                continue
            end = None if lease.valid == INFINITY else now + lease.valid
            if lease.address in ends:
                held = ends[lease.address]
                end = None if held is None or end is None else max(held, end)
            ends[lease.address] = end
        return ends

    @property
    def addresses(self) -> Tuple[str, ...]:
        """The addresses it names with a valid lifetime (sorted, no repeats)."""
        return tuple(sorted({lease.address for lease in self.leases if lease.valid}))


def _options(data: bytes) -> List[Tuple[int, bytes]]:
    """(code, value) of each option in ``data``, in order; a truncated one ends the walk."""
    found: List[Tuple[int, bytes]] = []
    offset = 0
    while len(data) >= offset + 4 and len(found) < MAX_OPTIONS:
        code, length = struct.unpack("!HH", data[offset:offset + 4])
        end = offset + 4 + length
        if end > len(data):
            break
        found.append((code, data[offset + 4:end]))
        offset = end
    return found


def _leases(value: bytes) -> List[Lease]:
    """The IAADDR options of one IA_NA option's value (IAID, T1, T2, then options)."""
    if len(value) < 12:
        return []
    iaid = struct.unpack("!I", value[:4])[0]
    leases = []
    for code, option in _options(value[12:]):
        if code == OPTION_IAADDR and len(option) >= 24:
            address = str(ipaddress.IPv6Address(option[:16]))
            preferred, valid = struct.unpack("!II", option[16:24])
            leases.append(Lease(iaid, address, preferred, valid))
    return leases


def parse(payload: bytes) -> Optional[Message]:
    """A DHCPv6 client/server message; None if too short or a relay message (12, 13)."""
    if len(payload) < 4 or payload[0] in (0, 12, 13):
        return None
    msg_type = payload[0]
    transaction_id = int.from_bytes(payload[1:4], "big")
    client = server = None
    leases: List[Lease] = []
    for code, value in _options(payload[4:]):
        if code == OPTION_CLIENTID and client is None:
            client = value
        elif code == OPTION_SERVERID and server is None:
            server = value
        elif code == OPTION_IA_NA:
            leases += _leases(value)
    return Message(msg_type, transaction_id, client, server, tuple(leases))


@dataclass(frozen=True)
class Snooped:
    """A DHCPv6 message in a frame: its IPv6 header, UDP ports and the message."""

    ipv6: Ipv6Info
    source_port: int
    destination_port: int
    message: Message

    @property
    def to_client(self) -> bool:
        """Server (or relay) to client: UDP 547 -> 546."""
        return (self.source_port, self.destination_port) == (SERVER_PORT, CLIENT_PORT)

    @property
    def to_server(self) -> bool:
        """Client to server: UDP 546 -> 547."""
        return (self.source_port, self.destination_port) == (CLIENT_PORT, SERVER_PORT)


def from_frame(frame: bytes) -> Optional[Snooped]:
    """The DHCPv6 message an Ethernet frame carries (UDP 546/547 either way), or None."""
    found = udp_payload(frame)
    if found is None:
        return None
    info, ports, payload = found
    if set(ports) != {CLIENT_PORT, SERVER_PORT}:
        return None
    message = parse(payload)
    return None if message is None else Snooped(info, ports[0], ports[1], message)
