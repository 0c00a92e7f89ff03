"""The table identifier scheme: MAC prefixes mapped to template ids, longest prefix wins (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from ryu_apps.core.mac_address import (
    IG_BIT,
    MAC_BITS,
    IdentifierError,
    format_mac,
    is_int,
    parse_mac,
    vm_mac_problem,
)
from ryu_apps.core.scheme_base import TEMPLATE_ID_MAX, IdentifierScheme, Refused


@dataclass(frozen=True)
class TableEntry:
    """One table entry: MACs under ``prefix/length`` select ``template_id``."""

    key: str
    prefix: int
    length: int
    template_id: int

    @property
    def host_bits(self) -> int:
        return MAC_BITS - self.length

    @property
    def text(self) -> str:
        """Canonical form: the MAC for an exact entry, else ``MAC/LEN``."""
        mac = format_mac(self.prefix)
        return mac if self.length == MAC_BITS else f"{mac}/{self.length}"

    def contains(self, mac: int) -> bool:
        return mac >> self.host_bits == self.prefix >> self.host_bits


def parse_table_entry(key: object, template_id: object) -> TableEntry:
    """A validated table entry from ``MAC`` or ``MAC/LEN`` and a template id."""
    try:
        return _table_entry(key, template_id)
    except Refused as reason:
        raise IdentifierError(f"table entry {key!r}: {reason}") from None


def _table_entry(key: object, template_id: object) -> TableEntry:
    if not isinstance(key, str):
        raise Refused("expected a MAC (02:00:00:00:00:01) or MAC/LEN (02:aa:00:00:00:00/16)")
    mac_text, _, length_text = key.partition("/")
    try:
        prefix = parse_mac(mac_text)
    except IdentifierError as error:
        raise Refused(error) from None
    length = _prefix_length(length_text) if "/" in key else MAC_BITS
    entry = TableEntry(key, prefix, length, _table_template_id(template_id))
    host_mask = (1 << entry.host_bits) - 1
    if prefix & host_mask:
        raise Refused(f"host bits below /{length} must be zero: expected "
                       f"{format_mac(prefix & ~host_mask)}/{length}")
    _check_prefix_can_be_vm(entry)
    return entry


def _prefix_length(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAC_BITS:
        raise Refused(f"prefix length {text!r} is not valid: expected 1..48")
    return int(text)


def _table_template_id(template_id: object) -> int:
    if not is_int(template_id):
        raise Refused(f"template id must be an integer, got {template_id!r}")
    if not 0 <= template_id <= TEMPLATE_ID_MAX:
        raise Refused(f"template id {template_id} out of range: "
                       "expected 0..65535 (0x0000..0xFFFF)")
    return template_id


def _check_prefix_can_be_vm(entry: TableEntry) -> None:
    if entry.length == MAC_BITS:
        problem = vm_mac_problem(entry.prefix)
        if problem:
            raise Refused(problem)
    elif entry.host_bits <= IG_BIT and entry.prefix >> IG_BIT & 1:
        raise Refused("multicast prefix (I/G bit set): no VM MAC can match it")


class TableScheme(IdentifierScheme):
    """An explicit table of MACs and MAC prefixes; the longest matching prefix wins.

    ``encode(t, u)`` puts ``u`` in the host bits of template ``t``'s *encoding
    entry*: its shortest prefix (ties: the lowest prefix). An exact-MAC entry
    leaves no host bits, so it allows only unique id 0.
    """

    name = "table"

    def __init__(self, entries: Mapping[str, int]) -> None:
        if not isinstance(entries, Mapping):
            raise IdentifierError("table entries must be a mapping of MAC or MAC/LEN "
                                  f"to template id, got {entries!r}")
        if not entries:
            raise IdentifierError(
                "table scheme needs at least one entry (MAC or MAC/LEN: template id)")
        self.entries: List[TableEntry] = [parse_table_entry(k, v) for k, v in entries.items()]
        self._by_length: Dict[int, Dict[int, TableEntry]] = {}
        for entry in self.entries:
            self._index(entry)
        self._lengths = sorted(self._by_length, reverse=True)
        self._encoding: Dict[int, TableEntry] = {}
        for entry in sorted(self.entries, key=lambda e: (e.length, e.prefix)):
            self._encoding.setdefault(entry.template_id, entry)

    def _index(self, entry: TableEntry) -> None:
        slot = self._by_length.setdefault(entry.length, {})
        other = slot.setdefault(entry.prefix >> entry.host_bits, entry)
        if other is not entry:
            raise IdentifierError(
                f"table entries {other.key!r} and {entry.key!r} are the same prefix {entry.text}")

    @property
    def template_id_range(self) -> range:
        return range(TEMPLATE_ID_MAX + 1)

    @property
    def template_ids(self) -> Tuple[int, ...]:
        """The template ids the table names, ascending."""
        return tuple(sorted(self._encoding))

    @property
    def unique_id_bits(self) -> int:
        return max(entry.host_bits for entry in self._encoding.values())

    def unique_id_bits_for(self, template_id: int) -> int:
        self._require_template(template_id, "unique id width")
        return self._encoding[template_id].host_bits

    def encoding_entry(self, template_id: int) -> TableEntry:
        """The entry whose host bits :meth:`encode` fills for this template."""
        self._require_template(template_id, "encoding entry")
        return self._encoding[template_id]

    def match(self, mac: int) -> Optional[TableEntry]:
        """The longest entry containing this MAC, or None."""
        for length in self._lengths:
            entry = self._by_length[length].get(mac >> (MAC_BITS - length))
            if entry is not None:
                return entry
        return None

    def _matching(self, mac: int) -> TableEntry:
        entry = self.match(mac)
        if entry is None:
            shown = ", ".join(e.text for e in sorted(self.entries, key=lambda e: e.prefix)[:5])
            more = ", ..." if len(self.entries) > 5 else ""
            raise Refused(
                f"MAC matches no table entry; expected a MAC under one of {shown}{more}")
        return entry

    def _compose(self, template_id: int, unique_id: int) -> int:
        return self._encoding[template_id].prefix | unique_id

    def _template_of(self, mac: int) -> int:
        return self._matching(mac).template_id

    def _split(self, mac: int) -> Tuple[int, int]:
        matched = self._matching(mac)
        encoding = self._encoding[matched.template_id]
        if not encoding.contains(mac):
            raise Refused(
                f"MAC matches entry {matched.text} of template {matched.template_id}, but "
                f"that template encodes under {encoding.text}, so the MAC has no unique id")
        return matched.template_id, mac & ((1 << encoding.host_bits) - 1)

    def _unique_bit_on_ig(self, template_id: int) -> Optional[int]:
        return IG_BIT if self._encoding[template_id].host_bits > IG_BIT else None

    def _scheme_template_problem(self, template_id: int) -> Optional[str]:
        if template_id in self._encoding:
            return None
        known = ", ".join(str(t) for t in self.template_ids[:10])
        more = ", ..." if len(self._encoding) > 10 else ""
        return (f"template id {template_id} has no table entry; "
                f"the table has templates {known}{more}")

    def _scheme_result_problem(self, template_id: int, mac: int) -> Optional[str]:
        matched = self.match(mac)
        if matched is not None and matched.template_id != template_id:
            return (f"the MAC {format_mac(mac)} falls under the more specific entry "
                    f"{matched.text} (template {matched.template_id}), so it would not "
                    f"decode to template {template_id}")
        return None

