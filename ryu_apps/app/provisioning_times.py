"""When recently provisioned VMs were detected and when their flows were confirmed.

Times are ``time.monotonic_ns()`` values: the system-wide monotonic clock, so a
benchmark on the same machine can compare them with its own send times.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, List

#: How many recent VMs are remembered (a benchmark's whole run fits).
DEFAULT_CAPACITY = 10_000


class ProvisioningTimes:
    """A bounded record, oldest first out, of detection and confirmation times per MAC."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._times: "OrderedDict[str, Dict[str, int]]" = OrderedDict()

    def detected(self, mac: str, when_ns: int) -> None:
        """The controller received the frame that provisioned ``mac``."""
        self._times.pop(mac, None)
        self._times[mac] = {"detected_ns": when_ns}
        while len(self._times) > self.capacity:
            self._times.popitem(last=False)

    def confirmed(self, macs: Iterable[str], when_ns: int) -> None:
        """Every switch confirmed (barrier reply) the flows of ``macs``."""
        for mac in macs:
            entry = self._times.get(mac)
            if entry is not None and "confirmed_ns" not in entry:
                entry["confirmed_ns"] = when_ns

    def views(self) -> List[dict]:
        """Oldest first: mac, detected_ns, confirmed_ns (None if not yet) and the gap in ms."""
        views = []
        for mac, entry in self._times.items():
            confirmed = entry.get("confirmed_ns")
            views.append({
                "mac": mac,
                "detected_ns": entry["detected_ns"],
                "confirmed_ns": confirmed,
                "controller_ms": (None if confirmed is None
                                  else (confirmed - entry["detected_ns"]) / 1e6),
            })
        return views
