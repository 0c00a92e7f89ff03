"""Resource mobility domains: which access switches share a template library (pure).

A VM may appear, and move, only within one domain; each domain selects
templates from its own library. Without a domains file there is one domain,
``default``, holding every access switch and the main library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ryu_apps.core.identity import IdentityPolicy

DEFAULT_DOMAIN = "default"


class DomainError(ValueError):
    """A domains document that is wrong; says where and what was expected."""


@dataclass(frozen=True)
class Domain:
    """One mobility domain."""

    name: str
    access_switches: Tuple[str, ...]
    templates: Optional[str]  # library path; None: the main library
    #: Whom to believe about which VM is on which port; None: the controller's default.
    identity: Optional[IdentityPolicy] = None


@dataclass(frozen=True)
class DomainMap:
    """Domains by name and by access switch name."""

    domains: Tuple[Domain, ...]

    @property
    def explicit(self) -> bool:
        """False for the implicit single default domain."""
        return bool(self.domains)

    def of_switch(self, switch_name: str) -> Optional[Domain]:
        """The domain an access switch belongs to (the default one if implicit)."""
        if not self.domains:
            return Domain(DEFAULT_DOMAIN, (), None)
        return next((d for d in self.domains if switch_name in d.access_switches), None)

    def names(self) -> Tuple[str, ...]:
        """Every domain name."""
        return tuple(d.name for d in self.domains) or (DEFAULT_DOMAIN,)


def build_domains(source: str, document: object) -> DomainMap:
    """Validate a parsed domains document::

        domains:
          - name: east
            access_switches: [a1, a2]
            templates: templates/east     # optional
            identity: ovsdb               # optional: ovsdb, packets or auto
    """
    if not isinstance(document, Mapping) or set(document) != {"domains"}:
        raise DomainError(f"{source}: expected a mapping with the single key 'domains'")
    entries = document["domains"]
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise DomainError(f"{source}: domains: expected a non-empty list")
    domains: List[Domain] = []
    owner: Dict[str, str] = {}
    for index, entry in enumerate(entries):
        domains.append(_domain(source, index, entry, owner))
    return DomainMap(tuple(domains))


def _domain(source: str, index: int, entry: object, owner: Dict[str, str]) -> Domain:
    where = f"{source}: domains[{index}]"
    if not isinstance(entry, Mapping):
        raise DomainError(f"{where}: expected a mapping, got {entry!r}")
    unknown = set(entry) - {"name", "access_switches", "templates", "identity"}
    if unknown:
        raise DomainError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                          "(expected name, access_switches, templates, identity)")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise DomainError(f"{where}.name: expected a non-empty string, got {name!r}")
    switches = entry.get("access_switches")
    if (not isinstance(switches, Sequence) or isinstance(switches, str) or not switches
            or not all(isinstance(s, str) and s for s in switches)):
        raise DomainError(f"{where}.access_switches: expected a non-empty list of bridge "
                          f"names, got {switches!r}")
    for switch in switches:
        if switch in owner:
            raise DomainError(f"{where}.access_switches: {switch!r} is already in domain "
                              f"{owner[switch]!r}")
        owner[switch] = name
    templates = entry.get("templates")
    if templates is not None and not isinstance(templates, str):
        raise DomainError(f"{where}.templates: expected a library path, got {templates!r}")
    identity = entry.get("identity")
    policy = None
    if identity is not None:
        try:
            policy = IdentityPolicy.parse(str(identity), f"{where}.identity")
        except ValueError as error:
            raise DomainError(str(error)) from None
    return Domain(name, tuple(switches), templates, policy)
