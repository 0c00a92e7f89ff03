"""The flows every managed switch carries whatever its VMs: its role's infrastructure (pure).

- LLDP: a link port's probes go to the controller through a meter of that
  port; LLDP from any other port (a new cable, or something pretending to be
  one) through one switch-wide meter, at a priority below a VM's own flows,
  so a VM's LLDP enters its pipeline and is dropped there; a port that sent
  an unsigned or forged probe has its LLDP dropped (quarantine, not here).
- On switches that host VMs (servers, edges): a VM's LLDP and tagged frames
  are dropped at the start of its pipeline (ANTI_SPOOF), a tagged frame from a
  port no VLAN admission takes is dropped, link ports drop what their VLAN
  admissions do not take, and the table miss goes to the controller through
  the packet-in meter; the liveness-probe meter exists for VMs' answers; the
  OUTPUT table's one flow sends a delivery out of the port it wrote into the
  metadata (a VM's delivery, a flood's copy, a migration's delivery).
- On access and fabric switches: frames from a link to another managed
  switch go to FORWARD; a server-facing port drops what its VLAN admissions
  do not take; a shared uplink drops the rest and other processes'
  announcements. A port with no link (a free port) reaches nothing.
"""

from __future__ import annotations

from typing import Set, Union

from ryu_apps.core.cookies import INFRA_OWNER
from ryu_apps.core.fabric import Fabric, PortRef
from ryu_apps.core.flowspec import (
    ETH_TYPE_LLDP,
    OFPCML_NO_BUFFER,
    OFPP_CONTROLLER,
    OFPVID_PRESENT,
    FlowSpec,
    MeterSpec,
    Output,
    OutputField,
    flow,
    make_match,
)
from ryu_apps.core.lldp import BEACON_MULTICAST
from ryu_apps.core.pipeline import (
    DHCP_SNOOP_BURST,
    DHCP_SNOOP_METER,
    DHCP_SNOOP_RATE_PPS,
    IPV6_GUARD_BURST,
    IPV6_GUARD_METER,
    IPV6_GUARD_RATE_PPS,
    LIVENESS_BURST,
    LIVENESS_METER,
    LIVENESS_RATE_PPS,
    LLDP_OTHER_BURST,
    LLDP_OTHER_METER,
    LLDP_OTHER_RATE_PPS,
    LLDP_PORT_BURST,
    LLDP_PORT_RATE_PPS,
    OUTPUT_PORT_BITS,
    PACKET_IN_BURST,
    PACKET_IN_METER,
    PACKET_IN_RATE_PPS,
    TAG_BIT,
    Priority,
    Table,
    lldp_port_meter,
)

Entry = Union[FlowSpec, MeterSpec]

#: Announcements and beacons go to this group address (see :mod:`ryu_apps.core.lldp`).
BEACON_ADDRESS = ":".join(f"{b:02x}" for b in BEACON_MULTICAST)
#: Bytes of a new VM's packet sent to the controller (headers are enough).
PACKET_IN_BYTES = 128
_ANY_VLAN = (OFPVID_PRESENT, OFPVID_PRESENT)
#: OUTPUT's one action: out of the port a delivery wrote into the metadata's low bits.
DELIVER = OutputField("metadata", 0, OUTPUT_PORT_BITS)


def infra_flows(fabric: Fabric, dpid: int) -> Set[Entry]:
    """Flows and meters a managed switch carries whatever its bindings."""
    entries = _lldp_flows(fabric, dpid)
    role = fabric.role(dpid)
    if role is not None and role.hosts_vms:
        return entries | _vm_host_flows(fabric, dpid)
    return entries | _transit_switch_flows(fabric, dpid)


