"""Refused MACs: dropped at their port, logged once, counted, lifted later (pure).

A MAC is refused when it can never be a VM's (multicast, broadcast, all-zero),
when its template is not in its domain's library, or when it shows up on a
port already bound to another VM (spoofing). Each refused MAC gets a drop flow
of its own at its port; after QUARANTINE_MACS_PER_PORT refused MACs on one
port the whole port stops reaching the controller (its own VM keeps working,
its flow has a higher priority). Both are lifted after QUARANTINE_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple

from ryu_apps.core.cookies import quarantine_owner
from ryu_apps.core.flowspec import FlowSpec, flow, make_match
from ryu_apps.core.pipeline import Priority, Table

#: Seconds a refused MAC's drop flow stays before the MAC is judged again.
QUARANTINE_SECONDS = 60.0
#: Refused MACs on one port before the whole port stops reaching the controller.
QUARANTINE_MACS_PER_PORT = 8

PortKey = Tuple[int, int]


@dataclass
class Refusal:
    """Why a MAC seen on a VM port was not provisioned."""

    mac: str
    template_id: int | None
    reason: str
    dpid: int = 0
    port: int = 0
    count: int = 1
    since: float = 0.0


class Quarantine:
    """Refused MACs per port, and ports that no longer reach the controller."""

    def __init__(self) -> None:
        self.refused: Dict[str, Refusal] = {}
        #: Packets refused from blocked ports, counted but neither logged nor flowed.
        self.blocked_refusals: Dict[PortKey, int] = {}
        self._macs: Dict[PortKey, Dict[str, float]] = {}
        self._blocked: Dict[PortKey, float] = {}

    def refuse(self, refusal: Refusal) -> Tuple[Refusal, bool, Optional[str]]:
        """Record a refusal: (the record, whether it is the MAC's first, a note).

        The caller re-applies :meth:`flows` of the refusal's port when it is first.
        """
        key = (refusal.dpid, refusal.port)
        known = self.refused.get(refusal.mac)
        if known is not None:
            known.count += 1
            return known, False, None
        if key in self._blocked:
            self.blocked_refusals[key] = self.blocked_refusals.get(key, 0) + 1
            return refusal, False, None
        self.refused[refusal.mac] = refusal
        macs = self._macs.setdefault(key, {})
        macs[refusal.mac] = refusal.since
        note = None
        if len(macs) >= QUARANTINE_MACS_PER_PORT:
            self._blocked[key] = refusal.since
            note = (f"port {refusal.port} of {refusal.dpid:016x}: {len(macs)} refused MACs, "
                    f"packets from unknown MACs on it are dropped for "
                    f"{QUARANTINE_SECONDS:.0f} s")
        return refusal, True, note

    def release_mac(self, mac: str) -> List[PortKey]:
        """The MAC was provisioned after all: the ports whose flows change."""
        self.refused.pop(mac, None)
        ports = [key for key, macs in self._macs.items() if mac in macs]
        for key in ports:
            del self._macs[key][mac]
        return ports

    def forget_port(self, dpid: int, port: int) -> bool:
        """The port went away; True when it had quarantine flows."""
        had = self._macs.pop((dpid, port), None) is not None
        return self._blocked.pop((dpid, port), None) is not None or had

    def clear(self) -> List[PortKey]:
        """A new library: judge every MAC again; the ports whose flows change."""
        ports = sorted(set(self._macs) | set(self._blocked))
        self._macs.clear()
        self._blocked.clear()
        self.refused.clear()
        return ports

    def expire(self, now: float) -> Tuple[List[PortKey], List[str]]:
        """Lift what is older than QUARANTINE_SECONDS: changed ports and notes."""
        changed, notes = set(), []
        for key, macs in self._macs.items():
            expired = [m for m, since in macs.items() if now - since >= QUARANTINE_SECONDS]
            for mac in expired:
                del macs[mac]
                self.refused.pop(mac, None)
                changed.add(key)
        for key, since in list(self._blocked.items()):
            if now - since >= QUARANTINE_SECONDS:
                del self._blocked[key]
                changed.add(key)
                notes.append(f"port {key[1]} of {key[0]:016x} may reach the controller again")
        return sorted(changed), notes

    def flows(self, dpid: int, port: int) -> Set[FlowSpec]:
        """The drop flows the port should carry now."""
        cookie = quarantine_owner(port).cookie
        flows = {flow(dpid, Table.CLASSIFY, Priority.QUARANTINE,
                      make_match(in_port=port, eth_src=mac), cookie)
                 for mac in self._macs.get((dpid, port), {})}
        if (dpid, port) in self._blocked:
            flows.add(flow(dpid, Table.CLASSIFY, Priority.PORT_QUARANTINE,
                           make_match(in_port=port), cookie))
        return flows
