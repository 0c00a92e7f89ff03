"""The switches dynprov manages and the links between them (pure).

Each bridge declares its role in its OpenFlow description (``dp_desc``,
OVSDB ``other-config:dp-desc``) as ``dynprov:<role>:<name>``; links are
discovered with LLDP. Forwarding follows one spanning tree of the discovered
graph, so every path and every flood is loop-free.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Set


class Role(enum.Enum):
    """What a bridge plays in the data center."""

    SERVER = "server"   # a server's virtual switch: VMs attach here
    ACCESS = "access"   # an access switch: servers attach here
    FABRIC = "fabric"   # the switch fabric between access switches
    EDGE = "edge"       # the edge device toward outside networks

    @property
    def hosts_vms(self) -> bool:
        """Whether hosts attach to this bridge's non-fabric ports and are provisioned.

        A server's VMs, and the edge's outside hosts: an outside host is provisioned
        from its MAC like a VM, and its template's ACL is the edge firewall.
        """
        return self in (Role.SERVER, Role.EDGE)


DESCRIPTION_PREFIX = "dynprov:"


class RoleError(ValueError):
    """A bridge description that names no valid role."""


def parse_description(dp_desc: str) -> tuple[Role, str] | None:
    """Role and name from ``dynprov:<role>:<name>``; None if not dynprov's.

    Raises RoleError when the description is dynprov's but the role is unknown.
    """
    text = dp_desc.strip().strip("\x00")
    if not text.startswith(DESCRIPTION_PREFIX):
        return None
    parts = text[len(DESCRIPTION_PREFIX):].split(":", 1)
    role_name = parts[0]
    name = parts[1] if len(parts) > 1 else ""
    try:
        return Role(role_name), name
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise RoleError(
            f"bridge description {text!r}: unknown role {role_name!r} "
            f"(expected one of: {valid})"
        ) from None


def describe(role: Role, name: str) -> str:
    """The ``dp_desc`` a bridge of this role and name should carry."""
    return f"{DESCRIPTION_PREFIX}{role.value}:{name}"


@dataclass(frozen=True, order=True)
class PortRef:
    """One port of one switch."""

    dpid: int
    port: int


@dataclass(frozen=True)
class SwitchInfo:
    """A managed switch."""

    dpid: int
    role: Role
    name: str


class Fabric:
    """Managed switches, discovered links and the spanning tree over them."""

    def __init__(self) -> None:
        self.switches: Dict[int, SwitchInfo] = {}
        self._peer: Dict[PortRef, PortRef] = {}
        self._tree: Optional[Dict[int, Dict[int, int]]] = None
        self._toward: Dict[int, Dict[int, int]] = {}

    # -- changes -----------------------------------------------------------
    def add_switch(self, info: SwitchInfo) -> None:
        """Add or replace a switch."""
        self.switches[info.dpid] = info
        self._invalidate()

    def remove_switch(self, dpid: int) -> None:
        """Forget a switch and its links."""
        self.switches.pop(dpid, None)
        for ref in [r for r in self._peer if r.dpid == dpid]:
            self.remove_link(ref)
        self._invalidate()

    def add_link(self, a: PortRef, b: PortRef) -> bool:
        """Record a bidirectional link; True when that changed anything."""
        if self._peer.get(a) == b and self._peer.get(b) == a:
            return False
        for end in (a, b):
            self.remove_link(end)
        self._peer[a] = b
        self._peer[b] = a
        self._invalidate()
        return True

    def remove_link(self, end: PortRef) -> bool:
        """Remove the link at this port, if any; True when one was removed."""
        other = self._peer.pop(end, None)
        if other is None:
            return False
        self._peer.pop(other, None)
        self._invalidate()
        return True

    def _invalidate(self) -> None:
        self._tree = None
        self._toward = {}

    # -- queries -----------------------------------------------------------
    def role(self, dpid: int) -> Role | None:
        """The switch's role, or None when it is not managed."""
        info = self.switches.get(dpid)
        return info.role if info else None

    def peer(self, end: PortRef) -> PortRef | None:
        """The far end of the link at this port."""
        return self._peer.get(end)

    def is_link_port(self, dpid: int, port: int) -> bool:
        """True when the port leads to another managed switch."""
        return PortRef(dpid, port) in self._peer

    def link_ports(self, dpid: int) -> Set[int]:
        """Ports of the switch that lead to other managed switches."""
        return {r.port for r in self._peer if r.dpid == dpid}

    def links(self) -> list[tuple[PortRef, PortRef]]:
        """Each link once, as (lower end, higher end)."""
        return sorted((a, b) for a, b in self._peer.items() if a < b)

    def tree_ports(self, dpid: int) -> Set[int]:
        """Ports of the switch that are on the spanning tree."""
        return set(self._spanning_tree().get(dpid, {}).values())

    def next_hop_port(self, src: int, dst: int) -> int | None:
        """Port on ``src`` toward ``dst`` along the tree; None if unreachable."""
        if src == dst:
            return None
        toward = self._toward.get(dst)
        if toward is None:
            toward = self._ports_toward(dst)
            self._toward[dst] = toward
        return toward.get(src)

    def flood_ports(self, dpid: int, members: Iterable[int]) -> Set[int]:
        """Tree ports of ``dpid`` that lead toward any of the member switches."""
        ports = set()
        for member in members:
            port = self.next_hop_port(dpid, member)
            if port is not None:
                ports.add(port)
        return ports

    # -- tree --------------------------------------------------------------
    def _spanning_tree(self) -> Dict[int, Dict[int, int]]:
        """Adjacency of a BFS spanning forest: dpid -> {neighbour: local port}."""
        if self._tree is not None:
            return self._tree
        adjacency: Dict[int, Dict[int, int]] = {d: {} for d in self.switches}
        for a, b in self.links():
            if a.dpid not in adjacency or b.dpid not in adjacency:
                continue
            if a.dpid == b.dpid or b.dpid in adjacency[a.dpid]:
                continue  # loops back, or a parallel link: keep the first
            adjacency[a.dpid][b.dpid] = a.port
            adjacency[b.dpid][a.dpid] = b.port
        tree: Dict[int, Dict[int, int]] = {d: {} for d in self.switches}
        seen: Set[int] = set()
        for root in sorted(adjacency):
            if root in seen:
                continue
            seen.add(root)
            queue = deque([root])
            while queue:
                node = queue.popleft()
                for neighbour in sorted(adjacency[node]):
                    if neighbour in seen:
                        continue
                    seen.add(neighbour)
                    tree[node][neighbour] = adjacency[node][neighbour]
                    tree[neighbour][node] = adjacency[neighbour][node]
                    queue.append(neighbour)
        self._tree = tree
        return tree

    def _ports_toward(self, dst: int) -> Dict[int, int]:
        """For every switch connected to ``dst`` on the tree, its port toward it."""
        tree = self._spanning_tree()
        toward: Dict[int, int] = {}
        if dst not in tree:
            return toward
        queue = deque([dst])
        seen = {dst}
        while queue:
            node = queue.popleft()
            for neighbour in tree[node]:
                if neighbour in seen:
                    continue
                seen.add(neighbour)
                toward[neighbour] = tree[neighbour][node]
                queue.append(neighbour)
        return toward
