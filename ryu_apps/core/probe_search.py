"""Searches for VMs whose port went away, and the bounds on probing for them (pure).

A search names a VM (its MAC and bound IPv4 address) and the ports where it
may have resumed; :mod:`~ryu_apps.core.arrival_probe` decides which ports, and
sends the probes. This module only keeps the records and answers *when*: each
candidate port gets at most ``len(PROBE_DELAYS)`` probes, the gaps between them
growing (back-off); a search ends after ``SEARCH_SECONDS``; and all the
searches together send at most ``PROBE_RATE`` probes a second (burst
``PROBE_BURST``): a probe over budget waits for the next tick, so a burst of
ports going away never turns into a probe storm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

PortKey = Tuple[int, int]

#: Seconds after the first probe of a port at which the next ones go (back-off).
PROBE_DELAYS = (0.0, 1.0, 3.0)
#: Seconds a search lasts (after its start, or a port joining it).
SEARCH_SECONDS = 10.0
#: A port that came up at most this many seconds before the VM's old port went away
#: is a candidate (a hypervisor creates the destination port before it removes the
#: source's).
RECENT_PORT_SECONDS = 10.0
#: Probes a second over every search, and the burst.
PROBE_RATE = 20.0
PROBE_BURST = 20.0


@dataclass
class Candidate:
    """A port probed for the VM: probes sent, when the next is due."""

    sent: int = 0
    first: float = 0.0
    #: Probed while its switch still reported its link down (a busy switch reports a
    #: new port's link-up late): its probes start again, once, when the link-up comes.
    blind: bool = False

    def due(self, now: float) -> bool:
        """Whether another probe of this port is due at ``now``."""
        return self.sent < len(PROBE_DELAYS) and now >= self.first + PROBE_DELAYS[self.sent]


@dataclass
class Search:
    """A VM looked for: its MAC and IPv4 address, its mobility domain, its candidates,
    and the global IPv6 addresses bound to it (they follow it where it is found)."""

    mac: str
    ip: str
    domain: str
    deadline: float
    candidates: Dict[PortKey, Candidate] = field(default_factory=dict)
    ipv6: Tuple[str, ...] = ()

    def add(self, key: PortKey, now: float, blind: bool = False) -> bool:
        """Probe ``key`` from ``now`` (``blind``: its link is reported down); False if it
        was a candidate already and is not re-armed. A blind candidate whose link comes
        up is re-armed once: its probes start again from ``now``."""
        known = self.candidates.get(key)
        if known is not None and not (known.blind and not blind):
            return False
        self.candidates[key] = Candidate(first=now, blind=blind)
        self.deadline = max(self.deadline, now + SEARCH_SECONDS)
        return True


@dataclass
class Budget:
    """A token bucket: probes a second and burst."""

    rate: float = PROBE_RATE
    burst: float = PROBE_BURST
    tokens: float = PROBE_BURST
    last: Optional[float] = None

    def take(self, now: float) -> bool:
        """Spend one token if there is one at ``now``."""
        if self.last is not None and now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now if self.last is None else max(self.last, now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class Searches:
    """Every search in force, by MAC, and the budget they share."""

    by_mac: Dict[str, Search] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    #: Probes sent, and probes that waited for the budget (counters).
    counts: Dict[str, int] = field(default_factory=lambda: {"sent": 0, "deferred": 0})

    def due(self, now: float) -> List[Tuple[Search, PortKey]]:
        """(search, port) pairs whose next probe is due and within the budget; each
        is counted as sent."""
        found = []
        for mac in sorted(self.by_mac):
            search = self.by_mac[mac]
            for key in sorted(search.candidates):
                candidate = search.candidates[key]
                if not candidate.due(now):
                    continue
                if not self.budget.take(now):
                    self.counts["deferred"] += 1
                    continue
                candidate.sent += 1
                self.counts["sent"] += 1
                found.append((search, key))
        return found

    def expire(self, now: float) -> List[Search]:
        """Searches past their deadline, removed."""
        over = [s for s in self.by_mac.values() if now >= s.deadline]
        for search in over:
            del self.by_mac[search.mac]
        return over

    def drop_port(self, key: PortKey) -> None:
        """The port went away or was taken: no search probes it any more."""
        for search in self.by_mac.values():
            search.candidates.pop(key, None)
