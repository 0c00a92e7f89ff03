"""Just enough of the OpenFlow 1.3 wire format for an emulated switch (no Ryu).

Encoders build whole messages as bytes; :func:`split_messages` cuts a TCP
stream into messages; the ``read_*`` helpers pick the few fields the load
generator needs out of a controller's message without parsing the rest.
"""

from __future__ import annotations

import struct
from typing import List, Tuple

VERSION = 4
HEADER = struct.Struct("!BBHI")

HELLO, ERROR, ECHO_REQUEST, ECHO_REPLY = 0, 1, 2, 3
FEATURES_REQUEST, FEATURES_REPLY = 5, 6
GET_CONFIG_REQUEST, GET_CONFIG_REPLY, SET_CONFIG = 7, 8, 9
PACKET_IN, FLOW_REMOVED, PORT_STATUS, PACKET_OUT, FLOW_MOD = 10, 11, 12, 13, 14
MULTIPART_REQUEST, MULTIPART_REPLY = 18, 19
BARRIER_REQUEST, BARRIER_REPLY = 20, 21
ROLE_REQUEST, ROLE_REPLY = 24, 25
METER_MOD = 29

MP_DESC, MP_FLOW, MP_METER_CONFIG, MP_PORT_DESC = 0, 1, 10, 13

OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFP_NO_BUFFER = 0xFFFFFFFF
OFPR_NO_MATCH = 0
OFPAT_OUTPUT = 0

_OXM_OPENFLOW_BASIC = 0x8000
OXM_IN_PORT, OXM_ETH_DST, OXM_ETH_SRC = 0, 3, 4

_FEATURES_BODY = struct.Struct("!QIBB2xII")
_PORT = struct.Struct("!I4x6s2x16sIIIIIIII")
_MULTIPART_HEAD = struct.Struct("!HH4x")
_PACKET_IN_HEAD = struct.Struct("!IHBBQ")
_METER_MOD_HEAD = struct.Struct("!HHI")
_PACKET_OUT_HEAD = struct.Struct("!IIH6x")
_DESC_FIELDS = ((256, "mfr"), (256, "hw"), (256, "sw"), (32, "serial"), (256, "dp"))


