"""Encode flow specs, meters, packet-outs and barriers straight to OpenFlow 1.3 bytes.

Rendering a spec through Ryu's message classes (OFPMatch(**fields), actions,
instructions, then serialize()) costs far more than the bytes it produces,
and the pure core hands us immutable specs. So specs are encoded here
straight to OpenFlow 1.3 bytes, once per spec (cached), with the same layout
Ryu produces (a unit test compares them byte for byte). Anything this
encoder does not know falls back to Ryu's classes (:mod:`ryu_apps.app.openflow`).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Dict, List, Tuple

from ryu_apps.app.framework import ofproto_v1_3 as ofp
from ryu_apps.app.framework import ofproto_v1_3_parser as parser

from ryu_apps.app.openflow import (
    OFPP_IN_PORT_NX,
    FULL_COOKIE_MASK,
    flow_add,
    flow_delete,
    meter_mod,
)
from ryu_apps.core.cookies import KIND_SHIFT, CookieKind
from ryu_apps.core.flowspec import (
    ApplyActions,
    Conntrack,
    FlowSpec,
    GotoTable,
    Meter,
    MeterSpec,
    Move,
    Output,
    OutputField,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    WriteMetadata,
)
from ryu_apps.core.flow_plan import SwitchChanges

_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!QQBBHHHIIIH2x")
_METER_MOD = struct.Struct("!HHI")
_BAND_DROP = struct.Struct("!HHII4x")
_OXM_BASIC = 0x8000
_NX_VENDOR_ID = 0x00002320
_NXAST_RESUBMIT_TABLE = 14
_NXAST_CT = 35
_NXAST_REG_MOVE, _NXAST_OUTPUT_REG = 6, 15
_NX_CT_RECIRC_NONE = 0xFF
#: Nicira's NXM_NX_CT_STATE (class NXM_1, field 105, 32 bits); Ryu orders it before
#: every OpenFlow basic field (its class number is lower).
_NXM_1 = 0x0001
_CT_STATE_FIELD = 105
#: OXM fields the encoder knows: name -> (field number, value length, kind).
_OXM_FIELDS: Dict[str, Tuple[int, int, str]] = {
    "in_port": (0, 4, "int"), "metadata": (2, 8, "int"),
    "eth_dst": (3, 6, "mac"), "eth_src": (4, 6, "mac"), "eth_type": (5, 2, "int"),
    "vlan_vid": (6, 2, "int"), "vlan_pcp": (7, 1, "int"), "ip_dscp": (8, 1, "int"),
    "ip_proto": (10, 1, "int"), "ipv4_src": (11, 4, "ipv4"), "ipv4_dst": (12, 4, "ipv4"),
    "tcp_src": (13, 2, "int"), "tcp_dst": (14, 2, "int"),
    "udp_src": (15, 2, "int"), "udp_dst": (16, 2, "int"),
    "icmpv4_type": (19, 1, "int"), "icmpv4_code": (20, 1, "int"),
    "arp_op": (21, 2, "int"), "arp_spa": (22, 4, "ipv4"), "arp_tpa": (23, 4, "ipv4"),
    "arp_sha": (24, 6, "mac"), "arp_tha": (25, 6, "mac"),
    "ipv6_src": (26, 16, "ipv6"), "ipv6_dst": (27, 16, "ipv6"),
    "icmpv6_type": (29, 1, "int"), "icmpv6_code": (30, 1, "int"),
    "ipv6_nd_target": (31, 16, "ipv6"), "ipv6_nd_sll": (32, 6, "mac"),
    "ipv6_nd_tll": (33, 6, "mac"),
}


class _NotEncodable(Exception):
    """A spec the fast encoder does not cover; Ryu's classes render it."""


def _field_bytes(kind: str, length: int, value) -> bytes:
    if kind == "int":
        if not isinstance(value, int):
            raise _NotEncodable(value)
        return value.to_bytes(length, "big")
    if kind == "mac":
        if not isinstance(value, str):
            raise _NotEncodable(value)
        raw = bytes.fromhex(value.replace(":", "").replace("-", ""))
        if len(raw) != 6:
            raise _NotEncodable(value)
        return raw
    if not isinstance(value, str) or "/" in value:
        raise _NotEncodable(value)
    if kind == "ipv6":
        return ipaddress.IPv6Address(value).packed
    return ipaddress.IPv4Address(value).packed


