"""MAC addresses: parsing, the one canonical form, and whether one may be a VM's (pure).

MAC bits are numbered 47 (most significant bit of the first octet) down to 0
(least significant bit of the last octet). The I/G bit (multicast) is bit 40,
the U/L bit (locally administered) is bit 41. See ``docs/identifiers.md``.
"""

from __future__ import annotations

import re
from typing import NewType, Optional, TypeGuard, Union

MAC_BITS = 48
MAC_MAX = (1 << MAC_BITS) - 1
BROADCAST_MAC = MAC_MAX
IG_BIT = 40  # individual/group: set on multicast (and broadcast) MACs
UL_BIT = 41  # universal/local: set on locally administered MACs


MacLike = Union[str, int]
#: A MAC address in its one canonical form, six lowercase hex octets joined by
#: ':' (``00:fa:83:91:de:1b``); only :func:`normalise_mac` makes one from outside.
Mac = NewType("Mac", str)

_MAC_PATTERN = re.compile(
    r"[0-9a-f]{1,2}(?P<sep>[:-])[0-9a-f]{1,2}(?:(?P=sep)[0-9a-f]{1,2}){4}",
    re.IGNORECASE)
#: The canonical form itself (what frames.parse_frame and format_mac produce).
_CANONICAL = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_NUMBER_PATTERN = re.compile(r"0x[0-9a-f]+|[0-9]+", re.IGNORECASE)


class IdentifierError(ValueError):
    """A MAC, template id, unique id, table entry or scheme spec is not valid."""


def parse_mac(text: MacLike) -> int:
    """A MAC as an integer, from ``aa:bb:cc:dd:ee:ff``, ``aa-bb-..`` or an int."""
    if type(text) is str and _CANONICAL.fullmatch(text):   # every frame's MAC: the hot path
        return int(text.replace(":", ""), 16)
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
    if isinstance(value, str) and _CANONICAL.fullmatch(value):
        return Mac(value)   # already canonical (every frame's MAC): the hot path
    try:
        return Mac(format_mac(parse_mac(value)))
    except IdentifierError as error:
        if not where:
            raise
        raise IdentifierError(f"{where}: {error}") from None


def is_canonical_mac(value: object) -> bool:
    """Whether ``value`` is a MAC in the canonical form already (no normalising needed)."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None


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
    if is_int(text) and text >= 0:
        return text
    stripped = text.strip() if isinstance(text, str) else ""
    if _NUMBER_PATTERN.fullmatch(stripped):
        return int(stripped, 16 if stripped[:2].lower() == "0x" else 10)
    raise IdentifierError(
        f"{what} {text!r} is not a non-negative decimal (250) or hex (0x00FA) integer")


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)

