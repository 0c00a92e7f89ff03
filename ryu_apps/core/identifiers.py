"""Identifier schemes: how a VM's MAC address carries its configuration-template id.

A scheme *decodes* a VM's MAC into a template id and *encodes* a template id
and a unique id (what tells VMs of one template apart) into a MAC. Pure: no
I/O and no randomness source of its own (callers pass one in).

MAC bits are numbered 47 (most significant bit of the first octet) down to 0
(least significant bit of the last octet). The I/G bit (multicast) is bit 40,
the U/L bit (locally administered) is bit 41. See ``docs/identifiers.md``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import (
    Callable,
    Dict,
    List,
    Mapping,
    NewType,
    Optional,
    Protocol,
    Tuple,
    TypeGuard,
    TypeVar,
    Union,
)

MAC_BITS = 48
MAC_MAX = (1 << MAC_BITS) - 1
BROADCAST_MAC = MAC_MAX
IG_BIT = 40  # individual/group: set on multicast (and broadcast) MACs
UL_BIT = 41  # universal/local: set on locally administered MACs
TEMPLATE_ID_MAX = 0xFFFF
RANDOM_TRIES = 100

MacLike = Union[str, int]
#: A MAC address in its one canonical form, six lowercase hex octets joined by
#: ':' (``00:fa:83:91:de:1b``); only :func:`normalise_mac` makes one from outside.
Mac = NewType("Mac", str)
_T = TypeVar("_T")

_MAC_PATTERN = re.compile(
    r"[0-9a-f]{1,2}(?P<sep>[:-])[0-9a-f]{1,2}(?:(?P=sep)[0-9a-f]{1,2}){4}",
    re.IGNORECASE)
_NUMBER_PATTERN = re.compile(r"0x[0-9a-f]+|[0-9]+", re.IGNORECASE)


class IdentifierError(ValueError):
    """A MAC, template id, unique id, table entry or scheme spec is not valid."""


class RandomSource(Protocol):
    """What :meth:`IdentifierScheme.random_unique_id` needs (``random.Random`` fits)."""

    def randrange(self, stop: int, /) -> int:
        ...


class _Refused(Exception):
    """Internal: a reason, to be wrapped into an :class:`IdentifierError`."""


# -- MACs -----------------------------------------------------------------------

def parse_mac(text: MacLike) -> int:
    """A MAC as an integer, from ``aa:bb:cc:dd:ee:ff``, ``aa-bb-..`` or an int."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise IdentifierError(
            f"{text!r} is not a MAC address: expected a string like "
            "aa:bb:cc:dd:ee:ff or an integer 0..2**48-1")
    if isinstance(text, int):
        if 0 <= text <= MAC_MAX:
            return text
        raise IdentifierError(
            f"{text} is not a MAC address: expected an integer 0..2**48-1")
    candidate = text.strip()
    if not _MAC_PATTERN.fullmatch(candidate):
        raise IdentifierError(
            f"{text!r} is not a MAC address: expected six hex octets separated "
            "by ':' or '-', like 00:fa:83:91:de:1b")
    return int("".join(octet.zfill(2) for octet in re.split("[:-]", candidate)), 16)


def format_mac(value: int) -> str:
    """The lowercase colon form of a MAC given as an integer."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAC_MAX:
        raise IdentifierError(f"{value!r} is not a MAC address: expected an integer 0..2**48-1")
    text = f"{value:012x}"
    return ":".join(text[i:i + 2] for i in range(0, 12, 2))


def normalise_mac(value: MacLike, where: str = "") -> Mac:
    """``value`` (``00:FA:83:91:DE:1B``, ``00-fa-..`` or an integer) as a :data:`Mac`.

    The one normaliser of MACs: raises IdentifierError that starts with
    ``where`` (the field, file or entry the value came from) and says what was
    expected and what was found.
    """
    try:
        return Mac(format_mac(parse_mac(value)))
    except IdentifierError as error:
        if not where:
            raise
        raise IdentifierError(f"{where}: {error}") from None


def canonical_mac(text: str) -> str:
    """Deprecated, for the engine's callers until they call :func:`normalise_mac`:
    its MAC, or ``text`` lower-cased when it is no MAC."""
    try:
        return normalise_mac(text)
    except IdentifierError:
        return text.lower()


def vm_mac_problem(mac: int) -> Optional[str]:
    """Why this MAC can never identify a VM, or None if it can."""
    if mac == BROADCAST_MAC:
        return "broadcast MAC is never a VM identifier"
    if mac >> IG_BIT & 1:
        return "multicast MAC (I/G bit set) is never a VM identifier"
    if mac == 0:
        return "all-zero MAC is never a VM identifier"
    return None


def check_vm_mac(mac: MacLike) -> None:
    """Raise IdentifierError if the MAC is broadcast, multicast or all-zero."""
    value = parse_mac(mac)
    problem = vm_mac_problem(value)
    if problem:
        raise IdentifierError(f"{format_mac(value)}: {problem}")


def is_locally_administered(mac: MacLike) -> bool:
    """True if the MAC's U/L bit (bit 41) is set."""
    return bool(parse_mac(mac) >> UL_BIT & 1)


