"""The switches dynprov manages and the links between them (pure).

Each bridge declares its role in its OpenFlow description (``dp_desc``,
OVSDB ``other-config:dp-desc``) as ``dynprov:<role>:<name>``; links are
discovered with LLDP. Forwarding follows one spanning tree of the discovered
graph, so every path and every flood is loop-free.

A port that reaches switches managed by *other* controller processes through
a plain learning L2 fabric (the shared fabric between pods) is a *shared
uplink*: the tree treats the shared fabric as one more node,
:data:`SHARED_FABRIC`, that no flow is ever compiled for, so traffic for VMs
this process does not know leaves by the one uplink on the tree.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Set, Tuple

from ryu_apps.core.rooted_tree import RootedTree


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

#: The node standing for the shared L2 fabric beyond this process's switches.
#: Above every 64-bit datapath id, so it never roots a tree and matches no switch.
SHARED_FABRIC = 1 << 64


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
        self._ports_of: Dict[int, Set[int]] = {}   # dpid -> its link ports
        self._tree: Optional[Dict[int, Dict[int, int]]] = None
        self._toward: Dict[int, Dict[int, int]] = {}
        self._rooted: Optional[RootedTree] = None
        self._server_facing: Dict[int, FrozenSet[int]] = {}
        #: Bumped on every change of switches or links (caches compare it).
        self.version = 0

    # -- changes -----------------------------------------------------------
    def add_switch(self, info: SwitchInfo) -> bool:
        """Add or replace a switch; True when that changed anything."""
        if self.switches.get(info.dpid) == info:
            return False
        self.switches[info.dpid] = info
        self._invalidate()
        return True

    def remove_switch(self, dpid: int) -> None:
        """Forget a switch and its links."""
        self.switches.pop(dpid, None)
        for port in sorted(self._ports_of.get(dpid, ())):
            self.remove_link(PortRef(dpid, port))
        self._invalidate()

    def add_link(self, a: PortRef, b: PortRef) -> bool:
        """Record a bidirectional link; True when that changed anything."""
        if self._peer.get(a) == b and self._peer.get(b) == a:
            return False
        for end in (a, b):
            self.remove_link(end)
        self._peer[a] = b
        self._peer[b] = a
        self._ports_of.setdefault(a.dpid, set()).add(a.port)
        self._ports_of.setdefault(b.dpid, set()).add(b.port)
        self._invalidate()
        return True

    def add_shared_uplink(self, end: PortRef) -> bool:
        """Record that ``end`` reaches the shared fabric; True when that changed anything."""
        return self.add_link(end, PortRef(SHARED_FABRIC, _shared_port(end)))

    def remove_link(self, end: PortRef) -> bool:
        """Remove the link at this port, if any; True when one was removed."""
        other = self._peer.pop(end, None)
        if other is None:
            return False
        self._peer.pop(other, None)
        for ref in (end, other):
            ports = self._ports_of.get(ref.dpid)
            if ports is not None:
                ports.discard(ref.port)
                if not ports:
                    del self._ports_of[ref.dpid]
        self._invalidate()
        return True

    def _invalidate(self) -> None:
        self._tree = None
        self._toward = {}
        self._rooted = None
        self._server_facing = {}
        self.version += 1

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

    def is_shared_uplink(self, end: PortRef) -> bool:
        """True when the port reaches the shared fabric (not a managed switch)."""
        peer = self._peer.get(end)
        return peer is not None and peer.dpid == SHARED_FABRIC

    def shared_uplinks(self, dpid: int) -> Set[int]:
        """Ports of the switch that reach the shared fabric."""
        return {port for port in self._ports_of.get(dpid, ())
                if self.is_shared_uplink(PortRef(dpid, port))}

    def toward_shared_fabric(self, dpid: int) -> int | None:
        """The switch's tree port toward the shared fabric; None without a way there."""
        return self.next_hop_port(dpid, SHARED_FABRIC)

    def shared_uplink_from(self, dpid: int) -> PortRef | None:
        """The uplink on the tree by which ``dpid``'s frames reach the shared fabric."""
        seen = set()
        while dpid not in seen:
            seen.add(dpid)
            port = self.toward_shared_fabric(dpid)
            if port is None:
                return None
            end = PortRef(dpid, port)
            peer = self._peer[end]
            if peer.dpid == SHARED_FABRIC:
                return end
            dpid = peer.dpid
        return None

    def link_ports(self, dpid: int) -> Set[int]:
        """Ports of the switch that lead to other managed switches."""
        return set(self._ports_of.get(dpid, ()))

    def server_facing_ports(self, dpid: int) -> FrozenSet[int]:
        """Ports of an access switch that lead to a switch hosting VMs (cached)."""
        cached = self._server_facing.get(dpid)
        if cached is None:
            cached = frozenset()
            if self.role(dpid) is Role.ACCESS:
                cached = frozenset(
                    port for port in self._ports_of.get(dpid, ())
                    if _hosts_vms(self.role(self._peer[PortRef(dpid, port)].dpid)))
            self._server_facing[dpid] = cached
        return cached

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

    def transit_hops(self, server: int) -> Tuple[Tuple[int, int, bool], ...]:
        """(switch, its port toward ``server``, whether that port faces a server) for
        each switch hosting no VMs between ``server`` and the root of its tree, by dpid.

        Only those ancestors carry per-VM entries for the server's VMs: every other
        switch of the component reaches them through its VLAN's default toward its
        parent (:func:`~ryu_apps.core.vlan_compiler.vlan_switch_flows`), up to the
        first ancestor. The shared fabric, when it is an ancestor, gets none.
        """
        tree = self.rooted_tree()
        hops = []
        node = server
        while node in tree.parent:
            up = tree.parent[node][0]
            port = tree.down[node]
            if up != SHARED_FABRIC and not _hosts_vms(self.role(up)):
                hops.append((up, port, port in self.server_facing_ports(up)))
            node = up
        return tuple(sorted(hops))

    def default_port(self, dpid: int) -> int | None:
        """Where ``dpid`` sends a VLAN's frames for VMs it has no entry for: toward its
        parent, or on the root toward the shared fabric; None on a root without one."""
        tree = self.rooted_tree()
        parent = tree.parent.get(dpid)
        if parent is not None:
            return parent[1]
        return self.toward_shared_fabric(dpid)

    def rooted_tree(self) -> "RootedTree":
        """The spanning forest (cached): each component rooted at the switch
        :meth:`_root_rank` puts first and walked breadth-first from it."""
        if self._rooted is None:
            adjacency = self._adjacency()
            self._rooted = RootedTree.of(adjacency, self._root_rank(adjacency))
        return self._rooted

    def _root_rank(self, adjacency: Dict[int, Dict[int, int]]
                   ) -> Callable[[int], Tuple[int, int, int, int]]:
        """The order in which switches are chosen to root their component.

        The root holds a per-VM entry for every VM of its component, and frames
        for VMs no switch here knows end there, so it is: a switch with an
        uplink to the shared fabric (its default leads there, and every other
        switch's default toward its parent leads to it); else a fabric switch,
        then an access switch (never one hosting VMs when another is there);
        one next to an edge device first (where outside traffic enters); then
        the lowest dpid. The shared fabric itself never roots.
        """
        def rank(dpid: int) -> Tuple[int, int, int, int]:
            if dpid == SHARED_FABRIC:
                return (2, 9, 1, dpid)
            neighbours = adjacency.get(dpid, {})
            role = self.role(dpid)
            return (0 if SHARED_FABRIC in neighbours else 1,
                    _ROOT_ROLES[role] if role is not None else 9,
                    0 if any(self.role(n) is Role.EDGE for n in neighbours) else 1,
                    dpid)
        return rank

    # -- tree --------------------------------------------------------------
    def _adjacency(self) -> Dict[int, Dict[int, int]]:
        """Every switch's neighbours over the links: dpid -> {neighbour: local port}."""
        adjacency: Dict[int, Dict[int, int]] = {d: {} for d in self.switches}
        if SHARED_FABRIC in self._ports_of:
            adjacency[SHARED_FABRIC] = {}
        # each link once, lower end first, in order (plain int tuples sort fast)
        links = sorted((a.dpid, a.port, b.dpid, b.port) for a, b in self._peer.items()
                       if (a.dpid, a.port) < (b.dpid, b.port))
        for a_dpid, a_port, b_dpid, b_port in links:
            if a_dpid not in adjacency or b_dpid not in adjacency:
                continue
            if a_dpid == b_dpid or b_dpid in adjacency[a_dpid]:
                continue  # loops back, or a parallel link: keep the first
            adjacency[a_dpid][b_dpid] = a_port
            adjacency[b_dpid][a_dpid] = b_port
        return adjacency

    def _spanning_tree(self) -> Dict[int, Dict[int, int]]:
        """Adjacency of the spanning forest: dpid -> {neighbour: local port}, read off
        the rooted tree."""
        if self._tree is not None:
            return self._tree
        rooted = self.rooted_tree()
        tree: Dict[int, Dict[int, int]] = {d: {} for d in rooted.root}
        for child, (up, port) in rooted.parent.items():
            tree[child][up] = port
            tree[up][child] = rooted.down[child]
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


def _shared_port(end: PortRef) -> int:
    """The shared fabric's side of an uplink: one distinct number per uplink."""
    return (end.dpid << 32) | end.port


#: Roles in the order they are preferred as a component's root (see Fabric._root_rank).
_ROOT_ROLES = {Role.FABRIC: 0, Role.ACCESS: 1, Role.EDGE: 2, Role.SERVER: 3}


def _hosts_vms(role: Optional[Role]) -> bool:
    return role is not None and role.hosts_vms
