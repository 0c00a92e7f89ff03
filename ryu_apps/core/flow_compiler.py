"""Compile bindings, VLAN memberships and switch roles into flow specs (pure).

Pipeline of a server's virtual switch (role ``server``)::

    table 0 CLASSIFY  LLDP -> controller
                      VM port + VM MAC -> tag with the template's VLAN, goto 1
                      uplink + admitted VLAN -> goto 1
                      uplink, anything else -> drop
                      miss -> controller (detects new VMs)
    table 1 FORWARD   VLAN + VM MAC -> untag, out of the VM's port
                      VLAN + group address -> uplink toward other members,
                                              untag, out of local members
                      VLAN, other unicast -> uplink
                      miss -> drop

Access, fabric and edge bridges run one table: LLDP to the controller,
VLAN + VM MAC to the next hop toward the VM's server, VLAN + group address to
the tree ports toward that VLAN's members, and nothing else (drop).
"""

from __future__ import annotations

import enum
from typing import Iterable, Set

from ryu_apps.core.binding import Binding
from ryu_apps.core.cookies import INFRA_OWNER, vlan_owner
from ryu_apps.core.fabric import Fabric, Role
from ryu_apps.core.flowspec import (
    ETH_TYPE_LLDP,
    GROUP_ADDRESS_MATCH,
    OFPCML_NO_BUFFER,
    OFPP_CONTROLLER,
    FlowSpec,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    flow,
    make_match,
    tagged,
)


class Table(enum.IntEnum):
    """Tables of a server's virtual switch (transit bridges use CLASSIFY only)."""

    CLASSIFY = 0
    FORWARD = 1


class Priority(enum.IntEnum):
    """Named priority bands; a higher band always wins."""

    LLDP = 60000
    BINDING = 50000
    VLAN_ADMIT = 40000
    VLAN_FLOOD = 30000
    VLAN_UPLINK = 20000
    UPLINK_DROP = 10000
    MISS = 0


#: Bytes of a new VM's packet sent to the controller (headers are enough).
PACKET_IN_BYTES = 128


def infra_flows(fabric: Fabric, dpid: int) -> Set[FlowSpec]:
    """Flows every managed switch carries whatever its bindings."""
    cookie = INFRA_OWNER.cookie
    flows = {
        flow(dpid, Table.CLASSIFY, Priority.LLDP,
             make_match(eth_type=ETH_TYPE_LLDP), cookie,
             actions=(Output(OFPP_CONTROLLER, OFPCML_NO_BUFFER),)),
    }
    if fabric.role(dpid) is Role.SERVER:
        for port in fabric.link_ports(dpid):
            flows.add(flow(dpid, Table.CLASSIFY, Priority.UPLINK_DROP,
                           make_match(in_port=port), cookie))
        flows.add(flow(dpid, Table.CLASSIFY, Priority.MISS, make_match(), cookie,
                       actions=(Output(OFPP_CONTROLLER, PACKET_IN_BYTES),)))
    return flows


def binding_flows(fabric: Fabric, binding: Binding) -> Set[FlowSpec]:
    """The flows that admit and deliver one VM, on every managed switch."""
    cookie = binding.owner.cookie
    vid = tagged(binding.vlan)
    flows = {
        flow(binding.dpid, Table.CLASSIFY, Priority.BINDING,
             make_match(in_port=binding.port, eth_src=binding.mac), cookie,
             actions=(PushVlan(), SetField("vlan_vid", vid)),
             goto=Table.FORWARD),
        flow(binding.dpid, Table.FORWARD, Priority.BINDING,
             make_match(vlan_vid=vid, eth_dst=binding.mac), cookie,
             actions=(PopVlan(), Output(binding.port))),
    }
    for dpid, info in fabric.switches.items():
        if info.role is Role.SERVER:
            continue
        port = fabric.next_hop_port(dpid, binding.dpid)
        if port is None:
            continue
        flows.add(flow(dpid, Table.CLASSIFY, Priority.BINDING,
                       make_match(vlan_vid=vid, eth_dst=binding.mac), cookie,
                       actions=(Output(port),)))
    return flows


def vlan_flows(fabric: Fabric, vlan: int, members: Iterable[Binding]) -> Set[FlowSpec]:
    """A VLAN's shared flows: uplink admission, flooding and the way up."""
    members = list(members)
    if not members:
        return set()
    cookie = vlan_owner(vlan).cookie
    vid = tagged(vlan)
    member_switches = {b.dpid for b in members}
    flows: Set[FlowSpec] = set()
    for dpid, info in fabric.switches.items():
        remote = member_switches - {dpid}
        up_ports = sorted(fabric.flood_ports(dpid, remote))
        if info.role is Role.SERVER:
            local_ports = sorted({b.port for b in members if b.dpid == dpid})
            if not local_ports:
                continue
            flows |= _server_vlan_flows(dpid, vid, cookie, up_ports, local_ports)
        elif up_ports:
            flows.add(flow(dpid, Table.CLASSIFY, Priority.VLAN_FLOOD,
                           make_match(vlan_vid=vid, eth_dst=GROUP_ADDRESS_MATCH),
                           cookie, actions=tuple(Output(p) for p in up_ports)))
    return flows


def _server_vlan_flows(dpid: int, vid: int, cookie: int,
                       up_ports: list[int], local_ports: list[int]) -> Set[FlowSpec]:
    flood_actions = tuple(Output(p) for p in up_ports) + (PopVlan(),) + tuple(
        Output(p) for p in local_ports)
    flows = {
        flow(dpid, Table.FORWARD, Priority.VLAN_FLOOD,
             make_match(vlan_vid=vid, eth_dst=GROUP_ADDRESS_MATCH), cookie,
             actions=flood_actions),
    }
    for port in up_ports:
        flows.add(flow(dpid, Table.CLASSIFY, Priority.VLAN_ADMIT,
                       make_match(in_port=port, vlan_vid=vid), cookie,
                       goto=Table.FORWARD))
    if up_ports:
        flows.add(flow(dpid, Table.FORWARD, Priority.VLAN_UPLINK,
                       make_match(vlan_vid=vid), cookie,
                       actions=(Output(up_ports[0]),)))
    return flows