def _encode_match(match) -> bytes:
    """An ofp_match (OXM, fields in field-number order as Ryu sorts them), padded."""
    fields = []
    for name, value in match:
        if name == "ct_state":
            fields.append((-1, _ct_state_bytes(value)))
            continue
        info = _OXM_FIELDS.get(name)
        if info is None:
            raise _NotEncodable(name)
        number, length, kind = info
        if isinstance(value, tuple):
            raw = _field_bytes(kind, length, value[0])
            mask = _field_bytes(kind, length, value[1])
            raw = bytes(a & b for a, b in zip(raw, mask))
            header = (_OXM_BASIC << 16) | (number << 9) | 0x100 | (2 * length)
            fields.append((number, struct.pack("!I", header) + raw + mask))
        else:
            header = (_OXM_BASIC << 16) | (number << 9) | length
            fields.append((number, struct.pack("!I", header) + _field_bytes(kind, length,
                                                                              value)))
    fields.sort(key=lambda f: f[0])
    body = b"".join(f[1] for f in fields)
    length = 4 + len(body)
    return struct.pack("!HH", 1, length) + body + bytes(-length % 8)


def _ct_state_bytes(value) -> bytes:
    """The NXM ct_state field (value, or (value, mask))."""
    if isinstance(value, tuple):
        header = (_NXM_1 << 16) | (_CT_STATE_FIELD << 9) | 0x100 | 8
        return struct.pack("!III", header, value[0] & value[1], value[1])
    if not isinstance(value, int):
        raise _NotEncodable(value)
    return struct.pack("!II", (_NXM_1 << 16) | (_CT_STATE_FIELD << 9) | 4, value)


def _encode_action(action) -> bytes:
    if isinstance(action, Output):
        return struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, action.port, action.max_len)
    if isinstance(action, PushVlan):
        return struct.pack("!HHH2x", ofp.OFPAT_PUSH_VLAN, 8, action.ethertype)
    if isinstance(action, PopVlan):
        return struct.pack("!HH4x", ofp.OFPAT_POP_VLAN, 8)
    if isinstance(action, SetField):
        info = _OXM_FIELDS.get(action.name)
        if info is None or isinstance(action.value, tuple):
            raise _NotEncodable(action)
        number, length, kind = info
        oxm = struct.pack("!I", (_OXM_BASIC << 16) | (number << 9) | length) \
            + _field_bytes(kind, length, action.value)
        size = 4 + len(oxm)
        size += -size % 8
        return struct.pack("!HH", ofp.OFPAT_SET_FIELD, size) + oxm + bytes(size - 4 - len(oxm))
    if isinstance(action, Resubmit):   # Nicira extension: resubmit(in_port, table)
        return struct.pack("!HHIHHB3x", ofp.OFPAT_EXPERIMENTER, 16, _NX_VENDOR_ID,
                           _NXAST_RESUBMIT_TABLE, OFPP_IN_PORT_NX, action.table_id)
    if isinstance(action, Conntrack):   # Nicira extension: ct(commit, zone=, table=)
        table = _NX_CT_RECIRC_NONE if action.table is None else action.table
        return struct.pack("!HHIHHIHB3xH", ofp.OFPAT_EXPERIMENTER, 24, _NX_VENDOR_ID,
                           _NXAST_CT, 1 if action.commit else 0, 0, action.zone, table, 0)
    if isinstance(action, Move):   # Nicira extension: move:src[]->dst[]
        return struct.pack("!HHIHHHHII", ofp.OFPAT_EXPERIMENTER, 24, _NX_VENDOR_ID,
                           _NXAST_REG_MOVE, action.n_bits, 0, 0, _oxm_header(action.src),
                           _oxm_header(action.dst))
    if isinstance(action, OutputField):   # Nicira extension: output:field[start..end]
        return struct.pack("!HHIHHIH6x", ofp.OFPAT_EXPERIMENTER, 24, _NX_VENDOR_ID,
                           _NXAST_OUTPUT_REG, (action.start << 6) | (action.n_bits - 1),
                           _oxm_header(action.field), 0)
    raise _NotEncodable(action)


