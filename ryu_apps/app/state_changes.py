"""What the engine's state did, told to observers as it happens (the live view's source).

The engine changes only in the app's event loop, and every change it makes
comes back in what it returns: a :class:`~ryu_apps.core.flow_plan.Plan` whose
flow changes, notes and warnings say the network's state moved (a binding
added, removed or moved, a quarantine, a link), whose device messages are a
migration starting or finishing, and whose ``confirms`` become VMs marked
active. :meth:`StateChanges.plan_sent` reads a plan for those and tells the
observers which kinds of change happened; the app adds what no plan carries
(a switch connected or disconnected, the engine rebuilt by a resync). A plan
that asks for nothing (an idle tick, a probe round that changed no link, a
packet-out) tells nobody, so an observer does no work while nothing changes.

Observers run in the event loop: they must only note the change and wake
their own green thread (the live view's feed reads the engine there).
"""

from __future__ import annotations

from typing import Callable, FrozenSet, Iterable, List

#: Flows were added or removed (a binding, its placement, a quarantine, the fabric).
FLOWS = "flows"
#: The engine decided something it logs (a refusal, a link removed, a move believed).
DECISION = "decision"
#: VMs were marked active once every switch applied their flows.
CONFIRMED = "confirmed"
#: A message between network devices: a migration started or finished.
MIGRATION = "migration"
#: A switch connected or disconnected.
SWITCH = "switch"
#: The engine was rebuilt from the switches (a resync).
RESYNC = "resync"

Observer = Callable[[FrozenSet[str]], None]


def kinds_of(plan) -> FrozenSet[str]:
    """The kinds of state change a plan the engine returned carries (empty: none)."""
    kinds = set()
    if any(plan.changes.values()):
        kinds.add(FLOWS)
    if plan.notes or plan.warnings:
        kinds.add(DECISION)
    if plan.messages:
        kinds.add(MIGRATION)
    return frozenset(kinds)


class StateChanges:
    """Observers of the engine's state, told each change from where it happens."""

    def __init__(self) -> None:
        self._observers: List[Observer] = []

    def subscribe(self, observer: Observer) -> None:
        """Call ``observer(kinds)`` after each change, in the event loop."""
        self._observers.append(observer)

    def unsubscribe(self, observer: Observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def publish(self, kinds: Iterable[str]) -> None:
        """Tell every observer that these kinds of change happened (none: nothing)."""
        kinds = frozenset(kinds)
        if kinds:
            for observer in list(self._observers):
                observer(kinds)

    def plan_sent(self, plan) -> None:
        """A plan the engine returned is being sent: publish what it changed."""
        self.publish(kinds_of(plan))

    def confirmed(self, macs: List[str]) -> None:
        """These VMs were just marked active."""
        if macs:
            self.publish((CONFIRMED,))