def parse_number(text: Union[str, int], what: str = "value") -> int:
    """A non-negative integer from decimal (``250``) or hex (``0x00FA``) text."""
    if _is_int(text) and text >= 0:
        return text
    stripped = text.strip() if isinstance(text, str) else ""
    if _NUMBER_PATTERN.fullmatch(stripped):
        return int(stripped, 16 if stripped[:2].lower() == "0x" else 10)
    raise IdentifierError(
        f"{what} {text!r} is not a non-negative decimal (250) or hex (0x00FA) integer")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _show_template(template_id: object) -> str:
    if _is_int(template_id) and template_id >= 0:
        return f"{template_id} (0x{template_id:04X})"
    return repr(template_id)


def _show_unique(unique_id: object) -> str:
    if _is_int(unique_id) and unique_id >= 0:
        return f"{unique_id} (0x{unique_id:X})"
    return repr(unique_id)


# -- the scheme interface ---------------------------------------------------------

class IdentifierScheme(ABC):
    """How a VM's MAC carries its template id; subclasses define the bit layout."""

    name: str

    @property
    @abstractmethod
    def template_id_range(self) -> range:
        """Template ids this scheme can express."""

    @property
    @abstractmethod
    def unique_id_bits(self) -> int:
        """Width of the unique id (for the table scheme: the widest template's)."""

    def unique_id_bits_for(self, template_id: int) -> int:
        """Width of the unique id of this template's MACs."""
        self._require_template(template_id, "unique id width")
        return self.unique_id_bits

    def decode(self, mac: MacLike) -> int:
        """The template id a VM's MAC selects; refuses MACs no VM may have."""
        value = self._vm_mac(mac, "decode")
        return self._refusing("decode", value, self._template_of)

    def split(self, mac: MacLike) -> Tuple[int, int]:
        """The (template id, unique id) pair that :meth:`encode` made this MAC from."""
        value = self._vm_mac(mac, "split")
        return self._refusing("split", value, self._split)

    def encode(self, template_id: int, unique_id: int) -> str:
        """The MAC of a VM of this template with this unique id."""
        problem = self._encode_problem(template_id, unique_id)
        if problem:
            raise IdentifierError(
                f"encode template {_show_template(template_id)}, unique id "
                f"{_show_unique(unique_id)} under {self.name}: {problem}")
        return format_mac(self._compose(template_id, unique_id))

    def random_unique_id(self, rng: RandomSource, template_id: int) -> int:
        """A random unique id that :meth:`encode` accepts for this template."""
        self._require_template(template_id, "random unique id")
        for _ in range(RANDOM_TRIES):
            candidate = self._random_candidate(rng, template_id)
            if self._unique_problem(template_id, candidate) is None:
                return candidate
        raise IdentifierError(
            f"random unique id for template {_show_template(template_id)} under "
            f"{self.name}: no encodable unique id found in {RANDOM_TRIES} tries")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- checks shared by every scheme --------------------------------------
    def _vm_mac(self, mac: MacLike, verb: str) -> int:
        try:
            value = parse_mac(mac)
        except IdentifierError as error:
            raise IdentifierError(f"{verb} under {self.name}: {error}") from None
        problem = vm_mac_problem(value)
        if problem:
            raise IdentifierError(f"{verb} {format_mac(value)} under {self.name}: {problem}")
        return value

    def _refusing(self, verb: str, value: int, step: Callable[[int], _T]) -> _T:
        try:
            return step(value)
        except _Refused as reason:
            raise IdentifierError(
                f"{verb} {format_mac(value)} under {self.name}: {reason}") from None

    def _require_template(self, template_id: int, what: str) -> None:
        problem = self._template_problem(template_id)
        if problem:
            raise IdentifierError(
                f"{what} for template {_show_template(template_id)} under {self.name}: {problem}")

    def _template_problem(self, template_id: object) -> Optional[str]:
        if not _is_int(template_id):
            return f"template id must be an integer, got {template_id!r}"
        valid = self.template_id_range
        if template_id not in valid:
            last = valid.stop - 1
            return (f"template id {template_id} out of range: expected "
                    f"{valid.start}..{last} (0x{valid.start:04X}..0x{last:04X})")
        return self._scheme_template_problem(template_id)

    def _unique_problem(self, template_id: int, unique_id: object) -> Optional[str]:
        if not _is_int(unique_id):
            return f"unique id must be an integer, got {unique_id!r}"
        bits = self.unique_id_bits_for(template_id)
        if bits == 0 and unique_id != 0:
            return "unique id must be 0: this template has no unique-id bits (an exact MAC entry)"
        if not 0 <= unique_id < 1 << bits:
            return (f"unique id {unique_id} out of range: expected 0..{(1 << bits) - 1} "
                    f"(0x{(1 << bits) - 1:X}, {bits} bits)")
        ig_bit = self._unique_bit_on_ig(template_id)
        if ig_bit is not None and unique_id >> ig_bit & 1:
            return (f"unique id has bit {ig_bit} (0x{1 << ig_bit:X}) set, which lands on "
                    "the I/G bit (MAC bit 40), so the MAC would be multicast; clear that bit")
        mac = self._compose(template_id, unique_id)
        if mac == 0:
            return (f"template {template_id} with unique id {unique_id} gives the "
                    "all-zero MAC 00:00:00:00:00:00")
        problem = vm_mac_problem(mac)  # a safety net: the layouts rule this out
        if problem:
            return f"the MAC {format_mac(mac)} would be refused: {problem}"
        return self._scheme_result_problem(template_id, mac)

    def _encode_problem(self, template_id: object, unique_id: object) -> Optional[str]:
        problem = self._template_problem(template_id)
        if problem is not None or not _is_int(template_id):
            return problem
        return self._unique_problem(template_id, unique_id)

    def _random_candidate(self, rng: RandomSource, template_id: int) -> int:
        candidate = rng.randrange(1 << self.unique_id_bits_for(template_id))
        ig_bit = self._unique_bit_on_ig(template_id)
        return candidate if ig_bit is None else candidate & ~(1 << ig_bit)

    # -- what each scheme defines -----------------------------------------------
    @abstractmethod
    def _compose(self, template_id: int, unique_id: int) -> int:
        """The MAC (as an int) of a template id and an in-range unique id."""

    @abstractmethod
    def _template_of(self, mac: int) -> int:
        """The template id of a valid VM MAC; raise _Refused if it has none."""

    @abstractmethod
    def _split(self, mac: int) -> Tuple[int, int]:
        """The (template id, unique id) of a valid VM MAC; raise _Refused if none."""

    @abstractmethod
    def _unique_bit_on_ig(self, template_id: int) -> Optional[int]:
        """The unique-id bit that lands on the I/G bit, or None."""

    def _scheme_template_problem(self, template_id: int) -> Optional[str]:
        return None

    def _scheme_result_problem(self, template_id: int, mac: int) -> Optional[str]:
        return None


