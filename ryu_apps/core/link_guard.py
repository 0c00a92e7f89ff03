"""Which verified probes may change the fabric, and when a link is gone (pure).

A signed probe proves that a frame made by this controller went from one port
to another. That is still not enough to rewire the fabric:

- a **self-link** (both ends on one switch) and a **link between two switches
  that host VMs** (server to server, server to edge) are never part of a data
  center built of servers, access switches and a fabric: refused;
- a probe never **evicts a verified link**: a port that has a link keeps it
  until the port goes down, or the link ages out (a probe does replace a
  shared uplink, which only beacons vouched for: a cable wins);
- **damping**: a port whose link changed ``max_changes`` times within
  ``window`` seconds is held down (its probes ignored) for ``hold_down``
  seconds, so a flapping cable cannot keep the controller recomputing;
- **ageing**: a link not proven again for ``max_missed_rounds`` probe rounds
  (the app sends one round every ``lldp_interval``) is removed, and a shared
  uplink whose beacons stopped for ``uplink_timeout`` seconds likewise. Links
  of a switch that is not connected do not age: its probes cannot reach us,
  but its dataplane still forwards.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Iterable, List, Optional, Set, Tuple

from ryu_apps.core.fabric import SHARED_FABRIC, Fabric, PortRef

#: Link changes at one port within WINDOW seconds that hold the port down.
MAX_CHANGES = 6
WINDOW = 30.0
HOLD_DOWN = 60.0
#: Probe rounds a link may miss before it is removed.
MAX_MISSED_ROUNDS = 4
#: Seconds without a beacon after which a shared uplink is removed.
UPLINK_TIMEOUT = 10.0

LinkKey = Tuple[PortRef, PortRef]


@dataclass(frozen=True)
class LinkRefusal:
    """A verified probe that did not change the fabric, and why."""

    a: PortRef
    b: PortRef
    reason: str


def link_key(a: PortRef, b: PortRef) -> LinkKey:
    """One key for both directions of a link."""
    return (a, b) if a <= b else (b, a)


class LinkGuard:
    """Refusals, damping and ageing of the links LLDP reports."""

    def __init__(self, max_changes: int = MAX_CHANGES, window: float = WINDOW,
                 hold_down: float = HOLD_DOWN, max_missed_rounds: int = MAX_MISSED_ROUNDS,
                 uplink_timeout: float = UPLINK_TIMEOUT) -> None:
        self.max_changes, self.window, self.hold_down = max_changes, window, hold_down
        self.max_missed_rounds, self.uplink_timeout = max_missed_rounds, uplink_timeout
        self.round = 0
        self._last_round: Dict[LinkKey, int] = {}
        self._beacon_at: Dict[PortRef, float] = {}
        self._changes: Dict[PortRef, Deque[float]] = {}
        self._held: Dict[PortRef, float] = {}
        self._connected_round: Dict[int, int] = {}
        #: Refusals so far, by reason; what was already reported (reported once).
        self.refused: Dict[str, int] = {}
        self._reported: Set[Tuple[LinkKey, str]] = set()

    # -- judging a probe ---------------------------------------------------
    def judge(self, fabric: Fabric, a: PortRef, b: PortRef, now: float) -> Optional[LinkRefusal]:
        """None when the link a-b may be recorded now, else why not."""
        if a.dpid == b.dpid:
            return self._refuse(a, b, "self-link", "self-link (both ends on one switch)")
        if _hosts_vms(fabric, a.dpid) and _hosts_vms(fabric, b.dpid):
            return self._refuse(a, b, "between VM hosts", "both switches host VMs (servers "
                                "and edges connect only to access or fabric switches)")
        for end, other in ((a, b), (b, a)):
            peer = fabric.peer(end)
            # a cable proven by a probe wins over the shared fabric (beacons)
            if peer is not None and peer != other and peer.dpid != SHARED_FABRIC:
                return self._refuse(a, b, "linked elsewhere",
                                    f"{_show(end)} is linked to {_show(peer)}, a "
                                    "verified link that stays until that port goes "
                                    "down or stops answering probes")
        for end in (a, b):
            if self._held_down(end, now):
                return self._refuse(a, b, "held down",
                                    f"{_show(end)} is held down after "
                                    f"{self.max_changes} link changes in {self.window:g} s")
        return None

    def first_report(self, refusal: LinkRefusal) -> bool:
        """True the first time this refusal (link and reason) is reported."""
        key = (link_key(refusal.a, refusal.b), refusal.reason)
        if key in self._reported:
            return False
        if len(self._reported) > 4096:
            self._reported.clear()
        self._reported.add(key)
        return True

    def _refuse(self, a: PortRef, b: PortRef, label: str, reason: str) -> LinkRefusal:
        self.refused[label] = self.refused.get(label, 0) + 1
        return LinkRefusal(a, b, reason)

    def held_down(self, end: PortRef, now: float) -> bool:
        """Whether ``end`` is held down (a flapping port: its probes are ignored)."""
        return self._held_down(end, now)

    def _held_down(self, end: PortRef, now: float) -> bool:
        until = self._held.get(end)
        if until is None:
            return False
        if now >= until:
            del self._held[end]
            self._changes.pop(end, None)
            return False
        return True

    # -- recording ------------------------------------------------------------
    def seen(self, a: PortRef, b: PortRef) -> None:
        """A probe proved the link a-b in this round."""
        self._last_round[link_key(a, b)] = self.round

    def beacon(self, end: PortRef, now: float) -> None:
        """A beacon of another process reached the shared uplink ``end``."""
        self._beacon_at[end] = now

    def changed(self, ends: Iterable[PortRef], now: float) -> List[PortRef]:
        """The links at these ports changed; the ports that this puts on hold."""
        held = []
        for end in ends:
            if end.dpid == SHARED_FABRIC:
                continue
            history = self._changes.setdefault(end, deque())
            history.append(now)
            while history and now - history[0] > self.window:
                history.popleft()
            if len(history) >= self.max_changes and end not in self._held:
                self._held[end] = now + self.hold_down
                held.append(end)
        return held

    def forget(self, end: PortRef) -> None:
        """The link at ``end`` was removed (port down, switch gone)."""
        for key in [k for k in self._last_round if end in k]:
            del self._last_round[key]
        self._beacon_at.pop(end, None)

    def switch_connected(self, dpid: int) -> None:
        """A switch (re)connected: its links get a full ageing window again."""
        self._connected_round[dpid] = self.round

    def switch_disconnected(self, dpid: int) -> None:
        """A switch's control connection dropped: its links do not age meanwhile."""
        self._connected_round.pop(dpid, None)

    # -- ageing ---------------------------------------------------------------
    def next_round(self, fabric: Fabric, now: float) -> List[PortRef]:
        """A new probe round starts: ends of the links (and shared uplinks) to remove."""
        self.round += 1
        expired: List[PortRef] = []
        oldest = self.round - self.max_missed_rounds
        for a, b in fabric.links():
            if SHARED_FABRIC in (a.dpid, b.dpid):
                end = a if b.dpid == SHARED_FABRIC else b
                if now - self._beacon_at.setdefault(end, now) > self.uplink_timeout:
                    expired.append(end)
                continue
            if not self._ages(a.dpid, oldest) or not self._ages(b.dpid, oldest):
                continue
            if self._last_round.setdefault(link_key(a, b), self.round) < oldest:
                expired.append(a)
        return expired

    def _ages(self, dpid: int, oldest: int) -> bool:
        connected = self._connected_round.get(dpid)
        return connected is not None and connected < oldest


def _hosts_vms(fabric: Fabric, dpid: int) -> bool:
    role = fabric.role(dpid)
    return role is not None and role.hosts_vms


def _show(end: PortRef) -> str:
    if end.dpid == SHARED_FABRIC:
        return "the shared fabric"
    return f"{end.dpid:016x}:{end.port}"