def _oxm_header(name: str) -> int:
    """The OXM header of an OpenFlow basic field the encoder knows."""
    info = _OXM_FIELDS.get(name)
    if info is None:
        raise _NotEncodable(name)
    return (_OXM_BASIC << 16) | (info[0] << 9) | info[1]


#: Encoded actions by the identity of the action object, which the entry holds (so
#: its id is never reused while it is here). The compiler shares its action objects
#: (a VLAN flood entry's per-member set-field and resubmit are interned), and a
#: flood entry repeats them in every version of it (one more member each time):
#: re-encoding one costs a look-up per action.
_ACTIONS: Dict[int, Tuple[object, bytes]] = {}
_ACTIONS_LIMIT = 50_000


def _encode_actions(actions) -> bytes:
    """The actions' bytes, each from :data:`_ACTIONS` or encoded and remembered."""
    memo, parts = _ACTIONS, []
    for action in actions:
        known = memo.get(id(action))
        if known is None or known[0] is not action:
            known = (action, _encode_action(action))
            if len(memo) >= _ACTIONS_LIMIT:
                memo.clear()
            memo[id(action)] = known
        parts.append(known[1])
    return b"".join(parts)


def _encode_instruction(instruction) -> bytes:
    if isinstance(instruction, GotoTable):
        return struct.pack("!HHB3x", ofp.OFPIT_GOTO_TABLE, 8, instruction.table_id)
    if isinstance(instruction, Meter):
        return struct.pack("!HHI", ofp.OFPIT_METER, 8, instruction.meter_id)
    if isinstance(instruction, WriteMetadata):
        return struct.pack("!HH4xQQ", ofp.OFPIT_WRITE_METADATA, 24, instruction.value,
                           instruction.mask)
    if isinstance(instruction, ApplyActions):
        actions = _encode_actions(instruction.actions)
        return struct.pack("!HH4x", ofp.OFPIT_APPLY_ACTIONS, 8 + len(actions)) + actions
    raise _NotEncodable(instruction)


def _message(msg_type: int, body: bytes) -> bytes:
    return _HEADER.pack(ofp.OFP_VERSION, msg_type, _HEADER.size + len(body), 0) + body


def _encode_flow_add(spec: FlowSpec) -> bytes:
    flags = ofp.OFPFF_SEND_FLOW_REM if spec.idle_timeout else 0
    head = _FLOW_MOD.pack(spec.cookie, 0, spec.table_id, ofp.OFPFC_ADD, spec.idle_timeout,
                          spec.hard_timeout, spec.priority, ofp.OFP_NO_BUFFER, 0, 0, flags)
    return _message(ofp.OFPT_FLOW_MOD, head + _encode_match(spec.match) + b"".join(
        _encode_instruction(i) for i in spec.instructions))


def _encode_flow_delete(spec: FlowSpec) -> bytes:
    head = _FLOW_MOD.pack(spec.cookie, FULL_COOKIE_MASK, spec.table_id,
                          ofp.OFPFC_DELETE_STRICT, 0, 0, spec.priority, ofp.OFP_NO_BUFFER,
                          ofp.OFPP_ANY, ofp.OFPG_ANY, 0)
    return _message(ofp.OFPT_FLOW_MOD, head + _encode_match(spec.match))


def _encode_meter_mod(spec: MeterSpec, command: int) -> bytes:
    unit = ofp.OFPMF_PKTPS if spec.packets else ofp.OFPMF_KBPS
    bands = b"" if command == ofp.OFPMC_DELETE else _BAND_DROP.pack(
        ofp.OFPMBT_DROP, 16, spec.rate_kbps, spec.burst_kbits)
    return _message(ofp.OFPT_METER_MOD,
                    _METER_MOD.pack(command, unit | ofp.OFPMF_BURST, spec.meter_id) + bands)


class _StubDatapath:
    """What Ryu's serializers read of a datapath."""

    ofproto = ofp
    ofproto_parser = parser


def _ryu_bytes(msg) -> bytes:
    msg.xid = 0
    msg.serialize()
    return bytes(msg.buf)


#: Encoded messages by (kind, spec): a spec is immutable, its bytes never change.
_ENCODED: Dict[tuple, bytes] = {}
_ENCODED_LIMIT = 200_000


