"""Validation of a template's address keys: ``bind_ip``, ``allowed_addresses`` (pure).

``bind_ip`` is a mode of :data:`~ryu_apps.core.template_model.BIND_IP_MODES`
(``true`` is accepted as ``first_seen``, so libraries written before the modes
load unchanged) or ``false``.

``allowed_addresses`` (virtual switch only) lists IPv4 and IPv6 prefixes a VM
of the template may send from besides its bound addresses. Each entry is a
prefix of the family its guard checks (IPv4 needs ``bind_ip``, IPv6
``bind_ipv6``: without the guard the entry would allow nothing more than
everything already passes); entries of one template may not overlap, and
no two templates may share an address (:class:`AddressOwners`): an address
one VM may claim must not be another's to claim.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import List, Mapping, Tuple

from ryu_apps.core.acl_validation import parse_prefix
from ryu_apps.core.template_model import BIND_IP_FIRST_SEEN, BIND_IP_MODES, Prefix
from ryu_apps.core.validation_checks import Scope, join_path, show

#: Entries of one template's ``allowed_addresses`` (each costs a few flows per server).
MAX_ALLOWED_ADDRESSES = 64
_EXAMPLES = "'10.0.1.0/24' or '2001:db8:1::/64'"


def parse_bind_ip(scope: Scope, path: str, value: object) -> str | None:
    """A ``bind_ip`` mode, ``true`` (its alias ``first_seen``), or ``false`` (None)."""
    if value is True:
        return BIND_IP_FIRST_SEEN
    if value is False:
        return None
    if isinstance(value, str) and value in BIND_IP_MODES:
        return value
    modes = " or ".join(repr(mode) for mode in BIND_IP_MODES)
    message = f"expected {modes} (true means {BIND_IP_FIRST_SEEN!r}) or false, got {show(value)}"
    if isinstance(value, str) and len(value) <= 64:
        close = difflib.get_close_matches(value.lower().replace("-", "_"), BIND_IP_MODES,
                                          n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    scope.error(path, message)
    return None


def parse_allowed_addresses(scope: Scope, path: str, value: object,
                            side: Mapping) -> tuple[Prefix, ...] | None:
    """The prefixes of ``allowed_addresses`` at ``path``, or None after located errors."""
    if not isinstance(value, list):
        scope.error(path, f"expected a list of prefixes, got {show(value)}")
        return None
    if len(value) > MAX_ALLOWED_ADDRESSES:
        scope.error(path, f"expected at most {MAX_ALLOWED_ADDRESSES} prefixes, "
                          f"got {len(value):,}")
        return None
    mark = scope.mark()
    found: List[Tuple[int, Prefix]] = []
    for index, item in enumerate(value):
        where = join_path(path, index)
        prefix = parse_prefix(scope, where, item, like=_EXAMPLES)
        if prefix is None:
            continue
        guard = "bind_ip" if prefix.version == 4 else "bind_ipv6"
        if not side.get(guard):
            scope.error(where, f"IPv{prefix.version} prefix {prefix} has no effect without "
                               f"{guard} (IPv{prefix.version} sources are not checked; "
                               f"did you mean to add {guard}?)")
        for other_index, other in found:
            if other.version == prefix.version and other.overlaps(prefix):
                scope.error(where, f"IPv{prefix.version} prefix {prefix} overlaps "
                                   f"{other} at {join_path(path, other_index)}")
        found.append((index, prefix))
    if not scope.clean_since(mark):
        return None
    return tuple(prefix for _, prefix in found)


@dataclass
class AddressOwners:
    """The ``allowed_addresses`` of the templates checked so far, for the overlap check."""

    owners: List[Tuple[Prefix, str, str]] = field(default_factory=list)  # prefix, label, source

    def claim(self, scope: Scope, path: str, label: str,
              prefixes: tuple[Prefix, ...]) -> None:
        """Record ``prefixes`` of template ``label``; an overlap with another's is an error."""
        for index, prefix in enumerate(prefixes):
            for other, other_label, other_source in self.owners:
                if other.version == prefix.version and other.overlaps(prefix):
                    scope.error(join_path(path, index),
                                f"IPv{prefix.version} prefix {prefix} overlaps {other} of "
                                f"{other_label} in {other_source}: an address may be allowed "
                                "to one template only")
                    break
        self.owners.extend((prefix, label, scope.source) for prefix in prefixes)
