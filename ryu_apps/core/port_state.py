"""What the engine knows of VM ports besides their bindings (pure).

The servers' OVSDB rows (which MAC is attached where, with which iface-id),
ports whose link is down, VMs to announce once their link is up, addresses of
VMs handed over by another process, the servers migration notices named, the
ports each switch reported (and when each last came up), and the searches for
VMs whose port went away (:mod:`~ryu_apps.core.arrival_probe`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Set, Tuple

from ryu_apps.core.probe_search import Searches

PortKey = Tuple[int, int]


@dataclass
class PortState:
    """OVSDB attachments and link state of VM ports."""

    #: (dpid, port) -> MAC, from OVSDB.
    attachments: Dict[PortKey, str] = field(default_factory=dict)
    #: MAC -> its OVSDB ports.
    attached_at: Dict[str, Set[PortKey]] = field(default_factory=dict)
    #: (dpid, port) -> OVSDB iface-id.
    iface_ids: Dict[PortKey, str] = field(default_factory=dict)
    #: Ports whose link is down.
    down: Set[PortKey] = field(default_factory=set)
    #: VM ports to announce to the shared fabric when their link is up.
    unannounced: Set[PortKey] = field(default_factory=set)
    #: MAC -> (its port, announcement rounds elapsed) of a VM announced to the shared
    #: fabric lately, announced again a few times (see shared_fabric.REANNOUNCE_ROUNDS).
    announcing: Dict[str, Tuple[PortKey, int]] = field(default_factory=dict)
    #: MAC -> IPv4 of a VM handed over to this process.
    expected_ips: Dict[str, str] = field(default_factory=dict)
    #: MAC -> how that IPv4 was bound at the source process (``Binding.ip_source``).
    expected_ip_sources: Dict[str, str] = field(default_factory=dict)
    #: MAC -> bound global IPv6 addresses of a VM handed over to this process.
    expected_ipv6: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    #: MAC -> (IPv4, when its DHCP lease ends) of a VM bound from a DHCPACK (here or at
    #: the process that handed it over: lease ends are wall-clock seconds, ``now``).
    leases: Dict[str, Tuple[str, float]] = field(default_factory=dict)
    #: MAC -> {IPv6 address: when its DHCPv6 lease ends} of a VM bound from a Reply.
    leases6: Dict[str, Dict[str, float]] = field(default_factory=dict)
    #: MAC -> the server a migration notice named.
    notified: Dict[str, int] = field(default_factory=dict)
    #: MAC -> when a pre-provisioning made by a notice alone (no OVSDB) expires.
    notice_expiry: Dict[str, float] = field(default_factory=dict)
    #: dpid -> the ports the switch reported (port descriptions, ports added or up).
    present: Dict[int, Set[int]] = field(default_factory=dict)
    #: (dpid, port) -> when the port was last added or came up (not at connect).
    up_since: Dict[PortKey, float] = field(default_factory=dict)
    #: Searches for VMs whose port went away, and the probes' budget.
    searches: Searches = field(default_factory=Searches)

    def attach(self, dpid: int, port: int, mac: str, iface_id: Optional[str]) -> None:
        """OVSDB lists VM ``mac`` on this port."""
        self.detach(dpid, port)
        self.attachments[(dpid, port)] = mac
        self.attached_at.setdefault(mac, set()).add((dpid, port))
        if iface_id:
            self.iface_ids[(dpid, port)] = iface_id

    def detach(self, dpid: int, port: int) -> None:
        """OVSDB lists no VM on this port any more."""
        mac = self.attachments.pop((dpid, port), None)
        self.iface_ids.pop((dpid, port), None)
        places = self.attached_at.get(mac) if mac is not None else None
        if places is not None and mac is not None:
            places.discard((dpid, port))
            if not places:
                del self.attached_at[mac]

    def time_lease(self, mac: str, address: str, end: Optional[float]) -> None:
        """VM ``mac``'s DHCP lease of ``address`` ends at ``end`` (None: never)."""
        if end is None:
            self.leases.pop(mac, None)
        else:
            self.leases[mac] = (address, end)

    def time_leases6(self, mac: str, ends: Mapping[str, Optional[float]]) -> None:
        """Each DHCPv6 lease of VM ``mac`` named in ``ends`` ends at its time there
        (None: never, or no lease any more)."""
        held = self.leases6.setdefault(mac, {})
        for address, end in ends.items():
            if end is None:
                held.pop(address, None)
            else:
                held[address] = end
        if not held:
            del self.leases6[mac]

    def port_seen(self, dpid: int, port: int, now: Optional[float]) -> None:
        """The switch has this port (``now``: it was just added or came up)."""
        self.present.setdefault(dpid, set()).add(port)
        if now is not None:
            self.up_since[(dpid, port)] = now

    def port_gone(self, dpid: int, port: int, deleted: bool) -> None:
        """The port went down (``deleted``: it is gone from the switch)."""
        self.up_since.pop((dpid, port), None)
        if deleted:
            self.present.get(dpid, set()).discard(port)

    def port_of(self, dpid: int, mac: str) -> Optional[int]:
        """The port of server ``dpid`` where OVSDB lists VM ``mac``, if any."""
        return next((p for (d, p), m in self.attachments.items() if d == dpid and m == mac),
                    None)