#: Cookie kinds whose flows are one-offs (a refused MAC's drop, a liveness probe's
#: capture): encoding them every time keeps hostile traffic out of the cache.
_UNCACHED_KINDS = frozenset({int(CookieKind.QUARANTINE), int(CookieKind.LIVENESS)})


def _cached(key: tuple, encode, render) -> bytes:
    spec = key[1]
    if (getattr(spec, "cookie", 0) >> KIND_SHIFT) & 0xF in _UNCACHED_KINDS:
        try:
            return encode()
        except _NotEncodable:
            return _ryu_bytes(render())
    data = _ENCODED.get(key)
    if data is None:
        try:
            data = encode()
        except _NotEncodable:
            data = _ryu_bytes(render())
        if len(_ENCODED) >= _ENCODED_LIMIT:
            _ENCODED.clear()
        _ENCODED[key] = data
    return data


def encode_flow_add_uncached(spec: FlowSpec) -> bytes:
    """The bytes of :func:`flow_add` for ``spec``, encoded now and not cached."""
    try:
        return _encode_flow_add(spec)
    except _NotEncodable:
        return _ryu_bytes(flow_add(_StubDatapath, spec))


def encode_meter_mod_uncached(spec: MeterSpec, command: int) -> bytes:
    """The bytes of :func:`meter_mod`, encoded now and not cached."""
    try:
        return _encode_meter_mod(spec, command)
    except _NotEncodable:
        return _ryu_bytes(meter_mod(_StubDatapath, spec, command))


def encoded_flow_add(spec: FlowSpec) -> bytes:
    """The bytes of :func:`flow_add` for ``spec`` (transaction id 0)."""
    return _cached(("add", spec), lambda: _encode_flow_add(spec),
                   lambda: flow_add(_StubDatapath, spec))


def encoded_flow_delete(spec: FlowSpec) -> bytes:
    """The bytes of :func:`flow_delete` for ``spec`` (transaction id 0)."""
    return _cached(("delete", spec), lambda: _encode_flow_delete(spec),
                   lambda: flow_delete(_StubDatapath, spec))


def encoded_meter_mod(spec: MeterSpec, command: int) -> bytes:
    """The bytes of :func:`meter_mod` (transaction id 0)."""
    return _cached(("meter", command, spec), lambda: _encode_meter_mod(spec, command),
                   lambda: meter_mod(_StubDatapath, spec, command))


def encoded_messages(changes: SwitchChanges) -> List[bytes]:
    """:func:`messages_for` as bytes (transaction id 0), in the same order."""
    meters = [s for s in changes.adds if isinstance(s, MeterSpec)]
    flows = sorted((s for s in changes.adds if isinstance(s, FlowSpec)),
                   key=lambda s: -s.priority)
    messages = [encoded_meter_mod(m, ofp.OFPMC_MODIFY if changes.replaces(m)
                                  else ofp.OFPMC_ADD) for m in meters]
    messages += [encoded_flow_add(s) for s in flows]
    messages += [encoded_flow_delete(s) for s in changes.deletes if isinstance(s, FlowSpec)]
    messages += [encoded_meter_mod(s, ofp.OFPMC_DELETE)
                 for s in changes.deletes if isinstance(s, MeterSpec)]
    return messages


def with_xid(message: bytes, xid: int) -> bytes:
    """An encoded message with its transaction id set."""
    return message[:4] + xid.to_bytes(4, "big") + message[8:]


def encoded_packet_out(in_port: int, out_port: int, data: bytes) -> bytes:
    """The bytes of :func:`packet_out_to_pipeline` (``out_port`` OFPP_TABLE) or
    :func:`packet_out_to_port` (``in_port`` OFPP_CONTROLLER), transaction id 0."""
    action = struct.pack("!HHIH6x", ofp.OFPAT_OUTPUT, 16, out_port, 0xFFE5)
    return _message(ofp.OFPT_PACKET_OUT, struct.pack("!IIH6x", ofp.OFP_NO_BUFFER, in_port,
                                                     len(action)) + action + data)


def barrier_request() -> bytes:
    """An OFPT_BARRIER_REQUEST (transaction id 0)."""
    return _message(ofp.OFPT_BARRIER_REQUEST, b"")
