"""Both-ways delivery while a VM migrates, so its switchover needs no controller (pure).

While a VM is pre-provisioned at its destination (its hypervisor created the
port, or a notice announced the move), frames *to* the VM are delivered to
both its current port and its new one, along the tree path between the two
servers: every switch on that path forwards them toward both ends. The VM
runs in one place at a time (the destination interface is down until the
guest resumes there, the source one is gone after), so the guest never sees
a frame twice, and the instant it resumes at its new port the frames already
reach it: the switchover needs no packet-in, no flow-mod and no barrier. The
VM's first frame there still activates the destination, which replaces these
entries by the ordinary path (adds before deletes, make-before-break).

Each switch on the path gets one FORWARD entry, above the VM's ordinary one
(``MIGRATION_PRIORITY``), under the cookie of
:func:`~ryu_apps.core.cookies.migration_owner` (the destination binding's id).
OVS never sends a frame back out of its ingress port, so a switch that
receives a frame from one end only forwards it toward the other: no loop, no
duplicate on a link. Switches where both ends lie the same way keep their
ordinary entry.

On activation these entries give way, in the same plan, to the ordinary path
toward the new port and to a *redirect* on the old server (frames for the
VM go up toward its new place instead of to its old port) and on each switch
between the old server and the root that the new side's entries do not cover
(per-VM entries live only on a server's ancestors; the handed-out source keeps
what its port needs but none of its FORWARD entries, one owner per switch
entry), which lasts until the source side is released: no switch ever falls
back to the old port.

Across controller processes the other end is the shared fabric: once another
process has taken the VM over, its frames go both to its old port here and
out of the uplink, until that port goes away (the learning fabric sends them
on to wherever the VM last spoke from).
"""

from __future__ import annotations

from typing import List, Optional, Set

from ryu_apps.core.binding import Binding
from ryu_apps.core.fabric import SHARED_FABRIC, Fabric
from ryu_apps.core.switch_flows import BEACON_ADDRESS, PACKET_IN_BYTES, server_facing_ports
from ryu_apps.core.flowspec import (
    OFPP_CONTROLLER,
    FlowSpec,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    flow,
    make_match,
    tagged,
)
from ryu_apps.core.pipeline import Priority, Table, to_vm_metadata

#: Above the VM's ordinary FORWARD entry (Priority.BINDING), below nothing else there.
MIGRATION_PRIORITY = Priority.BINDING + 10


def both_ways_flows(fabric: Fabric, source: Binding, destination: Binding,
                    cookie: int) -> Set[FlowSpec]:
    """FORWARD entries that deliver frames for the VM at ``source`` and ``destination``.

    ``destination`` is the pre-provisioned binding; ``source`` is where the VM
    runs now. Empty when both are on one server, or a switch between them is
    unreachable.
    """
    if source.dpid == destination.dpid or source.vlan != destination.vlan:
        return set()
    return _both_ways(fabric, destination, [source, destination], cookie)


def both_ways_to_shared_fabric(fabric: Fabric, source: Binding, cookie: int) -> Set[FlowSpec]:
    """FORWARD entries that deliver frames for a VM another process took over both at
    its port here and toward the shared fabric (where that process's switches are).

    Empty when no way leads to the shared fabric.
    """
    return _both_ways(fabric, source, [source, None], cookie)


#: What QEMU sends when a VM resumes: a RARP from the VM's MAC to broadcast.
ETH_TYPE_RARP = 0x8035