def message(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    """One OpenFlow 1.3 message."""
    return HEADER.pack(VERSION, msg_type, HEADER.size + len(body), xid) + body


def read_header(data: bytes, offset: int = 0) -> Tuple[int, int, int, int]:
    """(version, type, length, xid) of the message at ``offset``."""
    return HEADER.unpack_from(data, offset)


def message_bounds(data: bytes) -> Tuple[List[Tuple[int, int]], int]:
    """(offset, length) of each whole message at the front of ``data``; bytes used.

    Messages are not copied: a reader picks its fields at their offsets.
    """
    bounds, offset, size = [], 0, len(data)
    while size - offset >= 8:
        length = (data[offset + 2] << 8) | data[offset + 3]
        if length < 8:
            raise ValueError(f"OpenFlow message with length {length} at stream offset "
                             f"{offset}: expected at least 8")
        if size - offset < length:
            break
        bounds.append((offset, length))
        offset += length
    return bounds, offset


def split_messages(buffer: bytearray) -> List[bytes]:
    """Whole messages at the front of ``buffer`` (copied); they are removed from it."""
    bounds, used = message_bounds(buffer)
    messages = [bytes(buffer[offset:offset + length]) for offset, length in bounds]
    del buffer[:used]
    return messages


# -- what a switch sends ------------------------------------------------------
def hello(xid: int = 0) -> bytes:
    """HELLO without elements (the controller then negotiates on the version)."""
    return message(HELLO, xid)


def features_reply(xid: int, dpid: int, n_tables: int = 254) -> bytes:
    """FEATURES_REPLY of a switch with no buffers."""
    return message(FEATURES_REPLY, xid, _FEATURES_BODY.pack(dpid, 0, n_tables, 0, 0x4F, 0))


def multipart_reply(xid: int, mp_type: int, body: bytes = b"", more: bool = False) -> bytes:
    """A MULTIPART_REPLY (empty body: e.g. no flows, no meters)."""
    return message(MULTIPART_REPLY, xid, _MULTIPART_HEAD.pack(mp_type, int(more)) + body)


def desc_body(dp_desc: str, manufacturer: str = "ofload") -> bytes:
    """The body of a DESC reply; dynprov reads the switch's role from ``dp_desc``."""
    values = {"mfr": manufacturer, "hw": "emulated switch", "sw": "ofload",
              "serial": "0", "dp": dp_desc}
    return b"".join(values[name].encode().ljust(size, b"\0")[:size]
                    for size, name in _DESC_FIELDS)


def port_body(port_no: int, hw_addr: bytes, name: str) -> bytes:
    """One ofp_port (a 10 Gb/s copper port, up)."""
    speed = 10_000_000
    return _PORT.pack(port_no, hw_addr, name.encode()[:15].ljust(16, b"\0"),
                      0, 0, 0x1000 | 0x800, 0, 0, 0, speed, speed)


def packet_in(xid: int, in_port: int, data: bytes, table_id: int = 0,
              cookie: int = 0xFFFFFFFFFFFFFFFF) -> bytes:
    """A table-miss PACKET_IN carrying the whole frame (no buffer)."""
    match = struct.pack("!HHIII", 1, 12, (_OXM_OPENFLOW_BASIC << 16) | (OXM_IN_PORT << 9) | 4,
                        in_port, 0)   # type OXM, length 12, in_port; padded to 16
    head = _PACKET_IN_HEAD.pack(OFP_NO_BUFFER, len(data), OFPR_NO_MATCH, table_id, cookie)
    return message(PACKET_IN, xid, head + match + b"\0\0" + data)


class PacketInTemplate:
    """PACKET_INs of one size, pre-encoded: only xid, port and frame change."""

    def __init__(self, frame_length: int) -> None:
        self.frame_length = frame_length
        sample = packet_in(0, 0, bytes(frame_length))
        self._prefix = sample[:4]           # version, type, length
        self._middle = sample[8:32]         # buffer id .. OXM header of in_port
        self._suffix = sample[36:42]        # match padding, 2 bytes pad

    def encode(self, xid: int, in_port: int, frame: bytes) -> bytes:
        """The message; ``frame`` must be ``frame_length`` bytes long."""
        return b"".join((self._prefix, xid.to_bytes(4, "big"), self._middle,
                         in_port.to_bytes(4, "big"), self._suffix, frame))


# -- what a controller sends --------------------------------------------------
def read_multipart_type(msg: bytes) -> int:
    """The multipart type of a MULTIPART_REQUEST."""
    return struct.unpack_from("!H", msg, 8)[0]


def read_cookie(msg: bytes) -> int:
    """A FLOW_MOD's cookie."""
    return int.from_bytes(msg[8:16], "big")


def read_flow_command(msg: bytes) -> int:
    """A FLOW_MOD's command (0 add, 1 modify, 2 modify strict, 3 delete, 4 delete strict)."""
    return msg[25]


def match_fields(match: bytes) -> dict:
    """OXM basic fields of an ofp_match at the start of ``match``: {field: value bytes}.

    Masked fields keep value and mask concatenated; non-basic classes are skipped.
    """
    if len(match) < 4:
        return {}
    _match_type, length = struct.unpack_from("!HH", match, 0)
    fields, offset = {}, 4
    while offset + 4 <= length:
        header = struct.unpack_from("!I", match, offset)[0]
        size = header & 0xFF
        if header >> 16 == _OXM_OPENFLOW_BASIC:
            fields[(header >> 9) & 0x7F] = match[offset + 4:offset + 4 + size]
        offset += 4 + size
    return fields


def read_meter_mod(msg: bytes) -> Tuple[int, int]:
    """(command, meter id) of a METER_MOD (command 0 add, 1 modify, 2 delete)."""
    command, _flags, meter_id = _METER_MOD_HEAD.unpack_from(msg, 8)
    return command, meter_id


def read_packet_out(msg: bytes) -> Tuple[int, List[int], bytes]:
    """(in_port, output ports, frame) of a PACKET_OUT."""
    _buffer, in_port, actions_len = _PACKET_OUT_HEAD.unpack_from(msg, 8)
    outputs, offset, end = [], 24, 24 + actions_len
    while offset + 4 <= end:
        action_type, length = struct.unpack_from("!HH", msg, offset)
        if length < 8:
            raise ValueError(f"PACKET_OUT action of length {length} at offset {offset}: "
                             f"expected at least 8")
        if action_type == OFPAT_OUTPUT:
            outputs.append(struct.unpack_from("!I", msg, offset + 4)[0])
        offset += length
    return in_port, outputs, msg[end:]


def echo_reply(request: bytes) -> bytes:
    """The ECHO_REPLY to an ECHO_REQUEST: same xid, same payload."""
    _version, _type, _length, xid = read_header(request)
    return message(ECHO_REPLY, xid, request[8:])


def barrier_reply(xid: int) -> bytes:
    """BARRIER_REPLY for the request ``xid``."""
    return message(BARRIER_REPLY, xid)


def get_config_reply(xid: int) -> bytes:
    """GET_CONFIG_REPLY: normal fragments, miss_send_len 128."""
    return message(GET_CONFIG_REPLY, xid, struct.pack("!HH", 0, 128))


def role_reply(request: bytes) -> bytes:
    """ROLE_REPLY echoing the role and generation id asked for."""
    _version, _type, _length, xid = read_header(request)
    return message(ROLE_REPLY, xid, request[8:24])


def mac_bytes(mac: int) -> bytes:
    """A 48-bit MAC as 6 bytes."""
    return mac.to_bytes(6, "big")
