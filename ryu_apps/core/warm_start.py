"""The warm-start grace: after a (re)start, switches and links come back one by one (pure).

For ``grace`` seconds after the engine was (re)built, what looks stale on a
switch may still be needed, so reconciliation only adds; afterwards it
reconciles in full. Where a process waits for servers to come back before it
drops what they held (the store's rows), it waits at most ``deadline``
seconds: a server still missing then counts as gone.

One policy for the app and the store; every question takes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Tuple

#: Seconds after which servers still missing count as gone.
DEFAULT_DEADLINE = 60.0


@dataclass
class WarmStart:
    """When a warm start began and what it allows."""

    grace: float
    deadline: float = DEFAULT_DEADLINE
    started: float = float("-inf")

    def begin(self, now: float) -> None:
        """The engine was (re)built at ``now``: a new grace period starts."""
        self.started = now

    def adds_only(self, now: float) -> bool:
        """Whether reconciliation may only add (the grace is not over)."""
        return now < self.started + self.grace

    def ends_at(self) -> float:
        """When the grace is over."""
        return self.started + self.grace

    def ready(self, now: float, missing: AbstractSet[str]) -> Tuple[bool, bool]:
        """Whether a full reconciliation may run now, with ``missing`` servers not back
        yet; and whether it runs without them (the deadline passed)."""
        if self.adds_only(now):
            return False, False
        if missing and now <= self.started + self.deadline:
            return False, False
        return True, bool(missing)
