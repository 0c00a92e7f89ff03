"""The emulated data center: one fabric switch, access switches, servers, links.

The shape of ``topologies/dynprov_topo.py``'s datacenter (without the edge):
every access switch hangs off fabric port ``a``; server ``s`` of an access
switch hangs off access port ``s`` with its port 1. VM ports of a server are
numbered from :data:`FIRST_VM_PORT` and are not listed in its port
description (a fresh VM uses a fresh port; listing thousands would only make
the controller probe them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

UPLINK_PORT = 1
FIRST_VM_PORT = 1000


@dataclass(frozen=True)
class SwitchPlan:
    """One emulated switch: its datapath id, role, name and listed ports."""

    dpid: int
    role: str
    name: str
    ports: Tuple[int, ...]

    @property
    def dp_desc(self) -> str:
        """The description dynprov reads the role from."""
        return f"dynprov:{self.role}:{self.name}"


@dataclass
class Topology:
    """Switches and the links between their ports."""

    switches: List[SwitchPlan] = field(default_factory=list)
    peers: Dict[Tuple[int, int], Tuple[int, int]] = field(default_factory=dict)
    access_of: Dict[int, int] = field(default_factory=dict)   # server dpid -> access dpid

    def link(self, a: Tuple[int, int], b: Tuple[int, int]) -> None:
        """Connect port a[1] of switch a[0] with port b[1] of switch b[0]."""
        self.peers[a] = b
        self.peers[b] = a

    @property
    def servers(self) -> List[SwitchPlan]:
        """The server switches, where VMs appear."""
        return [s for s in self.switches if s.role == "server"]

    @property
    def link_count(self) -> int:
        """Number of switch-to-switch links."""
        return len(self.peers) // 2


def datacenter(access: int, servers: int, dpid_base: int, prefix: str = "ol",
               free_ports: int = 0) -> Topology:
    """A fabric switch with ``access`` access switches of ``servers`` servers each.

    ``free_ports``: ports each access switch lists after its uplink with nothing
    behind them (the controller probes them; nobody answers).
    """
    topo = Topology()
    fabric = dpid_base + 0x100
    topo.switches.append(SwitchPlan(fabric, "fabric", f"{prefix}f1",
                                    tuple(range(1, access + 1))))
    for a in range(1, access + 1):
        access_dpid = dpid_base + 0x200 + a
        topo.switches.append(SwitchPlan(access_dpid, "access", f"{prefix}a{a}",
                                        tuple(range(1, servers + 2 + free_ports))))
        topo.link((fabric, a), (access_dpid, servers + 1))
        for s in range(1, servers + 1):
            server_dpid = dpid_base + 0x1000 + a * 0x100 + s
            topo.switches.append(SwitchPlan(server_dpid, "server", f"{prefix}s{a}{s}",
                                            (UPLINK_PORT,)))
            topo.link((access_dpid, s), (server_dpid, UPLINK_PORT))
            topo.access_of[server_dpid] = access_dpid
    return topo
