"""The identifier-scheme interface: checked encode, decode and random unique ids (pure).

A subclass defines only its bit layout (compose, split, its own limits); the
checks and the error messages common to every scheme live here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Optional, Protocol, Tuple, TypeVar

from ryu_apps.core.mac_address import (
    IdentifierError,
    MacLike,
    format_mac,
    is_int,
    parse_mac,
    vm_mac_problem,
)

TEMPLATE_ID_MAX = 0xFFFF
RANDOM_TRIES = 100
_T = TypeVar("_T")


class RandomSource(Protocol):
    """What :meth:`IdentifierScheme.random_unique_id` needs (``random.Random`` fits)."""

    def randrange(self, stop: int, /) -> int:
        ...


class Refused(Exception):
    """Internal to the schemes: a reason, to be wrapped into an :class:`IdentifierError`."""


def show_template(template_id: object) -> str:
    """A template id for messages: decimal and hex when it is one."""
    if is_int(template_id) and template_id >= 0:
        return f"{template_id} (0x{template_id:04X})"
    return repr(template_id)


def show_unique(unique_id: object) -> str:
    """A unique id for messages: decimal and hex when it is one."""
    if is_int(unique_id) and unique_id >= 0:
        return f"{unique_id} (0x{unique_id:X})"
    return repr(unique_id)



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
                f"encode template {show_template(template_id)}, unique id "
                f"{show_unique(unique_id)} under {self.name}: {problem}")
        return format_mac(self._compose(template_id, unique_id))

    def random_unique_id(self, rng: RandomSource, template_id: int) -> int:
        """A random unique id that :meth:`encode` accepts for this template."""
        self._require_template(template_id, "random unique id")
        for _ in range(RANDOM_TRIES):
            candidate = self._random_candidate(rng, template_id)
            if self._unique_problem(template_id, candidate) is None:
                return candidate
        raise IdentifierError(
            f"random unique id for template {show_template(template_id)} under "
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
        except Refused as reason:
            raise IdentifierError(
                f"{verb} {format_mac(value)} under {self.name}: {reason}") from None

    def _require_template(self, template_id: int, what: str) -> None:
        problem = self._template_problem(template_id)
        if problem:
            raise IdentifierError(
                f"{what} for template {show_template(template_id)} under {self.name}: {problem}")

    def _template_problem(self, template_id: object) -> Optional[str]:
        if not is_int(template_id):
            return f"template id must be an integer, got {template_id!r}"
        valid = self.template_id_range
        if template_id not in valid:
            last = valid.stop - 1
            return (f"template id {template_id} out of range: expected "
                    f"{valid.start}..{last} (0x{valid.start:04X}..0x{last:04X})")
        return self._scheme_template_problem(template_id)

    def _unique_problem(self, template_id: int, unique_id: object) -> Optional[str]:
        if not is_int(unique_id):
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
        if problem is not None or not is_int(template_id):
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
        """The template id of a valid VM MAC; raise Refused if it has none."""

    @abstractmethod
    def _split(self, mac: int) -> Tuple[int, int]:
        """The (template id, unique id) of a valid VM MAC; raise Refused if none."""

    @abstractmethod
    def _unique_bit_on_ig(self, template_id: int) -> Optional[int]:
        """The unique-id bit that lands on the I/G bit, or None."""

    def _scheme_template_problem(self, template_id: int) -> Optional[str]:
        return None

    def _scheme_result_problem(self, template_id: int, mac: int) -> Optional[str]:
        return None
