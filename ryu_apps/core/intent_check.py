"""The intent check: what a switch holds for dynprov against what dynprov wants (pure).

The audit (``ryu_apps/app/audit.py``) reads a switch's dynprov flows and meters
back by cookie and hands them here with the engine's desired entries for that
switch. :func:`check` answers a typed :class:`IntentReport`: each entry that
is missing, extra or changed, labelled with the owner its cookie names (kind,
template, VM). The comparison is the reconciliation's own
(``DesiredFlows.reconcile``): entries are matched by key (switch, table,
priority, match; a meter by id), an entry whose key matches but whose value
differs (actions, cookie, timeouts, bands) is changed, and only entries that
are provably dynprov's are looked at (``flow_plan.dynprov_entries``), so a
report lists exactly what a reconciliation would send.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ryu_apps.core.cookies import CookieKind, Owner, decode_cookie
from ryu_apps.core.flow_plan import Entry, dynprov_entries
from ryu_apps.core.flowspec import FlowSpec, Meter, MeterSpec

#: Owner kinds whose owner id is a VM binding's id.
VM_KINDS = (CookieKind.BINDING, CookieKind.LIVENESS, CookieKind.MIGRATION)

#: A binding id to the MAC of its VM (None when no binding has that id).
VmOf = Callable[[int], Optional[str]]


class DriftKind(str, enum.Enum):
    """How an entry differs from what dynprov wants."""

    MISSING = "missing"   # desired, not on the switch
    EXTRA = "extra"       # on the switch with a dynprov cookie, not desired
    CHANGED = "changed"   # on the switch under the same key, with another value


@dataclass(frozen=True)
class Drift:
    """One entry that differs, with the owner its cookie names and the VM behind it."""

    kind: DriftKind
    owner: Optional[Owner]
    vm: Optional[str]
    desired: Optional[Entry]
    observed: Optional[Entry]

    @property
    def entry(self) -> Entry:
        """The entry as dynprov wants it (the switch's, for an extra one)."""
        found = self.desired if self.desired is not None else self.observed
        if found is None:
            raise ValueError("a drift without an entry")
        return found


@dataclass(frozen=True)
class IntentReport:
    """What one switch holds for dynprov compared with what dynprov wants."""

    dpid: int
    desired: int                   # entries dynprov wants on the switch
    observed: int                  # dynprov's entries the switch holds
    drifts: Tuple[Drift, ...]

    @property
    def clean(self) -> bool:
        """True when the switch holds exactly what dynprov wants."""
        return not self.drifts

    def counts(self) -> Dict[str, int]:
        """Drifts by kind (every kind present, zero when none)."""
        counts = {kind.value: 0 for kind in DriftKind}
        for drift in self.drifts:
            counts[drift.kind.value] += 1
        return counts


def check(dpid: int, desired: Iterable[Entry], observed: Iterable[Entry],
          vm_of: VmOf) -> IntentReport:
    """Compare a switch's dynprov entries (``observed``, read back; others are ignored)
    with the ``desired`` ones; drifts sorted by kind, owner, table, priority."""
    wanted = {e.key: e for e in desired}
    held = {e.key: e for e in dynprov_entries(observed)}
    meter_owners = _meter_owners([*wanted.values(), *held.values()])
    drifts: List[Drift] = []
    for key, entry in wanted.items():
        found = held.get(key)
        if found is None:
            drifts.append(_drift(DriftKind.MISSING, entry, None, meter_owners, vm_of))
        elif found != entry:
            drifts.append(_drift(DriftKind.CHANGED, entry, found, meter_owners, vm_of))
    for key, entry in held.items():
        if key not in wanted:
            drifts.append(_drift(DriftKind.EXTRA, None, entry, meter_owners, vm_of))
    drifts.sort(key=_order)
    return IntentReport(dpid, len(wanted), len(held), tuple(drifts))


def owner_of(entry: Entry, meter_owners: Dict[int, Owner]) -> Optional[Owner]:
    """The owner a flow's cookie names; a meter's: that of a flow using it."""
    if isinstance(entry, MeterSpec):
        return decode_cookie(entry.cookie) or meter_owners.get(entry.meter_id)
    return decode_cookie(entry.cookie)


def vm_id(owner: Optional[Owner]) -> Optional[int]:
    """The binding id an owner names, when it is a VM's."""
    if owner is None or owner.kind not in VM_KINDS:
        return None
    return owner.owner_id


def _drift(kind: DriftKind, desired: Optional[Entry], observed: Optional[Entry],
           meter_owners: Dict[int, Owner], vm_of: VmOf) -> Drift:
    entry = desired if desired is not None else observed
    assert entry is not None
    owner = owner_of(entry, meter_owners)
    binding_id = vm_id(owner)
    vm = vm_of(binding_id) if binding_id is not None else None
    return Drift(kind, owner, vm, desired, observed)


def _meter_owners(entries: Iterable[Entry]) -> Dict[int, Owner]:
    """Meter id to the owner of a flow that uses it."""
    found: Dict[int, Owner] = {}
    for entry in entries:
        if not isinstance(entry, FlowSpec):
            continue
        owner = decode_cookie(entry.cookie)
        for instruction in entry.instructions:
            if isinstance(instruction, Meter) and owner is not None:
                found.setdefault(instruction.meter_id, owner)
    return found


def _order(drift: Drift) -> tuple:
    entry = drift.entry
    owner = drift.owner
    where = (entry.table_id, -entry.priority) if isinstance(entry, FlowSpec) else \
        (-1, entry.meter_id)
    return (list(DriftKind).index(drift.kind),
            (int(owner.kind), owner.template_id, owner.owner_id) if owner else (99, 0, 0),
            where, repr(entry.key))

