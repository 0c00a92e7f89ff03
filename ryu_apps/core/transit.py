"""A VM's forwarding entries on the switches between its server and the root (pure).

A :class:`TransitPath` is the way down to one server from each of its ancestors
in the rooted tree that hosts no VMs; a forwarding VM has one entry per hop,
matched on its VLAN and MAC. Every other switch reaches the VM through its
VLAN's default toward its parent (:mod:`ryu_apps.core.vlan_compiler`), up to
the first ancestor.
"""

from __future__ import annotations

from typing import Optional, Set, Tuple

from ryu_apps.core.binding import Binding
from ryu_apps.core.fabric import Fabric
from ryu_apps.core.flowspec import FlowSpec, Output, flow, tagged
from ryu_apps.core.pipeline import Priority, Table


class TransitPath:
    """The way down to one server from its ancestors that host no VMs.

    ``hops`` holds, for each such ancestor, by dpid, (switch, its port toward the
    server, whether that port faces a server). One path is
    shared by every VM of the server; the engine keeps one object per server
    and replaces it only when the fabric changes that server's way.
    """

    __slots__ = ("hops", "_ports")

    def __init__(self, hops: Tuple[Tuple[int, int, bool], ...] = ()) -> None:
        self.hops = hops
        self._ports = {dpid: (port, to_server) for dpid, port, to_server in hops}

    def get(self, dpid: int) -> Optional[Tuple[int, bool]]:
        """(port toward the server, whether it faces a server) on ``dpid``, if on the way."""
        return self._ports.get(dpid)

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, TransitPath) and self.hops == other.hops)

    def __hash__(self) -> int:
        return hash(self.hops)

    def __repr__(self) -> str:
        return f"TransitPath({self.hops!r})"


NO_PATH = TransitPath()


def transit_path(fabric: Fabric, server_dpid: int) -> TransitPath:
    """The path to a server from its ancestors hosting no VMs (via the rooted tree)."""
    return TransitPath(fabric.transit_hops(server_dpid))


def transit_flows(binding: Binding, path: TransitPath,
                  cookie: int | None = None) -> Set[FlowSpec]:
    """A forwarding VM's flow on each switch of its path (none in other states);
    ``cookie``: its owner's, when the caller has it already."""
    if not binding.state.forwards or not path.hops:
        return set()
    if cookie is None:
        cookie = binding.owner.cookie
    match = to_vm_match(binding.vlan, binding.mac)
    return {transit_flow(dpid, port, to_server, match, cookie)
            for dpid, port, to_server in path.hops}


def to_vm_match(vlan: int, mac: str) -> tuple:
    """``make_match(vlan_vid=tagged(vlan), eth_dst=mac)``, spelt out (built per VM)."""
    return (("eth_dst", mac), ("vlan_vid", tagged(vlan)))


def transit_flow(dpid: int, port: int, to_server: bool, match, cookie: int) -> FlowSpec:
    """A VM's forwarding entry on one switch of its path."""
    if to_server:
        return flow(dpid, Table.FORWARD, Priority.BINDING, match, cookie,
                    metadata=port, goto=Table.TO_VM_PORT_ACL)
    return flow(dpid, Table.FORWARD, Priority.BINDING, match, cookie, actions=(Output(port),))
