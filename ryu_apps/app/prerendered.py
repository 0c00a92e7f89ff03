"""Pre-rendered OpenFlow 1.3 bytes per flow shape, patched per VM on the hot path.

A new VM's flows differ from another VM's of the same template only in a few
values: its MAC, port, IP, cookie, meter id, metadata. This module splits a
spec into its *shape* (everything else: table, priority, field names,
constant values, actions) and those values, encodes each shape once through
the general encoder (:mod:`ryu_apps.app.openflow_bytes`), finds where each
value lands in the bytes by re-encoding the shape with that value changed, and
from then on writes a spec of that shape by copying the shape's bytes and
patching the values in (a shape is learnt when it is seen a second time, and
only with at most :data:`MAX_VALUES` values). Nothing here knows today's flow
list: whatever specs the compiler produces become shapes. A shape whose bytes
do not patch cleanly (a value whose encoding moves other bytes) is marked and
always goes through the general encoder. The result is byte-identical to the general encoder
(tests/unit/test_prerendered.py checks every default template and random VMs).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ryu_apps.app import openflow_bytes
from ryu_apps.app.framework import ofproto_v1_3 as ofp
from ryu_apps.core.cookies import KIND_SHIFT, CookieKind
from ryu_apps.core.flow_plan import SwitchChanges
from ryu_apps.core.flowspec import (
    ApplyActions,
    FlowSpec,
    Meter,
    MeterSpec,
    Output,
    SetField,
    WriteMetadata,
)

#: Match (and set-field) values that vary per VM: name -> (kind, encoded length).
VARIABLE_FIELDS: Dict[str, Tuple[str, int]] = {
    "in_port": ("int", 4), "metadata": ("int", 8), "eth_src": ("mac", 6),
    "eth_dst": ("mac", 6), "arp_sha": ("mac", 6), "ipv4_src": ("ipv4", 4),
    "arp_spa": ("ipv4", 4), "ipv6_src": ("ipv6", 16), "ipv6_nd_target": ("ipv6", 16),
    "ipv6_nd_sll": ("mac", 6), "ipv6_nd_tll": ("mac", 6),
}
_COOKIE, _PORT, _METER, _METADATA = ("int", 8), ("int", 4), ("int", 4), ("int", 8)
#: Flows of these kinds are one-offs (a refused MAC, a probe): the general encoder.
_ONE_OFF_KINDS = frozenset({int(CookieKind.QUARANTINE), int(CookieKind.LIVENESS)})
SHAPES_LIMIT = 20_000
#: A shape is learnt the second time it is seen (a one-off is not worth its
#: learning: one encoding per value), and only with at most this many values (a
#: VLAN's flood entry, one output per member, changes shape with every member).
MAX_VALUES = 8
#: A flow with more actions than this is never split into a shape: its values would
#: be more than :data:`MAX_VALUES` but splitting it would cost as much as encoding it.
MAX_ACTIONS = 4 * MAX_VALUES

Kind = Tuple[str, int]
Slot = Tuple[int, Kind]   # (offset in the message, value kind)


_WMETA, _OUT, _SET, _METER_MARK, _APPLY = "=wmeta", "=out", "=set", "=meter", "=apply"


def _split_flow(spec: FlowSpec) -> Tuple[tuple, List[Any]]:
    """The shape of a flow add (hashable) and its values in order, the cookie first.
    A value's place in the shape is a marker (:func:`_kinds` reads them back).
    Instructions are told apart by their exact class, as :func:`_join_flow` does."""
    values: List[Any] = [spec.cookie]
    shape: List[Any] = ["add", spec.table_id, spec.priority, spec.idle_timeout,
                        spec.hard_timeout]
    add_shape, add_value = shape.append, values.append
    for item in spec.match:
        name, value = item
        if name in VARIABLE_FIELDS and value.__class__ is not tuple:
            add_shape(name)
            add_value(value)
        else:
            add_shape(item)
    for instruction in spec.instructions:
        if type(instruction) is Meter:
            add_shape(_METER_MARK)
            add_value(instruction.meter_id)
        elif type(instruction) is WriteMetadata:
            add_shape((_WMETA, instruction.mask))
            add_value(instruction.value)
        elif type(instruction) is ApplyActions:
            add_shape((_APPLY, _split_actions(instruction.actions, values)))
        else:
            add_shape(instruction)
    return tuple(shape), values


def _split_actions(actions: Sequence[Any], values: List[Any]) -> tuple:
    shape: List[Any] = []
    for action in actions:
        if type(action) is Output:
            shape.append((_OUT, action.max_len))
            values.append(action.port)
        elif type(action) is SetField and action.name in VARIABLE_FIELDS \
                and action.value.__class__ is not tuple:
            shape.append((_SET, action.name))
            values.append(action.value)
        else:
            shape.append(action)
    return tuple(shape)


def _kinds(shape: tuple) -> List[Kind]:
    """The kinds of a flow shape's values, in :func:`_split_flow`'s order."""
    kinds = [_COOKIE]
    for item in shape[5:]:
        if isinstance(item, str):
            kinds.append(_METER if item == _METER_MARK else VARIABLE_FIELDS[item])
        elif isinstance(item, tuple) and item[0] == _WMETA:
            kinds.append(_METADATA)
        elif isinstance(item, tuple) and item[0] == _APPLY:
            kinds.extend(_action_kinds(item[1]))
    return kinds


def _action_kinds(actions: tuple) -> List[Kind]:
    kinds: List[Kind] = []
    for item in actions:
        if isinstance(item, tuple) and item[0] == _OUT:
            kinds.append(_PORT)
        elif isinstance(item, tuple) and item[0] == _SET:
            kinds.append(VARIABLE_FIELDS[item[1]])
    return kinds


def _join_flow(spec: FlowSpec, values: List[Any]) -> FlowSpec:
    """``spec`` with its values (in :func:`_split_flow`'s order) replaced."""
    feed = iter(values)
    cookie = next(feed)
    match = tuple((name, next(feed)) if name in VARIABLE_FIELDS
                  and value.__class__ is not tuple else (name, value)
                  for name, value in spec.match)
    instructions = []
    for instruction in spec.instructions:
        if type(instruction) is Meter:
            instruction = Meter(next(feed))
        elif type(instruction) is WriteMetadata:
            instruction = WriteMetadata(next(feed), instruction.mask)
        elif type(instruction) is ApplyActions:
            instruction = ApplyActions(tuple(_join_action(a, feed) for a in instruction.actions))
        instructions.append(instruction)
    return FlowSpec(spec.dpid, spec.table_id, spec.priority, match, tuple(instructions),
                    cookie, spec.idle_timeout, spec.hard_timeout)


def _join_action(action: Any, feed) -> Any:
    if type(action) is Output:
        return Output(next(feed), action.max_len)
    if type(action) is SetField and action.name in VARIABLE_FIELDS \
            and action.value.__class__ is not tuple:
        return SetField(action.name, next(feed))
    return action


# -- values to bytes, and a different value of the same kind ---------------------------
def _mac_bytes(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def _ipv4_bytes(value: str) -> bytes:
    return bytes(map(int, value.split(".")))


def _ipv6_bytes(value: str) -> bytes:
    try:   # the C parser; the general encoder's for what it does not take (a scope)
        return socket.inet_pton(socket.AF_INET6, value)
    except (OSError, TypeError):
        return ipaddress.IPv6Address(value).packed


def _converter(kind: Kind) -> Callable[[Any], bytes]:
    form, length = kind
    if form == "mac":
        return _mac_bytes
    if form == "ipv4":
        return _ipv4_bytes
    if form == "ipv6":
        return _ipv6_bytes
    return lambda value: value.to_bytes(length, "big")


def _flipped(kind: Kind, value: Any) -> Any:
    """A value of the same kind whose every encoded byte differs from ``value``'s."""
    form, _length = kind
    raw = bytes(b ^ 0xFF for b in _converter(kind)(value))
    if form == "int":
        return int.from_bytes(raw, "big")
    if form == "mac":
        return ":".join(f"{b:02x}" for b in raw)
    if form == "ipv6":
        return str(ipaddress.IPv6Address(raw))
    return ".".join(str(b) for b in raw)


# -- shapes ------------------------------------------------------------------------------
class _Shape:
    """A shape's bytes (with the first spec's values) and where each value goes.

    Rendering joins the constant pieces between the slots with the values'
    bytes (``pieces``: per slot in byte order, the value's index, its converter,
    its length and the constant bytes after it; ``head``: the bytes before the
    first slot)."""

    __slots__ = ("base", "slots", "head", "pieces")

    def __init__(self, base: bytes, slots: List[Tuple[int, int, Callable[[Any], bytes]]]
                 ) -> None:
        self.base, self.slots = base, slots
        self.head = base
        self.pieces: List[Tuple[int, Callable[[Any], bytes], int, bytes]] = []

    def seal(self) -> bool:
        """Lay out the pieces from the slots; False when two slots overlap."""
        order = sorted(range(len(self.slots)), key=lambda i: self.slots[i][0])
        ends = [self.slots[i][0] for i in order[1:]] + [len(self.base)]
        pieces: List[Tuple[int, Callable[[Any], bytes], int, bytes]] = []
        last = 0
        for index, end in zip(order, ends):
            start, stop, convert = self.slots[index]
            if start < last or stop > end:
                return False
            pieces.append((index, convert, stop - start, self.base[stop:end]))
            last = stop
        self.head = self.base[:self.slots[order[0]][0]] if order else self.base
        self.pieces = pieces
        return True

    def render(self, values: List[Any]) -> Optional[bytes]:
        """The bytes with ``values`` patched in; None when a value does not fit its slot."""
        parts = [self.head]
        append = parts.append
        try:
            for index, convert, length, after in self.pieces:
                raw = convert(values[index])
                if len(raw) != length:
                    return None
                append(raw)
                append(after)
        except (ValueError, TypeError, OverflowError, AttributeError, IndexError):
            return None
        return b"".join(parts)


_UNPATCHABLE = _Shape(b"", [])
_SHAPES: Dict[tuple, _Shape] = {}


def _learn(values: List[Any], kinds: List[Kind], encode: Callable[[List[Any]], bytes]
           ) -> _Shape:
    """Encode the shape with its values, then each value flipped, to find its slot; a
    shape whose flipped encodings differ elsewhere, or do not patch back, is marked."""
    try:
        base = encode(values)
        shape = _Shape(base, [])
        checks = [(values, base)]
        for index, kind in enumerate(kinds):
            changed = list(values)
            changed[index] = _flipped(kind, values[index])
            other = encode(changed)
            diff = [i for i, (a, b) in enumerate(zip(base, other)) if a != b]
            if len(other) != len(base) or len(diff) != kind[1] or \
                    diff[-1] - diff[0] != kind[1] - 1:
                return _UNPATCHABLE
            shape.slots.append((diff[0], diff[0] + kind[1], _converter(kind)))
            checks.append((changed, other))
        if not shape.seal() or any(shape.render(changed) != other for changed, other in checks):
            return _UNPATCHABLE
    except (ValueError, TypeError, OverflowError, AttributeError):
        return _UNPATCHABLE
    return shape


_SEEN_ONCE: Dict[tuple, None] = {}


def _shape_of(key: tuple, values: List[Any], kinds: Callable[[], List[Kind]],
              encode: Callable[[List[Any]], bytes]) -> _Shape:
    """The shape's bytes and slots; :data:`_UNPATCHABLE` the first time it is seen,
    or when it has too many values to be worth learning."""
    shape = _SHAPES.get(key)
    if shape is not None:
        return shape
    if len(values) > MAX_VALUES:
        return _UNPATCHABLE
    if key not in _SEEN_ONCE:
        if len(_SEEN_ONCE) >= SHAPES_LIMIT:
            _SEEN_ONCE.clear()
        _SEEN_ONCE[key] = None
        return _UNPATCHABLE
    if len(_SHAPES) >= SHAPES_LIMIT:
        _SHAPES.clear()
    del _SEEN_ONCE[key]
    shape = _SHAPES[key] = _learn(values, kinds(), encode)
    return shape


def _long(spec: FlowSpec) -> bool:
    """Whether ``spec`` has more actions than any shape worth learning (a VLAN's flood
    entry: one or two per member)."""
    count = 0
    for instruction in spec.instructions:
        if instruction.__class__ is ApplyActions:
            count += len(instruction.actions)
    return count > MAX_ACTIONS


def flow_add(spec: FlowSpec) -> bytes:
    """:func:`openflow_bytes.encoded_flow_add` of ``spec``, from its shape's bytes."""
    if (spec.cookie >> KIND_SHIFT) & 0xF in _ONE_OFF_KINDS:
        return openflow_bytes.encoded_flow_add(spec)
    if _long(spec):   # a new version of it each time: encoded, not split, not cached
        return openflow_bytes.encode_flow_add_uncached(spec)
    key, values = _split_flow(spec)
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _shape_of(key, values, lambda: _kinds(key),
                          lambda changed: openflow_bytes.encode_flow_add_uncached(
                              _join_flow(spec, changed)))
    data = shape.render(values) if shape is not _UNPATCHABLE else None
    return data if data is not None else openflow_bytes.encoded_flow_add(spec)


def meter_mod(spec: MeterSpec, command: int) -> bytes:
    """:func:`openflow_bytes.encoded_meter_mod`, from the bytes of its rate and burst."""
    key = ("meter", command, spec.rate_kbps, spec.burst_kbits, spec.packets)
    values = [spec.meter_id]
    shape = _shape_of(key, values, lambda: [_METER],
                      lambda changed: openflow_bytes.encode_meter_mod_uncached(
                          MeterSpec(spec.dpid, changed[0], spec.rate_kbps, spec.burst_kbits,
                                    spec.packets), command))
    data = shape.render(values) if shape is not _UNPATCHABLE else None
    return data if data is not None else openflow_bytes.encoded_meter_mod(spec, command)


def messages(changes: SwitchChanges) -> List[bytes]:
    """:func:`openflow_bytes.encoded_messages` of ``changes``: the same bytes in the
    same order (meters, flow adds by falling priority, flow deletes, meter deletes),
    adds and meters from their shapes."""
    adds = changes.adds
    out = [meter_mod(m, ofp.OFPMC_MODIFY if changes.replaces(m) else ofp.OFPMC_ADD)
           for m in adds if isinstance(m, MeterSpec)]
    flows = sorted((s for s in adds if isinstance(s, FlowSpec)), key=lambda s: -s.priority)
    out += [flow_add(s) for s in flows]
    out += [openflow_bytes.encoded_flow_delete(s) for s in changes.deletes
            if isinstance(s, FlowSpec)]
    out += [openflow_bytes.encoded_meter_mod(s, ofp.OFPMC_DELETE)
            for s in changes.deletes if isinstance(s, MeterSpec)]
    return out


def shape_count() -> int:
    """How many shapes are known (for benchmarks and tests)."""
    return len(_SHAPES)