# -- prefix/16 and prefix/12 -------------------------------------------------------

class PrefixScheme(IdentifierScheme):
    """The template id in the top ``template_bits`` bits, the unique id below."""

    WIDTHS = (16, 12)

    def __init__(self, template_bits: object = 16) -> None:
        if not _is_int(template_bits) or template_bits not in self.WIDTHS:
            raise IdentifierError(
                f"prefix scheme template width {template_bits!r} is not supported: expected "
                "16 (prefix/16: 16-bit template id, 32-bit unique id) or "
                "12 (prefix/12: 12-bit template id, 36-bit unique id)")
        self.template_bits = template_bits
        self.name = f"prefix/{template_bits}"

    @property
    def template_id_range(self) -> range:
        return range(1 << self.template_bits)

    @property
    def unique_id_bits(self) -> int:
        return MAC_BITS - self.template_bits

    @property
    def template_ig_mask(self) -> int:
        """The template-id bit that is the MAC's I/G bit (0x0100 under prefix/16)."""
        return 1 << (IG_BIT - self.unique_id_bits)

    @property
    def template_ul_mask(self) -> int:
        """The template-id bit that is the MAC's U/L bit (0x0200 under prefix/16)."""
        return 1 << (UL_BIT - self.unique_id_bits)

    def _compose(self, template_id: int, unique_id: int) -> int:
        return template_id << self.unique_id_bits | unique_id

    def _template_of(self, mac: int) -> int:
        return mac >> self.unique_id_bits

    def _split(self, mac: int) -> Tuple[int, int]:
        return mac >> self.unique_id_bits, mac & ((1 << self.unique_id_bits) - 1)

    def _unique_bit_on_ig(self, template_id: int) -> Optional[int]:
        return None

    def _scheme_template_problem(self, template_id: int) -> Optional[str]:
        if template_id & self.template_ig_mask:
            return (f"template id has bit 0x{self.template_ig_mask:04X} set, the I/G bit "
                    "(MAC bit 40), so every MAC of this template would be multicast; "
                    "use a template id with that bit clear")
        return None


