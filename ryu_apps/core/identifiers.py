"""Identifier schemes: how a VM's MAC address carries its configuration-template id.

A scheme *decodes* a VM's MAC into a template id and *encodes* a template id
and a unique id (what tells VMs of one template apart) into a MAC. Pure: no
I/O and no randomness source of its own (callers pass one in).

This module holds the prefix and interleave schemes and :func:`scheme_from_spec`;
MACs are in :mod:`~ryu_apps.core.mac_address`, the scheme interface in
:mod:`~ryu_apps.core.scheme_base`, the table scheme in
:mod:`~ryu_apps.core.table_scheme` (all re-exported here).

MAC bits are numbered 47 (most significant bit of the first octet) down to 0
(least significant bit of the last octet). The I/G bit (multicast) is bit 40,
the U/L bit (locally administered) is bit 41. See ``docs/identifiers.md``.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional, Tuple

from ryu_apps.core.mac_address import (
    BROADCAST_MAC,
    IG_BIT,
    MAC_BITS,
    MAC_MAX,
    UL_BIT,
    IdentifierError,
    Mac,
    MacLike,
    check_vm_mac,
    format_mac,
    is_int,
    is_locally_administered,
    normalise_mac,
    parse_mac,
    parse_number,
    vm_mac_problem,
)
from ryu_apps.core.scheme_base import RANDOM_TRIES, TEMPLATE_ID_MAX, IdentifierScheme, RandomSource
from ryu_apps.core.table_scheme import TableEntry, TableScheme, parse_table_entry

#: MACs (mac_address), the scheme interface (scheme_base) and the table scheme
#: (table_scheme) are re-exported: most callers import them from here.
__all__ = [
    "BROADCAST_MAC", "IG_BIT", "MAC_BITS", "MAC_MAX", "UL_BIT", "IdentifierError",
    "Mac", "MacLike", "check_vm_mac", "format_mac",
    "is_locally_administered", "normalise_mac", "parse_mac", "parse_number",
    "vm_mac_problem", "RANDOM_TRIES", "TEMPLATE_ID_MAX", "IdentifierScheme",
    "RandomSource", "TableEntry", "TableScheme", "parse_table_entry", "PrefixScheme",
    "InterleaveScheme", "scheme_from_spec",
]


# -- prefix/16 and prefix/12 -------------------------------------------------------

class PrefixScheme(IdentifierScheme):
    """The template id in the top ``template_bits`` bits, the unique id below."""

    WIDTHS = (16, 12)

    def __init__(self, template_bits: object = 16) -> None:
        if not is_int(template_bits) or template_bits not in self.WIDTHS:
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
