"""LLDP frames that carry (switch, port) so the controller can see its links (pure).

Each managed switch sends one frame out of every port; a frame that comes back
as a packet-in on another switch proves a link. The chassis id TLV carries
``dpid:<16 hex digits>`` and the port id TLV the port number, both as locally
assigned strings, so frames from other LLDP speakers are ignored.

Probes go to the nearest-bridge group address, which no bridge forwards, so a
probe proves a cable. A *beacon* is the same frame sent to a group address
that learning bridges do flood: one from a switch of another controller
process proves that the port reaches the shared L2 fabric between pods.
"""

from __future__ import annotations

import struct
from typing import Tuple

LLDP_MULTICAST = bytes.fromhex("0180c200000e")
#: A locally administered group address: flooded by learning bridges.
BEACON_MULTICAST = bytes.fromhex("0364796e7072")
ETH_TYPE_LLDP = 0x88CC
_CHASSIS_TLV, _PORT_TLV, _TTL_TLV = 1, 2, 3
_LOCALLY_ASSIGNED = 7
_PREFIX = b"dpid:"


def _tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!H", (tlv_type << 9) | len(value)) + value


def build_probe(dpid: int, port: int, src_mac: bytes, ttl: int = 120,
                destination: bytes = LLDP_MULTICAST) -> bytes:
    """An LLDP frame announcing ``port`` of switch ``dpid`` (a beacon if sent to
    :data:`BEACON_MULTICAST`)."""
    chassis = bytes([_LOCALLY_ASSIGNED]) + _PREFIX + b"%016x" % dpid
    port_id = bytes([_LOCALLY_ASSIGNED]) + b"%d" % port
    body = (_tlv(_CHASSIS_TLV, chassis) + _tlv(_PORT_TLV, port_id)
            + _tlv(_TTL_TLV, struct.pack("!H", ttl)) + _tlv(0, b""))
    return destination + src_mac + struct.pack("!H", ETH_TYPE_LLDP) + body


def build_beacon(dpid: int, port: int, src_mac: bytes) -> bytes:
    """A probe that learning bridges flood: it crosses the shared fabric."""
    return build_probe(dpid, port, src_mac, destination=BEACON_MULTICAST)


#: IEEE 802 local experimental ethertype: an announcement carries nothing for anyone.
ETH_TYPE_ANNOUNCE = 0x88B5


def build_announcement(mac: str, vlan: int) -> bytes:
    """A frame from VM ``mac`` on ``vlan`` (tagged) to the beacon group: sent out of a
    shared uplink when the VM arrives here, so the learning fabric learns where it
    is now. Every dynprov uplink drops it on the way in."""
    source = bytes.fromhex(mac.replace(":", ""))
    header = (BEACON_MULTICAST + source + struct.pack("!HH", 0x8100, vlan & 0x0FFF)
              + struct.pack("!H", ETH_TYPE_ANNOUNCE))
    return (header + b"dynprov: VM here").ljust(64, b"\x00")


def is_beacon(frame: bytes) -> bool:
    """Whether the frame was sent to the beacon group address."""
    return frame[:6] == BEACON_MULTICAST


def parse_probe(frame: bytes) -> Tuple[int, int] | None:
    """(dpid, port) from a frame made by :func:`build_probe`, else None."""
    if len(frame) < 14 or struct.unpack("!H", frame[12:14])[0] != ETH_TYPE_LLDP:
        return None
    offset, dpid, port = 14, None, None
    while offset + 2 <= len(frame):
        header = struct.unpack("!H", frame[offset:offset + 2])[0]
        tlv_type, length = header >> 9, header & 0x1FF
        value = frame[offset + 2:offset + 2 + length]
        offset += 2 + length
        if tlv_type == 0:
            break
        if len(value) < 1 or value[0] != _LOCALLY_ASSIGNED:
            continue
        text = value[1:]
        try:
            if tlv_type == _CHASSIS_TLV and text.startswith(_PREFIX):
                dpid = int(text[len(_PREFIX):], 16)
            elif tlv_type == _PORT_TLV:
                port = int(text)
        except ValueError:
            return None
    if dpid is None or port is None:
        return None
    return dpid, port