def arrival_announcement_flows(fabric: Fabric, vm: Binding, cookie: int) -> Set[FlowSpec]:
    """While a VM from another process is expected at ``vm``'s port: its own RARP
    announcements, the first frames a resumed VM sends, leave by the shared uplink
    at once, readdressed to the beacon group on its VLAN, so the learning fabric
    follows the VM at wire speed, before the controller has seen it (a copy still
    reaches the controller, which activates the VM). Every dynprov uplink drops
    them on the way in. Empty when no way leads to the shared fabric."""
    toward = fabric.toward_shared_fabric(vm.dpid)
    if toward is None:
        return set()
    rarp = make_match(in_port=vm.port, eth_src=vm.mac, eth_type=ETH_TYPE_RARP)
    entries = {flow(vm.dpid, Table.CLASSIFY, Priority.BINDING + 1, rarp, cookie,
                    actions=(Output(OFPP_CONTROLLER, PACKET_IN_BYTES), PushVlan(),
                             SetField("vlan_vid", tagged(vm.vlan)),
                             SetField("eth_dst", BEACON_ADDRESS), Output(toward)))}
    for dpid, info in fabric.switches.items():
        if info.role.hosts_vms:
            continue
        out, back = fabric.toward_shared_fabric(dpid), fabric.next_hop_port(dpid, vm.dpid)
        if out is None or back is None or out == back:
            continue   # not on the way from the VM's server to the shared fabric
        match = make_match(in_port=back, vlan_vid=tagged(vm.vlan), eth_src=vm.mac,
                           eth_dst=BEACON_ADDRESS)
        entries.add(flow(dpid, Table.CLASSIFY, Priority.BINDING, match, cookie,
                         actions=(Output(out),)))
    return entries


def _both_ways(fabric: Fabric, vm: Binding, ends: List[Optional[Binding]],
               cookie: int) -> Set[FlowSpec]:
    """Entries toward two ends: bindings, or None for the shared fabric."""
    match = make_match(vlan_vid=tagged(vm.vlan), eth_dst=vm.mac)
    places = [end.dpid if end is not None else SHARED_FABRIC for end in ends]
    entries: Set[FlowSpec] = set()
    for end, here, there in ((ends[0], places[0], places[1]), (ends[1], places[1], places[0])):
        if end is None:
            continue
        uplink = fabric.next_hop_port(here, there)
        if uplink is None:
            return set()
        delivered = to_vm_metadata(end.port, end.template_id)
        entries.add(flow(here, Table.FORWARD, MIGRATION_PRIORITY, match, cookie,
                         actions=(Output(uplink), PopVlan(), SetField("metadata", delivered),
                                  Resubmit(Table.TO_VM_ACL))))
    for dpid, info in fabric.switches.items():
        if info.role.hosts_vms:
            continue
        hops = [fabric.next_hop_port(dpid, place) for place in places]
        ports = {port for port in hops if port is not None}
        if len(ports) < len(set(hops)):
            return set()
        if len(ports) == 1:
            continue   # both ends lie the same way: the ordinary entry serves both
        entries.add(flow(dpid, Table.FORWARD, MIGRATION_PRIORITY, match, cookie,
                         actions=_toward(fabric, dpid, sorted(ports))))
    return entries


def redirect_flows(fabric: Fabric, source: Binding, destination: Binding,
                   cookie: int) -> Set[FlowSpec]:
    """Once the VM is active at ``destination``: the old server sends its frames up
    there, and so does every switch between the old server and the root whose
    ordinary entry for the VM would lead down to it (the handed-out source owns no
    FORWARD entry: :class:`~ryu_apps.core.flow_compiler.HandedOut`)."""
    uplink = fabric.next_hop_port(source.dpid, destination.dpid)
    if source.dpid == destination.dpid or uplink is None:
        return set()
    match = make_match(vlan_vid=tagged(source.vlan), eth_dst=source.mac)
    entries = {flow(source.dpid, Table.FORWARD, MIGRATION_PRIORITY, match, cookie,
                    actions=(Output(uplink),))}
    for dpid, port, _ in fabric.transit_hops(source.dpid):
        toward = fabric.next_hop_port(dpid, destination.dpid)
        if toward is not None and toward != port:
            entries.add(flow(dpid, Table.FORWARD, MIGRATION_PRIORITY, match, cookie,
                             actions=_toward(fabric, dpid, [toward])))
    return entries


def _toward(fabric: Fabric, dpid: int, ports: List[int]) -> tuple:
    """Out of each port; a server-facing port of an access switch via its port ACL."""
    to_servers = server_facing_ports(fabric, dpid)
    actions: list = [Output(p) for p in ports if p not in to_servers]
    for port in ports:
        if port in to_servers:
            actions += [SetField("metadata", port), Resubmit(Table.TO_VM_PORT_ACL)]
    return tuple(actions)
