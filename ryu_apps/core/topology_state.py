"""The fabric as the engine sees it: switches, links, tree, paths, VLAN members (pure).

One object holds what depends on the discovered graph only: the
:class:`~ryu_apps.core.fabric.Fabric`, its rooted spanning tree, each
server's :class:`~ryu_apps.core.transit.TransitPath` (shared by its
VMs), the per-VLAN flooding state and the :class:`LinkGuard`.
"""

from __future__ import annotations

from typing import Dict, Optional, Set

from ryu_apps.core.fabric import SHARED_FABRIC, Fabric, PortRef
from ryu_apps.core.rooted_tree import RootedTree
from ryu_apps.core.transit import TransitPath, transit_path
from ryu_apps.core.link_guard import LinkGuard
from ryu_apps.core.vlan_flooding import VlanFlooding


class Topology:
    """Fabric, tree, paths, VLAN flooding and link guard of one controller."""

    def __init__(self) -> None:
        self.fabric = Fabric()
        self.links = LinkGuard()
        self.tree: RootedTree = self.fabric.rooted_tree()
        self.flooding = VlanFlooding(self.tree)
        #: server -> its path through the fabric (shared by its VMs)
        self.paths: Dict[int, TransitPath] = {}
        #: switch (no VMs) -> its tree port toward the shared fabric, where it has one
        self.toward_shared: Dict[int, int] = {}
        #: server -> its access-switch port, valid for fabric version ``_access_version``
        self._access: Dict[int, Optional[PortRef]] = {}
        self._access_version = -1

    def path(self, server: int) -> TransitPath:
        """The server's path (computed once per fabric change)."""
        path = self.paths.get(server)
        if path is None:
            path = self.paths[server] = transit_path(self.fabric, server)
        return path

    def member(self, vlan: int, dpid: int, delta: int) -> Set[int]:
        """A forwarding VM joins (+1) or leaves (-1) ``vlan`` on ``dpid``; the switches
        whose flood ports change (the shared fabric follows: it is a member wherever
        the VLAN has one here)."""
        change = self.flooding.join if delta > 0 else self.flooding.leave
        dirty = change(vlan, dpid)
        joined = self.flooding.is_member(vlan, SHARED_FABRIC)
        local = self.flooding.switch_count(vlan) - joined
        if local and not joined:
            dirty |= self.flooding.join(vlan, SHARED_FABRIC)
        elif joined and not local:
            dirty |= self.flooding.leave(vlan, SHARED_FABRIC)
        return dirty

    def shared_way_changed(self) -> Set[int]:
        """Switches whose tree port toward the shared fabric changed since last asked
        (their VLANs' way out to other processes follows)."""
        toward: Dict[int, int] = {}
        if self.toward_shared or self.fabric.link_ports(SHARED_FABRIC):
            for dpid in self.fabric.switches:
                port = self.fabric.toward_shared_fabric(dpid)
                if port is not None and not self.hosts_vms(dpid):
                    toward[dpid] = port
        changed = {d for d in set(toward) | set(self.toward_shared)
                   if toward.get(d) != self.toward_shared.get(d)}
        self.toward_shared = toward
        return changed

    def hosts_vms(self, dpid: int) -> bool:
        """Whether the switch is a server's (or an edge's) virtual switch."""
        role = self.fabric.role(dpid)
        return role is not None and role.hosts_vms

    def access_switch_of(self, server: int) -> Optional[PortRef]:
        """The access-switch port a server hangs off (on the tree); looked up once per
        server and fabric version (a new VM asks several times)."""
        if self._access_version != self.fabric.version:
            self._access, self._access_version = {}, self.fabric.version
        try:
            return self._access[server]
        except KeyError:
            found = self._access[server] = self._find_access_switch(server)
            return found

    def _find_access_switch(self, server: int) -> Optional[PortRef]:
        for port in sorted(self.fabric.tree_ports(server)):
            peer = self.fabric.peer(PortRef(server, port))
            if peer is not None and not self.hosts_vms(peer.dpid):
                return peer
        return None

    def device_of(self, server: int) -> Optional[int]:
        """The network device (access switch) of a server."""
        access = self.access_switch_of(server)
        return access.dpid if access is not None else None

    def neighbours(self, dpid: int) -> Set[int]:
        """Switches at the other end of this switch's links."""
        found = set()
        for port in self.fabric.link_ports(dpid):
            peer = self.fabric.peer(PortRef(dpid, port))
            if peer is not None:
                found.add(peer.dpid)
        return found

    def name(self, dpid: int) -> str:
        """The switch's name, or its datapath id in hex."""
        info = self.fabric.switches.get(dpid)
        return info.name if info and info.name else f"{dpid:016x}"

    def end(self, end: PortRef) -> str:
        """A link end, for messages."""
        if end.dpid == SHARED_FABRIC:
            return "shared fabric"
        return f"{self.name(end.dpid)}:{end.port}"