def _lldp_flows(fabric: Fabric, dpid: int) -> Set[Entry]:
    cookie = INFRA_OWNER.cookie
    to_controller = (Output(OFPP_CONTROLLER, OFPCML_NO_BUFFER),)
    entries: Set[Entry] = {
        MeterSpec(dpid, LLDP_OTHER_METER, LLDP_OTHER_RATE_PPS, LLDP_OTHER_BURST,
                  packets=True, cookie=cookie),
        flow(dpid, Table.CLASSIFY, Priority.LLDP_OTHER, make_match(eth_type=ETH_TYPE_LLDP),
             cookie, meter=LLDP_OTHER_METER, actions=to_controller),
    }
    for port in fabric.link_ports(dpid):
        meter = lldp_port_meter(port)
        entries.add(MeterSpec(dpid, meter, LLDP_PORT_RATE_PPS, LLDP_PORT_BURST, packets=True,
                              cookie=cookie))
        entries.add(flow(dpid, Table.CLASSIFY, Priority.LLDP,
                         make_match(in_port=port, eth_type=ETH_TYPE_LLDP), cookie,
                         meter=meter, actions=to_controller))
    return entries


def _vm_host_flows(fabric: Fabric, dpid: int) -> Set[Entry]:
    cookie = INFRA_OWNER.cookie
    entries: Set[Entry] = {
        MeterSpec(dpid, PACKET_IN_METER, PACKET_IN_RATE_PPS, PACKET_IN_BURST, packets=True,
                  cookie=cookie),
        flow(dpid, Table.CLASSIFY, Priority.MISS, make_match(), cookie, meter=PACKET_IN_METER,
             actions=(Output(OFPP_CONTROLLER, PACKET_IN_BYTES),)),
        MeterSpec(dpid, LIVENESS_METER, LIVENESS_RATE_PPS, LIVENESS_BURST, packets=True,
                  cookie=cookie),
        MeterSpec(dpid, IPV6_GUARD_METER, IPV6_GUARD_RATE_PPS, IPV6_GUARD_BURST,
                  packets=True, cookie=cookie),
        MeterSpec(dpid, DHCP_SNOOP_METER, DHCP_SNOOP_RATE_PPS, DHCP_SNOOP_BURST,
                  packets=True, cookie=cookie),
        flow(dpid, Table.CLASSIFY, Priority.TAGGED_DROP, make_match(vlan_vid=_ANY_VLAN),
             cookie),
        flow(dpid, Table.ANTI_SPOOF, Priority.VM_FRAME_DROP,
             make_match(eth_type=ETH_TYPE_LLDP), cookie),
        flow(dpid, Table.ANTI_SPOOF, Priority.VM_FRAME_DROP, make_match(vlan_vid=_ANY_VLAN),
             cookie),
        flow(dpid, Table.OUTPUT, Priority.BINDING, make_match(metadata=(TAG_BIT, TAG_BIT)),
             cookie, actions=(DELIVER,)),
    }
    for port in fabric.link_ports(dpid):
        entries.add(flow(dpid, Table.CLASSIFY, Priority.UPLINK_DROP, make_match(in_port=port),
                         cookie))
    return entries


def _transit_switch_flows(fabric: Fabric, dpid: int) -> Set[Entry]:
    cookie = INFRA_OWNER.cookie
    entries: Set[Entry] = set()
    to_servers = fabric.server_facing_ports(dpid)
    uplinks = fabric.shared_uplinks(dpid)
    for port in to_servers:
        entries.add(flow(dpid, Table.CLASSIFY, Priority.UPLINK_DROP, make_match(in_port=port),
                         cookie))
    for port in uplinks:
        entries.add(flow(dpid, Table.CLASSIFY, Priority.SHARED_UPLINK,
                         make_match(in_port=port), cookie))
        entries.add(flow(dpid, Table.CLASSIFY, Priority.SHARED_ANNOUNCE,
                         make_match(in_port=port, eth_dst=BEACON_ADDRESS), cookie))
    for port in fabric.link_ports(dpid) - set(to_servers) - uplinks:
        entries.add(flow(dpid, Table.CLASSIFY, Priority.TRANSIT, make_match(in_port=port),
                         cookie, goto=Table.FORWARD))
    return entries


def server_facing_ports(fabric: Fabric, dpid: int) -> Set[int]:
    """Ports of an access switch that lead to a server's virtual switch."""
    return set(fabric.server_facing_ports(dpid))


__all__ = ["BEACON_ADDRESS", "PACKET_IN_BYTES", "PortRef", "infra_flows",
           "server_facing_ports"]
