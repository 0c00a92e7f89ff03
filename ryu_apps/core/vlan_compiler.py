"""Compile a VLAN's shared flows: flooding, the default toward the root, the shared-fabric
uplink (pure)."""

from __future__ import annotations

import functools
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
    SetField,
    flow,
    make_match,
    tagged,
)
from ryu_apps.core.pipeline import Priority, Table, to_vm_metadata

#: Flood actions repeat per member port on every switch: share the objects.
_RESUBMIT_TO_VM_ACL = Resubmit(Table.TO_VM_ACL)
_RESUBMIT_TO_VM_PORT_ACL = Resubmit(Table.TO_VM_PORT_ACL)


@functools.lru_cache(maxsize=65536)
def _set_metadata(port: int) -> SetField:
    return SetField("metadata", port)


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
        return _server_vlan_flows(dpid, vid, cookie, list(up_ports), list(local_ports))
    if not up_ports:
        return set()
    to_servers = fabric.server_facing_ports(dpid)
    actions: List = [Output(p) for p in up_ports if p not in to_servers]
    for port in up_ports:
        if port in to_servers:
            actions += [_set_metadata(port), _RESUBMIT_TO_VM_PORT_ACL]
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


def _server_vlan_flows(dpid: int, vid: int, cookie: int,
                       up_ports: List[int], local_ports: List[int]) -> Set[Entry]:
    flood: List = [Output(p) for p in up_ports]
    if local_ports:
        flood.append(PopVlan())
    for port in local_ports:
        flood += [_set_metadata(port), _RESUBMIT_TO_VM_ACL]
    entries: Set[Entry] = {
        flow(dpid, Table.FORWARD, Priority.VLAN_FLOOD,
             make_match(vlan_vid=vid, eth_dst=GROUP_ADDRESS_MATCH), cookie,
             actions=tuple(flood)),
    }
    for port in up_ports:
        entries.add(flow(dpid, Table.CLASSIFY, Priority.VLAN_ADMIT,
                         make_match(in_port=port, vlan_vid=vid), cookie,
                         goto=Table.FORWARD))
    if up_ports:
        entries.add(flow(dpid, Table.FORWARD, Priority.VLAN_UPLINK,
                         make_match(vlan_vid=vid), cookie, actions=(Output(up_ports[0]),)))
    return entries
