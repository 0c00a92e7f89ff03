"""Who a VM is, and when a MAC seen somewhere new may move its binding (pure).

A guest chooses its source MAC, so a frame proves nothing about who sent it.
The **identity policy** of a mobility domain says whom to believe:

- ``ovsdb``: the hypervisor. A port's VM is the one its OVSDB Interface row
  names (``external_ids:attached-mac``, and ``iface-id`` where present); only
  that MAC may send from that port, a MAC is provisioned only where OVSDB puts
  it, and moves happen only when OVSDB moves it. Ports no row names get no VM.
- ``packets``: nobody (labs without OVSDB). A MAC seen on a new port while its
  binding is active is a *conflict*, not a move. The move is accepted only
  when a migration notice named the new server, when the old port went down
  or away, or when the VM stayed silent at its old port to the controller's
  liveness probe (an ARP request for its IP) for ``hold`` seconds. Accepted
  moves are rate-limited: a MAC that moves ``flap_limit`` times within
  ``flap_window`` seconds is *flapping*: for ``flap_hold`` seconds its moves
  are refused on the VM's word (the liveness hold) and an alarm is raised; the
  old port going down or away, which a spoofer cannot cause, still moves it
  (the search that follows that loss would find it at the new port anyway).
- ``auto`` (the default): the hypervisor where it speaks, the ``packets``
  rules elsewhere: a port that OVSDB names a VM on accepts only that MAC, and
  a MAC that OVSDB places somewhere is provisioned only there; ports and MACs
  OVSDB does not know follow the ``packets`` rules.

:class:`MoveGuard` keeps the conflicts and the move history; the engine asks
it, sends the probes and installs the flows.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Tuple

#: Seconds the old location must stay silent to the liveness probe.
MOVE_HOLD_SECONDS = 1.0
#: Accepted moves of one MAC within FLAP_WINDOW seconds that make it flapping.
FLAP_LIMIT = 4
FLAP_WINDOW = 60.0
#: Seconds a flapping MAC's moves stay refused.
FLAP_HOLD = 120.0
#: Source MAC of the controller's liveness probes (locally administered, dynprov's).
PROBE_MAC = "0e:00:d9:00:00:02"


class IdentityPolicy(enum.Enum):
    """Whom to believe about which VM is on which port."""

    OVSDB = "ovsdb"
    PACKETS = "packets"
    AUTO = "auto"

    @classmethod
    def parse(cls, text: str, where: str) -> "IdentityPolicy":
        """The policy named ``text``; ValueError saying where and what is allowed."""
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(p.value for p in cls)
            raise ValueError(f"{where}: unknown identity policy {text!r} "
                             f"(expected one of: {allowed})") from None


@dataclass
class MoveCandidate:
    """A MAC seen on a port other than its binding's, not (yet) believed."""

    mac: str
    dpid: int
    port: int
    since: float
    #: When the old location counts as silent (None: no probe possible).
    deadline: Optional[float]


class MoveGuard:
    """Conflicts waiting for evidence, and the moves each MAC made recently."""

    def __init__(self, hold: float = MOVE_HOLD_SECONDS, flap_limit: int = FLAP_LIMIT,
                 flap_window: float = FLAP_WINDOW, flap_hold: float = FLAP_HOLD) -> None:
        self.hold, self.flap_limit = hold, flap_limit
        self.flap_window, self.flap_hold = flap_window, flap_hold
        self.candidates: Dict[str, MoveCandidate] = {}
        self._moves: Dict[str, Deque[float]] = {}
        self._flapping: Dict[str, float] = {}
        #: Counters: conflicts seen, moves refused by a live VM, flap alarms.
        self.counts = {"conflicts": 0, "refuted": 0, "accepted": 0, "flapping": 0}

    def flapping(self, mac: str, now: float) -> bool:
        """Whether the MAC's moves are on hold after it flapped."""
        until = self._flapping.get(mac)
        if until is None:
            return False
        if now >= until:
            del self._flapping[mac]
            return False
        return True

    def conflict(self, mac: str, dpid: int, port: int, now: float,
                 probe_possible: bool) -> Tuple[MoveCandidate, bool]:
        """The MAC was seen at (dpid, port): its candidate, and whether that is new."""
        known = self.candidates.get(mac)
        if known is not None and (known.dpid, known.port) == (dpid, port):
            return known, False
        self.counts["conflicts"] += 1
        candidate = MoveCandidate(mac, dpid, port, now,
                                  now + self.hold if probe_possible else None)
        self.candidates[mac] = candidate
        return candidate, True

    def refuted(self, mac: str) -> Optional[MoveCandidate]:
        """The VM answered at its old location: its candidate, dropped."""
        candidate = self.candidates.pop(mac, None)
        if candidate is not None:
            self.counts["refuted"] += 1
        return candidate

    def due(self, now: float) -> List[MoveCandidate]:
        """Candidates whose old location stayed silent for the hold time."""
        return [c for c in self.candidates.values()
                if c.deadline is not None and now >= c.deadline]

    def take(self, mac: str) -> Optional[MoveCandidate]:
        """Remove and return the MAC's candidate (accepted, or the MAC went away)."""
        return self.candidates.pop(mac, None)

    def moved(self, mac: str, now: float) -> bool:
        """Record an accepted move; True when this makes the MAC flapping (alarm)."""
        self.counts["accepted"] += 1
        history = self._moves.setdefault(mac, deque())
        history.append(now)
        while history and now - history[0] > self.flap_window:
            history.popleft()
        if len(history) >= self.flap_limit:
            self._flapping[mac] = now + self.flap_hold
            history.clear()
            self.counts["flapping"] += 1
            return True
        return False

    def drop_port(self, dpid: int, port: int) -> None:
        """The port went away: conflicts seen there are moot."""
        for mac in [m for m, c in self.candidates.items() if (c.dpid, c.port) == (dpid, port)]:
            del self.candidates[mac]

    def forget(self, mac: str) -> None:
        """The MAC's binding ended: no conflict about it remains."""
        self.candidates.pop(mac, None)
        history = self._moves.get(mac)
        if history is not None and not history:
            del self._moves[mac]


def arp_probe(target_ip: str, target_mac: str) -> bytes:
    """An ARP request for ``target_ip`` to ``target_mac`` from :data:`PROBE_MAC`, with
    sender address 0.0.0.0 (an RFC 5227 probe: the guest answers it without
    learning anything). The answer comes back to PROBE_MAC."""
    destination = bytes.fromhex(target_mac.replace(":", ""))
    source = bytes.fromhex(PROBE_MAC.replace(":", ""))
    target = bytes(int(part) for part in target_ip.split("."))
    arp = (b"\x00\x01\x08\x00\x06\x04\x00\x01" + source + bytes(4)
           + bytes(6) + target)
    return (destination + source + b"\x08\x06" + arp).ljust(60, b"\x00")