# -- interleave --------------------------------------------------------------------

INTERLEAVE_TEMPLATE_BITS = 12
INTERLEAVE_UNIQUE_BITS = MAC_BITS - INTERLEAVE_TEMPLATE_BITS
# Template bit i sits at MAC bit 4*i + 2: the 0x4 bit of every hex digit.
INTERLEAVE_TEMPLATE_POSITIONS = tuple(4 * i + 2 for i in range(INTERLEAVE_TEMPLATE_BITS))
# Unique-id bits fill the other 36 MAC bits, lowest first.
INTERLEAVE_UNIQUE_POSITIONS = tuple(
    p for p in range(MAC_BITS) if p not in INTERLEAVE_TEMPLATE_POSITIONS)
# XORed over the interleaved bits so that MACs look random: the first 48 bits
# of pi's fraction. Its I/G and U/L bits are 0, so the MAC's I/G and U/L bits
# are plain unique-id bits.
INTERLEAVE_WHITENING = 0x243F6A8885A3
INTERLEAVE_IG_UNIQUE_BIT = INTERLEAVE_UNIQUE_POSITIONS.index(IG_BIT)  # 30
INTERLEAVE_UL_UNIQUE_BIT = INTERLEAVE_UNIQUE_POSITIONS.index(UL_BIT)  # 31


def _scatter(value: int, positions: Tuple[int, ...]) -> int:
    return sum(1 << position for bit, position in enumerate(positions) if value >> bit & 1)


def _gather(mac: int, positions: Tuple[int, ...]) -> int:
    return sum(1 << bit for bit, position in enumerate(positions) if mac >> position & 1)


class InterleaveScheme(IdentifierScheme):
    """A 12-bit template id spread among the 36 bits of the unique id, whitened."""

    name = "interleave"

    @property
    def template_id_range(self) -> range:
        return range(1 << INTERLEAVE_TEMPLATE_BITS)

    @property
    def unique_id_bits(self) -> int:
        return INTERLEAVE_UNIQUE_BITS

    def _compose(self, template_id: int, unique_id: int) -> int:
        interleaved = (_scatter(template_id, INTERLEAVE_TEMPLATE_POSITIONS)
                       | _scatter(unique_id, INTERLEAVE_UNIQUE_POSITIONS))
        return interleaved ^ INTERLEAVE_WHITENING

    def _template_of(self, mac: int) -> int:
        return _gather(mac ^ INTERLEAVE_WHITENING, INTERLEAVE_TEMPLATE_POSITIONS)

    def _split(self, mac: int) -> Tuple[int, int]:
        plain = mac ^ INTERLEAVE_WHITENING
        return (_gather(plain, INTERLEAVE_TEMPLATE_POSITIONS),
                _gather(plain, INTERLEAVE_UNIQUE_POSITIONS))

    def _unique_bit_on_ig(self, template_id: int) -> Optional[int]:
        return INTERLEAVE_IG_UNIQUE_BIT

    def _random_candidate(self, rng: RandomSource, template_id: int) -> int:
        """Random MACs are locally administered: the unique id's U/L bit is set."""
        return super()._random_candidate(rng, template_id) | 1 << INTERLEAVE_UL_UNIQUE_BIT


