"""PACKET_IN messages a switch (or a stranger posing as one) may send, and how Ryu takes them.

:func:`malformed` builds a PACKET_IN that breaks one rule of OpenFlow 1.3
while keeping the message's own length right (so the TCP stream stays in
step): no ``in_port``, a masked or duplicate or out-of-range one, unknown and
experimenter OXMs, a wrong match length or ``total_len``, a buffered packet, no
data, 60 KB of data, OXM payloads of the wrong size, a bad version or type.

:func:`ryu_verdict` runs Ryu 4.34's own parser on the bytes, in this process,
exactly as ``ryu.controller.controller.Datapath`` does:

- ``parsed``: an event reaches the apps (dynprov's handler must cope);
- ``rejected``: Ryu logs a traceback of its parser and drops the message;
  the connection stays;
- ``fatal``: Ryu's receive loop raises and the connection is closed (only a
  stranger's connection, never a switch of the topology, is given these).
"""

from __future__ import annotations

import logging
import random
import struct
from typing import Tuple

from ryu.ofproto import ofproto_parser, ofproto_v1_3, ofproto_v1_3_parser

from benchmarks.ofload import wire

OXM_BASIC = 0x8000
OFPP_MAX, OFPP_IN_PORT, OFPP_LOCAL, OFPP_CONTROLLER, OFPP_ANY = (
    0xFFFFFF00, 0xFFFFFFF8, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF)
_HEAD = struct.Struct("!IHBBQ")   # buffer id, total_len, reason, table id, cookie
PARSED, REJECTED, FATAL = "parsed", "rejected", "fatal"


def oxm(field: int, value: bytes, oxm_class: int = OXM_BASIC, mask: bytes = b"",
        length: int | None = None) -> bytes:
    """One OXM TLV (``length`` overrides the payload length written in its header)."""
    size = len(value) + len(mask) if length is None else length
    header = (oxm_class << 16) | (field << 9) | (0x100 if mask else 0) | (size & 0xFF)
    return struct.pack("!I", header) + value + mask


def in_port_oxm(port: int) -> bytes:
    """The ``in_port`` OXM."""
    return oxm(wire.OXM_IN_PORT, struct.pack("!I", port))


def packet_in(xid: int, fields: bytes, data: bytes, total_len: int | None = None,
              buffer_id: int = wire.OFP_NO_BUFFER, reason: int = 0, table_id: int = 0,
              cookie: int = 0xFFFFFFFFFFFFFFFF, match_type: int = 1,
              match_length: int | None = None, version: int = wire.VERSION,
              msg_type: int = wire.PACKET_IN) -> bytes:
    """A PACKET_IN with these OXM ``fields`` (match padded to 8 bytes) and ``data``;
    every length is right unless overridden."""
    length = 4 + len(fields) if match_length is None else match_length
    match = struct.pack("!HH", match_type, length & 0xFFFF) + fields
    match += bytes(-len(match) % 8)
    head = _HEAD.pack(buffer_id, (len(data) if total_len is None else total_len) & 0xFFFF,
                      reason & 0xFF, table_id & 0xFF, cookie)
    body = head + match + b"\0\0" + data
    return struct.pack("!BBHI", version, msg_type, 8 + len(body), xid) + body


def well_formed(xid: int, in_port: int, data: bytes) -> bytes:
    """The PACKET_IN an honest switch sends for a table miss."""
    return packet_in(xid, in_port_oxm(in_port), data)


