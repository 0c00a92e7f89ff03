"""Refused MACs and forged probes: dropped at their port, logged once, counted, lifted later (pure).

A MAC is refused when it can never be a VM's (multicast, broadcast, all-zero),
when its template is not in its domain's library, when it shows up on a port
already bound to another VM (spoofing), when the identity policy says it is
not that port's VM, or when it is bound elsewhere and its move is not (yet)
believed. Each refused MAC gets a drop flow of its own at its port; after
QUARANTINE_MACS_PER_PORT refused MACs on one port the whole port stops
reaching the controller (its own VM keeps working, its flow has a higher
priority). A port that sends an unsigned, forged, stale or replayed LLDP probe
has its LLDP dropped. All are lifted after QUARANTINE_SECONDS.

A frame refused while its move awaits evidence (the MAC is bound elsewhere)
is **held**: the first one per MAC and port, for HELD_FRAME_SECONDS, at most
HELD_FRAMES_MAX in all, none longer than HELD_FRAME_BYTES (announcements are
small). When the MAC is released at that port (the move is believed), the
caller re-sends it, so a migrated VM's announcement that beat the evidence
(its OVSDB row, its old port's loss) is delivered, not lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set, Tuple

from ryu_apps.core.cookies import quarantine_owner
from ryu_apps.core.flowspec import ETH_TYPE_LLDP, FlowSpec, flow, make_match
from ryu_apps.core.pipeline import Priority, Table

#: Seconds a refused MAC's drop flow stays before the MAC is judged again.
QUARANTINE_SECONDS = 60.0
#: Refused MACs on one port before the whole port stops reaching the controller.
QUARANTINE_MACS_PER_PORT = 8
#: Seconds a refused frame is kept for re-sending if its move is believed.
HELD_FRAME_SECONDS = 2.0
#: Refused frames kept at once, and the longest kept (bounded memory whatever a guest sends).
HELD_FRAMES_MAX = 1024
HELD_FRAME_BYTES = 1518

PortKey = Tuple[int, int]
#: A refused MAC on one port.
RefusalKey = Tuple[str, int, int]


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
    #: Refused only because the MAC is bound elsewhere (a conflict, or a flapping
    #: MAC's move): moot once that binding ends.
    while_bound: bool = False
    #: The refused frame kept for re-sending if the MAC is believed here (see above).
    held: bytes = b""


class Quarantine:
    """Refused MACs per port, and ports that no longer reach the controller."""

    def __init__(self) -> None:
        self.refused: Dict[RefusalKey, Refusal] = {}
        #: Packets refused from blocked ports, counted but neither logged nor flowed.
        self.blocked_refusals: Dict[PortKey, int] = {}
        self._macs: Dict[PortKey, Dict[str, float]] = {}
        self._ports_of: Dict[str, Set[PortKey]] = {}
        self._blocked: Dict[PortKey, float] = {}
        self._lldp: Dict[PortKey, float] = {}
        #: Probes dropped per port since its LLDP quarantine began.
        self.lldp_refusals: Dict[PortKey, int] = {}
        #: Refusals holding a frame -> when it was held.
        self._held: Dict[RefusalKey, float] = {}

    def refuse(self, refusal: Refusal) -> Tuple[Refusal, bool, Optional[str]]:
        """Record a refusal: (the record, whether it is the MAC's first on its port, a note).

        The caller re-applies :meth:`flows` of the refusal's port when it is first.
        """
        key = (refusal.dpid, refusal.port)
        known = self.refused.get((refusal.mac, *key))
        if known is not None:
            known.count += 1
            return known, False, None
        if key in self._blocked:
            self.blocked_refusals[key] = self.blocked_refusals.get(key, 0) + 1
            return refusal, False, None
        self.refused[(refusal.mac, *key)] = refusal
        if refusal.held:
            if len(self._held) < HELD_FRAMES_MAX and len(refusal.held) <= HELD_FRAME_BYTES:
                self._held[(refusal.mac, *key)] = refusal.since
            else:
                refusal.held = b""
        self._ports_of.setdefault(refusal.mac, set()).add(key)
        macs = self._macs.setdefault(key, {})
        macs[refusal.mac] = refusal.since
        note = None
        if len(macs) >= QUARANTINE_MACS_PER_PORT:
            self._blocked[key] = refusal.since
            note = (f"port {refusal.port} of {refusal.dpid:016x}: {len(macs)} refused MACs, "
                    f"packets from unknown MACs on it are dropped for "
                    f"{QUARANTINE_SECONDS:.0f} s")
        return refusal, True, note

    def release_mac(self, mac: str, dpid: int, port: int) -> Optional[Refusal]:
        """The MAC was provisioned on this port after all: its refusal (the port's
        flows change; a frame it holds is the caller's to re-send), or None."""
        key = (dpid, port)
        refusal = self.refused.pop((mac, dpid, port), None)
        if refusal is None:
            return None
        self._held.pop((mac, dpid, port), None)
        self._unlist(mac, key)
        self._macs.get(key, {}).pop(mac, None)
        return refusal

    def release_unbound(self, mac: str) -> List[PortKey]:
        """The MAC's binding ended: its refusals made only because it was bound
        elsewhere are lifted; the ports whose flows change."""
        ports = sorted(key for key in self._ports_of.get(mac, ())
                       if self.refused[(mac, *key)].while_bound)
        for dpid, port in ports:
            self.release_mac(mac, dpid, port)
        return ports

    def _unlist(self, mac: str, key: PortKey) -> None:
        ports = self._ports_of.get(mac)
        if ports is not None:
            ports.discard(key)
            if not ports:
                del self._ports_of[mac]

    def touches(self, dpid: int, port: int) -> bool:
        """Whether the port has refused MACs, is blocked, or has its LLDP dropped."""
        key = (dpid, port)
        return bool(self._macs.get(key)) or key in self._blocked or key in self._lldp

    def refuse_probe(self, dpid: int, port: int, now: float) -> bool:
        """The port sent a probe that is not believed; True when its LLDP is newly dropped."""
        key = (dpid, port)
        self.lldp_refusals[key] = self.lldp_refusals.get(key, 0) + 1
        if key in self._lldp:
            return False
        self._lldp[key] = now
        return True

    def forget_port(self, dpid: int, port: int) -> bool:
        """The port went away; True when it had quarantine flows."""
        key = (dpid, port)
        macs = self._macs.pop(key, None)
        for mac in macs or ():
            self.refused.pop((mac, dpid, port), None)
            self._held.pop((mac, dpid, port), None)
            self._unlist(mac, key)
        self.lldp_refusals.pop(key, None)
        had_lldp = self._lldp.pop(key, None) is not None
        return self._blocked.pop(key, None) is not None or macs is not None or had_lldp

    def clear(self) -> List[PortKey]:
        """A new library: judge every MAC again; the ports whose flows change."""
        ports = sorted(set(self._macs) | set(self._blocked))
        self._macs.clear()
        self._ports_of.clear()
        self._blocked.clear()
        self.refused.clear()
        self._held.clear()
        return ports

    def expire(self, now: float) -> Tuple[List[PortKey], List[str]]:
        """Lift what is older than QUARANTINE_SECONDS: changed ports and notes."""
        changed, notes = set(), []
        for held, since in list(self._held.items()):
            if now - since >= HELD_FRAME_SECONDS:
                del self._held[held]
                self.refused[held].held = b""
        for key, macs in self._macs.items():
            expired = [m for m, since in macs.items() if now - since >= QUARANTINE_SECONDS]
            for mac in expired:
                del macs[mac]
                self.refused.pop((mac, *key), None)
                self._held.pop((mac, *key), None)
                self._unlist(mac, key)
                changed.add(key)
        for key, since in list(self._blocked.items()):
            if now - since >= QUARANTINE_SECONDS:
                del self._blocked[key]
                changed.add(key)
                notes.append(f"port {key[1]} of {key[0]:016x} may reach the controller again")
        for key, since in list(self._lldp.items()):
            if now - since >= QUARANTINE_SECONDS:
                del self._lldp[key]
                self.lldp_refusals.pop(key, None)
                changed.add(key)
        return sorted(changed), notes

    def blocked_ports(self) -> List[PortKey]:
        """Ports that stopped reaching the controller (too many refused MACs)."""
        return list(self._blocked)

    def ports(self) -> List[PortKey]:
        """Every port with quarantine flows."""
        return sorted(set(self._macs) | set(self._blocked) | set(self._lldp))

    def flows(self, dpid: int, port: int) -> Set[FlowSpec]:
        """The drop flows the port should carry now."""
        cookie = quarantine_owner(port).cookie
        flows = {flow(dpid, Table.CLASSIFY, Priority.QUARANTINE,
                      make_match(in_port=port, eth_src=mac), cookie)
                 for mac in self._macs.get((dpid, port), {})}
        if (dpid, port) in self._blocked:
            flows.add(flow(dpid, Table.CLASSIFY, Priority.PORT_QUARANTINE,
                           make_match(in_port=port), cookie))
        if (dpid, port) in self._lldp:
            flows.add(flow(dpid, Table.CLASSIFY, Priority.LLDP_QUARANTINE,
                           make_match(in_port=port, eth_type=ETH_TYPE_LLDP), cookie))
        return flows