# -- table ----------------------------------------------------------------------------

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
    except _Refused as reason:
        raise IdentifierError(f"table entry {key!r}: {reason}") from None


def _table_entry(key: object, template_id: object) -> TableEntry:
    if not isinstance(key, str):
        raise _Refused("expected a MAC (02:00:00:00:00:01) or MAC/LEN (02:aa:00:00:00:00/16)")
    mac_text, _, length_text = key.partition("/")
    try:
        prefix = parse_mac(mac_text)
    except IdentifierError as error:
        raise _Refused(error) from None
    length = _prefix_length(length_text) if "/" in key else MAC_BITS
    entry = TableEntry(key, prefix, length, _table_template_id(template_id))
    host_mask = (1 << entry.host_bits) - 1
    if prefix & host_mask:
        raise _Refused(f"host bits below /{length} must be zero: expected "
                       f"{format_mac(prefix & ~host_mask)}/{length}")
    _check_prefix_can_be_vm(entry)
    return entry


def _prefix_length(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAC_BITS:
        raise _Refused(f"prefix length {text!r} is not valid: expected 1..48")
    return int(text)


def _table_template_id(template_id: object) -> int:
    if not _is_int(template_id):
        raise _Refused(f"template id must be an integer, got {template_id!r}")
    if not 0 <= template_id <= TEMPLATE_ID_MAX:
        raise _Refused(f"template id {template_id} out of range: "
                       "expected 0..65535 (0x0000..0xFFFF)")
    return template_id


def _check_prefix_can_be_vm(entry: TableEntry) -> None:
    if entry.length == MAC_BITS:
        problem = vm_mac_problem(entry.prefix)
        if problem:
            raise _Refused(problem)
    elif entry.host_bits <= IG_BIT and entry.prefix >> IG_BIT & 1:
        raise _Refused("multicast prefix (I/G bit set): no VM MAC can match it")


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
            raise _Refused(
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
            raise _Refused(
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


# -- spec strings -----------------------------------------------------------------------

_PREFIX_SPEC = re.compile(r"prefix/(\S+)")


def scheme_from_spec(spec: str, table_entries: Optional[Mapping[str, int]] = None
                     ) -> IdentifierScheme:
    """The scheme named by a spec string (``table`` needs ``table_entries``)."""
    normalized = spec.strip().lower() if isinstance(spec, str) else ""
    if table_entries is not None and normalized != "table":
        raise IdentifierError(
            f"identifier scheme {spec!r} takes no table entries (only 'table' does)")
    if normalized in ("prefix", "interleave", "table"):
        return _named_scheme(normalized, table_entries)
    width = _PREFIX_SPEC.fullmatch(normalized)
    if width:
        return _prefix_scheme(spec, width.group(1))
    raise IdentifierError(
        f"unknown identifier scheme {spec!r}: expected one of prefix/16, prefix/12, "
        "prefix (= prefix/16), interleave, table (in configuration: table:PATH)")


def _named_scheme(name: str, table_entries: Optional[Mapping[str, int]]) -> IdentifierScheme:
    if name == "prefix":
        return PrefixScheme(16)
    if name == "interleave":
        return InterleaveScheme()
    if table_entries is None:
        raise IdentifierError(
            "identifier scheme 'table' needs table entries (in configuration: "
            "table:PATH, a YAML file with an 'entries' mapping)")
    return TableScheme(table_entries)


def _prefix_scheme(spec: str, width_text: str) -> PrefixScheme:
    try:
        return PrefixScheme(int(width_text) if width_text.isdigit() else width_text)
    except IdentifierError as error:
        raise IdentifierError(f"identifier scheme {spec!r}: {error}") from None
