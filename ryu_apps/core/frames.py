"""Just enough Ethernet, ARP and IPv4 parsing for packet-in handling (pure)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Optional

_VLAN_TPIDS = (0x8100, 0x88A8)
_ETH_ARP, _ETH_IPV4 = 0x0806, 0x0800


@dataclass(frozen=True)
class FrameInfo:
    """What the controller needs to know about a frame."""

    eth_dst: str
    eth_src: str
    ethertype: int
    tagged: bool
    sender_ip: Optional[str]  # IPv4 source, or ARP sender address; None if 0.0.0.0


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_frame(data: bytes) -> Optional[FrameInfo]:
    """Parse a frame's headers; None when it is too short to be Ethernet."""
    if len(data) < 14:
        return None
    ethertype = struct.unpack("!H", data[12:14])[0]
    offset, tagged = 14, False
    while ethertype in _VLAN_TPIDS and len(data) >= offset + 4:
        ethertype = struct.unpack("!H", data[offset + 2:offset + 4])[0]
        offset, tagged = offset + 4, True
    sender = None
    if ethertype == _ETH_ARP and len(data) >= offset + 18:
        sender = data[offset + 14:offset + 18]
    elif ethertype == _ETH_IPV4 and len(data) >= offset + 16:
        sender = data[offset + 12:offset + 16]
    sender_ip = None
    if sender is not None and any(sender):
        sender_ip = str(ipaddress.IPv4Address(sender))
    return FrameInfo(_mac(data[0:6]), _mac(data[6:12]), ethertype, tagged, sender_ip)