#: Malformations, by name: (fields, data, packet_in options) from (rng, port, frame).
def _variants():
    def odd_port(rng):
        return rng.choice((0, OFPP_MAX, OFPP_MAX + 1, OFPP_IN_PORT, OFPP_LOCAL,
                           OFPP_CONTROLLER, OFPP_ANY, 0x7FFFFFFF, rng.randrange(OFPP_MAX, 1 << 32)))

    return {
        "no_in_port": lambda rng, port, frame: (b"", frame, {}),
        "masked_in_port": lambda rng, port, frame: (
            oxm(wire.OXM_IN_PORT, struct.pack("!I", port), mask=b"\xff\xff\xff\x00"), frame, {}),
        "reserved_or_huge_in_port": lambda rng, port, frame: (
            in_port_oxm(odd_port(rng)), frame, {}),
        "duplicate_in_port": lambda rng, port, frame: (
            in_port_oxm(rng.randrange(1, 1 << 32)) + in_port_oxm(port), frame, {}),
        "in_port_after_other_fields": lambda rng, port, frame: (
            oxm(wire.OXM_ETH_SRC, rng.randbytes(6)) + oxm(5, struct.pack("!H", 0x88CC))
            + in_port_oxm(port), frame, {}),
        "unknown_oxm_fields": lambda rng, port, frame: (
            in_port_oxm(port) + oxm(rng.randrange(40, 128), rng.randbytes(rng.randrange(1, 9)))
            + oxm(rng.randrange(2), rng.randbytes(4), oxm_class=rng.choice((0, 1, 0x1234))),
            frame, {}),
        "experimenter_oxm": lambda rng, port, frame: (
            in_port_oxm(port) + oxm(rng.randrange(128), rng.randbytes(4) + rng.randbytes(4),
                                    oxm_class=0xFFFF), frame, {}),
        "standard_match_type": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"match_type": 0}),
        "total_len_short": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"total_len": rng.randrange(max(1, len(frame)))}),
        "total_len_long": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"total_len": len(frame) + rng.randrange(1, 60000)}),
        "buffered": lambda rng, port, frame: (
            in_port_oxm(port), frame[:rng.randrange(len(frame) + 1)],
            {"buffer_id": rng.getrandbits(31), "total_len": 1500}),
        "no_data": lambda rng, port, frame: (in_port_oxm(port), b"", {}),
        "huge_data": lambda rng, port, frame: (
            in_port_oxm(port), frame + rng.randbytes(60000), {}),
        "odd_reason_table_cookie": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"reason": rng.randrange(256),
                                       "table_id": rng.randrange(256),
                                       "cookie": rng.getrandbits(64)}),
        "match_length_short": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"match_length": rng.choice((0, 1, 2, 3, 4, 8))}),
        "match_length_long": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"match_length": 12 + rng.randrange(1, 200)}),
        "oxm_payload_short": lambda rng, port, frame: (
            oxm(wire.OXM_IN_PORT, struct.pack("!H", port & 0xFFFF)), frame, {}),
        "oxm_length_past_end": lambda rng, port, frame: (
            in_port_oxm(port) + oxm(wire.OXM_ETH_SRC, rng.randbytes(6), length=250), frame,
            {"match_length": 4 + 8 + 10}),
        "zero_length_oxms": lambda rng, port, frame: (
            in_port_oxm(port) + oxm(rng.randrange(40), b"", length=0) * rng.randrange(1, 20),
            frame, {}),
        "bad_version": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"version": rng.choice((1, 2, 3, 5, 6, 0x7F))}),
        "unknown_message_type": lambda rng, port, frame: (
            in_port_oxm(port), frame, {"msg_type": rng.choice((8, 11, 12, 30, 31, 35, 200))}),
    }


VARIANTS = _variants()


def malformed(rng: random.Random, xid: int, port: int, frame: bytes,
              variant: str | None = None) -> Tuple[str, bytes]:
    """(variant name, message): a PACKET_IN from ``port`` carrying ``frame``, broken
    the ``variant`` way (else a random one)."""
    name = variant or rng.choice(sorted(VARIANTS))
    fields, data, options = VARIANTS[name](rng, port, frame)
    return name, packet_in(xid, fields, data, **options)


class _Datapath:
    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser
    id = 0
    address = ("fuzz", 0)


_RYU_PARSER_LOG = logging.getLogger("ryu.ofproto.ofproto_parser")


def ryu_verdict(message: bytes) -> str:
    """How Ryu 4.34's receive loop takes ``message``: PARSED, REJECTED or FATAL."""
    version, msg_type, length, xid = ofproto_parser.header(message)
    if length < 8 or length != len(message):
        return FATAL
    disabled, _RYU_PARSER_LOG.disabled = _RYU_PARSER_LOG.disabled, True
    try:
        parsed = ofproto_parser.msg(_Datapath, version, msg_type, length, xid, message)
    except Exception:  # noqa: BLE001 - what Ryu's receive loop would die of
        return FATAL
    finally:
        _RYU_PARSER_LOG.disabled = disabled
    return PARSED if parsed is not None else REJECTED
