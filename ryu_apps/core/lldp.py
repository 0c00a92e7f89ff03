"""LLDP frames that carry (switch, port) so the controller can see its links (pure).

Each managed switch sends one frame out of every port; a frame that comes back
as a packet-in on another switch proves a link. The chassis id TLV carries
``dpid:<16 hex digits>`` and the port id TLV the port number, both as locally
assigned strings, so frames from other LLDP speakers are ignored. An
organisationally specific TLV carries the signature that makes the probe
trustworthy (:mod:`ryu_apps.core.probe_auth`): when it was made, a nonce, the
controller process that made it and an HMAC over all of it.

Probes go to the nearest-bridge group address, which no bridge forwards, so a
probe proves a cable. A *beacon* is the same frame sent to a group address
that learning bridges do flood: one from a switch of another controller
process proves that the port reaches the shared L2 fabric between pods.

Parsing is strict and bounded: every length is checked, the datapath id must
be 16 hex digits, the port a decimal number in 1..0xFFFFFF00 and the process
name short printable ASCII; anything else is "not a probe" (None), never an
exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LLDP_MULTICAST = bytes.fromhex("0180c200000e")
#: A locally administered group address: flooded by learning bridges.
BEACON_MULTICAST = bytes.fromhex("0364796e7072")
ETH_TYPE_LLDP = 0x88CC
_CHASSIS_TLV, _PORT_TLV, _TTL_TLV, _ORG_TLV = 1, 2, 3, 127
_LOCALLY_ASSIGNED = 7
_PREFIX = b"dpid:"
#: Organisationally specific TLV: a locally administered "OUI" and dynprov's subtype.
AUTH_OUI = bytes.fromhex("0e00d9")
AUTH_SUBTYPE = 0xD1
AUTH_VERSION = 1
#: Bytes of the truncated HMAC-SHA256 a probe carries.
SIGNATURE_BYTES = 16
NONCE_BYTES = 8
MAX_PROCESS_NAME = 64
#: Highest port number a probe may name (OpenFlow 1.3 OFPP_MAX).
MAX_PORT = 0xFFFFFF00
_AUTH_HEAD = struct.Struct("!BBQ8sB")   # version, kind, stamp ms, nonce, name length


@dataclass(frozen=True)
class ProbeFrame:
    """What a probe or beacon says, before anyone checked its signature."""

    dpid: int
    port: int
    beacon: bool
    #: The signature TLV's fields; ``None`` when the frame carries none.
    stamp_ms: int | None = None
    nonce: bytes = b""
    process: str = ""
    signature: bytes = b""
    #: The bytes the signature covers (see :func:`signed_bytes`).
    covered: bytes = b""


def _tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!H", (tlv_type << 9) | len(value)) + value


def identity_tlvs(dpid: int, port: int) -> tuple[bytes, bytes]:
    """The chassis id and port id TLV values naming ``port`` of switch ``dpid``."""
    chassis = bytes([_LOCALLY_ASSIGNED]) + _PREFIX + b"%016x" % dpid
    port_id = bytes([_LOCALLY_ASSIGNED]) + b"%d" % port
    return chassis, port_id


def signed_bytes(destination: bytes, chassis: bytes, port_id: bytes, auth_head: bytes,
                 process: bytes) -> bytes:
    """What a probe's HMAC covers: where it was sent, who sent it, when, and the nonce."""
    return b"dynprov-lldp-1|" + destination + chassis + port_id + auth_head + process


def auth_head(beacon: bool, stamp_ms: int, nonce: bytes, process: bytes) -> bytes:
    """The fixed part of the signature TLV."""
    return _AUTH_HEAD.pack(AUTH_VERSION, 2 if beacon else 1, stamp_ms, nonce, len(process))


def build_probe(dpid: int, port: int, src_mac: bytes, ttl: int = 120,
                destination: bytes = LLDP_MULTICAST,
                auth: tuple[bytes, bytes, bytes] | None = None) -> bytes:
    """An LLDP frame announcing ``port`` of switch ``dpid`` (a beacon if sent to
    :data:`BEACON_MULTICAST`). ``auth`` is (head, process name, signature) as made
    by :class:`~ryu_apps.core.probe_auth.ProbeSigner`; without it the frame is
    unsigned, and no dynprov controller takes it."""
    chassis, port_id = identity_tlvs(dpid, port)
    body = (_tlv(_CHASSIS_TLV, chassis) + _tlv(_PORT_TLV, port_id)
            + _tlv(_TTL_TLV, struct.pack("!H", ttl)))
    if auth is not None:
        head, process, signature = auth
        body += _tlv(_ORG_TLV, AUTH_OUI + bytes([AUTH_SUBTYPE]) + head + process + signature)
    return destination + src_mac + struct.pack("!H", ETH_TYPE_LLDP) + body + _tlv(0, b"")


