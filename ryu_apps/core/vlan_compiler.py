"""Compile a VLAN's shared flows: flooding, the default toward the root, the shared-fabric
uplink (pure)."""

from __future__ import annotations

from typing import Iterable, List, Sequence, Set

from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.cookies import vlan_owner
from ryu_apps.core.fabric import SHARED_FABRIC, Fabric, PortRef
from ryu_apps.core.flow_compiler import Entry
from ryu_apps.core.flowspec import (
    GROUP_ADDRESS_MATCH,
    Output,
    PopVlan,
    Resubmit,
    flow,
    make_match,
    tagged,
)
from ryu_apps.core.pipeline import Priority, Table, to_vm_metadata
from ryu_apps.core.server_flood import chunked, set_metadata, to_groups_actions

#: Flood actions repeat per member port on every switch: share the objects.
_RESUBMIT_TO_VM_PORT_ACL = Resubmit(Table.TO_VM_PORT_ACL)


def vlan_flows(fabric: Fabric, vlan: int, members: Iterable[Binding]) -> Set[Entry]:
    """A VLAN's shared flows on every switch, from scratch (the reference).

    Only VMs whose traffic flows are flooded to; a pre-provisioned VM's server
    gets the way up (so what it sends is forwarded at once) but no copies. The
    engine computes the same per switch, incrementally (:func:`vlan_switch_flows`).
    """
    present = [b for b in members if b.state.forwards or b.state is VmState.PRE_PROVISIONED]
    members = [b for b in present if b.state.forwards]
    if not present:
        return set()
    member_switches = {b.dpid for b in members}
    if member_switches:
        member_switches.add(SHARED_FABRIC)   # other processes may have members
    present_switches = {b.dpid for b in present}
    entries: Set[Entry] = set()
    for dpid in fabric.switches:
        up_ports = sorted(fabric.flood_ports(dpid, member_switches - {dpid}))
        local = sorted({to_vm_metadata(b.port, b.template_id)
                        for b in members if b.dpid == dpid})
        entries |= vlan_switch_flows(fabric, vlan, dpid, up_ports, local,
                                     dpid in present_switches)
    return entries


def vlan_switch_flows(fabric: Fabric, vlan: int, dpid: int, up_ports: Sequence[int],
                      local_ports: Sequence[int], present: bool) -> Set[Entry]:
    """A VLAN's shared flows on one switch.

    ``up_ports``: the switch's tree ports toward other switches with VMs of the
    VLAN (sorted); ``local_ports``: the delivery metadata (port and template tag,
    :func:`~ryu_apps.core.pipeline.to_vm_metadata`) of its own forwarding VMs of
    the VLAN (sorted; only switches that host VMs use them); ``present``: it
    hosts a VM of the VLAN in any state that needs the way up (forwarding or
    pre-provisioned).
    """
    info = fabric.switches.get(dpid)
    if info is None:
        return set()
    cookie = vlan_owner(vlan).cookie
    vid = tagged(vlan)
    if info.role.hosts_vms:
        if not present:
            return set()
        groups, flood_flows = chunked(dpid, vlan, local_ports)
        return server_vlan_flows(dpid, vlan, up_ports, groups, flood_flows)
    if not up_ports:
        return set()
    to_servers = fabric.server_facing_ports(dpid)
    actions: List = [Output(p) for p in up_ports if p not in to_servers]
    for port in up_ports:
        if port in to_servers:
            actions += [set_metadata(port), _RESUBMIT_TO_VM_PORT_ACL]
    entries: Set[Entry] = {flow(dpid, Table.FORWARD, Priority.VLAN_FLOOD,
                                make_match(vlan_vid=vid, eth_dst=GROUP_ADDRESS_MATCH), cookie,
                                actions=tuple(actions))}
    return entries | _default_flows(fabric, dpid, vid, cookie, up_ports)


def _default_flows(fabric: Fabric, dpid: int, vid: int, cookie: int,
                   up_ports: Sequence[int]) -> Set[Entry]:
    """The VLAN's default on a switch hosting no VMs, and its admission from the
    shared fabric on an uplink.

    A frame for a VM this switch has no entry for (the switch is not between
    that VM and the root of the tree) goes toward the parent, where VMs of the
    VLAN lie outside this switch's subtree; on the root, toward the shared
    fabric (another process's VMs), if it has an uplink. A frame that came in
    by the port the default leads to and matches nothing here would go back
    out of it, which OVS never does: no loop. Below the VLAN's flood entry
    (group addresses) and every per-VM entry.
    """
    default = fabric.default_port(dpid)
    if default is None or default not in up_ports:
        return set()
    entries: Set[Entry] = {flow(dpid, Table.FORWARD, Priority.VLAN_UPLINK,
                                make_match(vlan_vid=vid), cookie, actions=(Output(default),))}
    if fabric.is_shared_uplink(PortRef(dpid, default)):
        entries.add(flow(dpid, Table.CLASSIFY, Priority.VLAN_ADMIT,
                         make_match(in_port=default, vlan_vid=vid), cookie,
                         goto=Table.FORWARD))
    return entries


def server_vlan_flows(dpid: int, vlan: int, up_ports: Sequence[int], groups: Sequence[int],
                      flood_flows: Iterable[Entry]) -> Set[Entry]:
    """A VLAN's flows on a server hosting a VM of it: the flood entry (copies out of
    the tree ports, then a resubmit to each FLOOD group with members, ``groups``), the
    groups' and chunks' ``flood_flows`` (:mod:`~ryu_apps.core.server_flood`), the
    admission from the tree ports and the default up."""
    cookie = vlan_owner(vlan).cookie
    vid = tagged(vlan)
    flood: List = [Output(p) for p in up_ports]
    if groups:
        flood.append(PopVlan())
        flood += to_groups_actions(vlan, groups)
    entries: Set[Entry] = set(flood_flows)
    entries.add(flow(dpid, Table.FORWARD, Priority.VLAN_FLOOD,
                     make_match(vlan_vid=vid, eth_dst=GROUP_ADDRESS_MATCH), cookie,
                     actions=tuple(flood)))
    for port in up_ports:
        entries.add(flow(dpid, Table.CLASSIFY, Priority.VLAN_ADMIT,
                         make_match(in_port=port, vlan_vid=vid), cookie,
                         goto=Table.FORWARD))
    if up_ports:
        entries.add(flow(dpid, Table.FORWARD, Priority.VLAN_UPLINK,
                         make_match(vlan_vid=vid), cookie, actions=(Output(up_ports[0]),)))
    return entries