def build_beacon(dpid: int, port: int, src_mac: bytes,
                 auth: tuple[bytes, bytes, bytes] | None = None) -> bytes:
    """A probe that learning bridges flood: it crosses the shared fabric."""
    return build_probe(dpid, port, src_mac, destination=BEACON_MULTICAST, auth=auth)


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


def parse_probe(frame: bytes) -> tuple[int, int] | None:
    """(dpid, port) from a frame made by :func:`build_probe`, else None (unchecked:
    use :class:`~ryu_apps.core.probe_auth.ProbeVerifier` before believing it)."""
    probe = parse_probe_frame(frame)
    return None if probe is None else (probe.dpid, probe.port)


def parse_probe_frame(frame: bytes) -> ProbeFrame | None:
    """Every field of a dynprov probe or beacon, else None (never raises)."""
    if len(frame) < 14 or frame[12:14] != b"\x88\xcc":
        return None
    offset, chassis, port_id, auth = 14, None, None, None
    while offset + 2 <= len(frame):
        header = (frame[offset] << 8) | frame[offset + 1]
        tlv_type, length = header >> 9, header & 0x1FF
        value = frame[offset + 2:offset + 2 + length]
        if len(value) != length:
            return None   # truncated
        offset += 2 + length
        if tlv_type == 0:
            break
        if tlv_type == _CHASSIS_TLV and chassis is None:
            chassis = value
        elif tlv_type == _PORT_TLV and port_id is None:
            port_id = value
        elif (tlv_type == _ORG_TLV and auth is None and value[:3] == AUTH_OUI
              and len(value) > 3 and value[3] == AUTH_SUBTYPE):
            auth = value[4:]
    dpid = _dpid(chassis)
    port = _port(port_id)
    if dpid is None or port is None:
        return None
    beacon = is_beacon(frame)
    assert chassis is not None and port_id is not None
    if auth is None:
        return ProbeFrame(dpid, port, beacon)
    return _with_auth(ProbeFrame(dpid, port, beacon), frame[:6], chassis, port_id, auth)


def _dpid(chassis: bytes | None) -> int | None:
    if chassis is None or len(chassis) != 1 + len(_PREFIX) + 16:
        return None
    if chassis[0] != _LOCALLY_ASSIGNED or not chassis[1:].startswith(_PREFIX):
        return None
    digits = chassis[1 + len(_PREFIX):]
    if not all(c in b"0123456789abcdef" for c in digits):
        return None
    return int(digits, 16)


def _port(port_id: bytes | None) -> int | None:
    if port_id is None or not 2 <= len(port_id) <= 11 or port_id[0] != _LOCALLY_ASSIGNED:
        return None
    digits = port_id[1:]
    if not digits.isdigit() or (len(digits) > 1 and digits[0:1] == b"0"):
        return None
    port = int(digits)
    return port if 1 <= port <= MAX_PORT else None


def _with_auth(probe: ProbeFrame, destination: bytes, chassis: bytes, port_id: bytes,
               auth: bytes) -> ProbeFrame | None:
    """The probe with its signature TLV's fields; None when that TLV is malformed."""
    if len(auth) < _AUTH_HEAD.size + SIGNATURE_BYTES:
        return None
    version, kind, stamp_ms, nonce, name_length = _AUTH_HEAD.unpack_from(auth)
    head = auth[:_AUTH_HEAD.size]
    process = auth[_AUTH_HEAD.size:_AUTH_HEAD.size + name_length]
    signature = auth[_AUTH_HEAD.size + name_length:]
    if (version != AUTH_VERSION or kind != (2 if probe.beacon else 1)
            or name_length > MAX_PROCESS_NAME or len(process) != name_length
            or len(signature) != SIGNATURE_BYTES
            or not all(0x21 <= c <= 0x7E for c in process)):
        return None
    return ProbeFrame(probe.dpid, probe.port, probe.beacon, stamp_ms, nonce,
                      process.decode("ascii"), signature,
                      signed_bytes(destination, chassis, port_id, head, process))
