"""Table numbers, priority bands, meter ids and metadata: the pipeline's contract.

Every managed bridge uses the same table numbers; a bridge only populates the
tables its role needs (see docs/architecture.md for which flows go where).
Each table declares what its flows may match, do and continue to
(:data:`CONTRACTS`); the unit tests' fake switches refuse any flow outside it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import FrozenSet, Iterable, List, Mapping


class Table(enum.IntEnum):
    """Tables, in the order a packet visits them."""

    CLASSIFY = 0            # all roles: LLDP, VM admission, uplink admission, miss
    ANTI_SPOOF = 1          # server: a VM may only send with its bound IP
    FROM_VM_ACL = 2         # server: the template's virtual-switch ACL, from_vm rules
    FROM_VM_PORT_ACL = 3    # access: port ACL of traffic from a server port;
                            # server: a merged template's port-side rules
    FORWARD = 4             # all roles: VLAN + destination MAC lookup, flooding
    TO_VM_ACL = 5           # server: the template's virtual-switch ACL, to_vm rules
    TO_VM_PORT_ACL = 6      # access: port ACL toward a server port; output
                            # server: a template's port-side rules (merged) or pass
    OUTPUT = 7              # server: delivery to the port a delivery wrote into the
                            # metadata (one shared flow), after the VM's ACLs
    FLOOD = 8               # server: a VLAN's flood copies to its VMs, in chunks; reached
                            # only by resubmit from FORWARD (ryu_apps.core.server_flood)


class Priority(enum.IntEnum):
    """Named priority bands; a higher band always wins inside a table."""

    LLDP = 60000            # CLASSIFY: LLDP from a link port -> controller (metered per port)
    VM_FRAME_DROP = 60000   # ANTI_SPOOF: a VM's LLDP or tagged frames -> drop
    QUARANTINE = 55000
    SHARED_ANNOUNCE = 52000  # another process's announcement on a shared uplink: drop
    LIVENESS_REPLY = 51000   # a probed VM's answer to the liveness probe -> controller
    PRE_PROVISIONED_IPV4 = 50010   # CLASSIFY: a pre-provisioned VM's IPv4, not copied
    BINDING = 50000
    IPV6_LEARN = 50007      # ANTI_SPOOF: a first_seen VM's first global IPv6 -> controller
    DHCP_SNOOP = 50006      # ANTI_SPOOF: a `bind_ip: dhcp` VM's DHCP client messages pass,
                            # copied to the controller; OUTPUT: DHCP server messages to it
                            # are delivered and copied (core/dhcp_snooping.py)
    DHCP_SERVER_DROP = 50005  # ANTI_SPOOF: DHCP(v6) server messages (core/address_guard.py)
    ND_ALLOW = 50004        # ANTI_SPOOF: a VM's own neighbour discovery (core/ipv6_guard.py)
    ND_DROP = 50003         # ANTI_SPOOF: any other NS/NA, and RA/redirect from a non-router
    SPOOF_ALLOW = 50002
    SPOOF_LEARN = 50001
    VLAN_ADMIT = 40000
    VLAN_FLOOD = 30000
    VLAN_UPLINK = 20000     # FORWARD: a VLAN's default: uplink, parent or shared fabric
    PORT_QUARANTINE = 15000
    LLDP_QUARANTINE = 13000  # a port that sent an unsigned or forged probe: its LLDP dropped
    LLDP_OTHER = 12000       # LLDP from a port with no link yet -> controller (metered)
    TAGGED_DROP = 11000      # a tagged frame no VLAN admission took (VMs send untagged)
    SHARED_UPLINK = 10010   # a port to the shared fabric: drop what no VLAN admits
    UPLINK_DROP = 10000
    ND_NORMALISE = 45002    # FROM_VM_ACL of a guarded template: NS and NA pass, their
                            # link-layer option set to the VM's (proven) MAC (ipv6_guard)
    CT_ND = 45001           # FROM_VM_ACL/TO_VM_ACL of a stateful template: neighbour
                            # discovery passes untracked (conntrack tracks no ND)
    CT_TRACK = 45000        # FROM_VM_ACL/TO_VM_ACL of a stateful template: untracked
                            # IP -> ct(zone) and back into the same table (core/conntrack.py)
    CT_INVALID = 44002      # ... tracked and invalid -> drop (the flow's packets: the count)
    CT_REPLY = 44001        # ... a reply of a committed connection -> pass
    CT_RELATED = 44000      # ... related to one (ICMP errors) -> pass
    TRANSIT = 100
    MISS = 0


#: dynprov's meters live in a block of meter ids of their own, far above the small
#: ids other applications number their meters from; a meter outside the block is
#: never deleted unless a dynprov flow read back from the switch uses it.
METER_BASE = 0xC0000000
#: A binding's meter is this base + its binding id.
BINDING_METER_BASE = METER_BASE
#: Reserved: earlier versions metered a merged template's port-side limit on a VM's
#: port at offset + binding id (now folded into the VM's one meter). Nothing is
#: allocated here any more; such a meter read back from a switch lies in the block,
#: so reconciliation deletes it.
MOVED_PORT_METER_OFFSET = METER_BASE + 0x08000000
#: Binding ids stay below this, so the reserved range above never reaches the
#: switch-wide meters at the top 16 ids below PORT_METER_BASE.
MAX_BINDING_ID = 0x08000000 - 16
#: The meter that limits packet-ins from a server bridge's table miss.
PACKET_IN_METER = METER_BASE + 0x0FFFFFFF
#: LLDP from ports without a link yet (new cables, and whatever else sends LLDP).
LLDP_OTHER_METER = METER_BASE + 0x0FFFFFFE
#: Answers to the controller's liveness probes.
LIVENESS_METER = METER_BASE + 0x0FFFFFFD
#: What a server bridge's IPv6 guard drops, punted to be logged (once per VM and kind).
IPV6_GUARD_METER = METER_BASE + 0x0FFFFFFC
#: DHCP messages to and from `bind_ip: dhcp` VMs, delivered and copied to the controller
#: for snooping (core/dhcp_snooping.py): one meter per server bridge bounds both.
DHCP_SNOOP_METER = METER_BASE + 0x0FFFFFFB
#: Port-group meters (aggregate limits on access ports) start here.
PORT_METER_BASE = METER_BASE + 0x10000000
#: LLDP from one link port: base + port.
LLDP_PORT_METER_BASE = METER_BASE + 0x20000000
#: The last meter id of dynprov's block (below OpenFlow's OFPM_MAX, 0xFFFF0000).
METER_LAST = LLDP_PORT_METER_BASE + 0x0FFFFFFF


# -- pipeline metadata ---------------------------------------------------------------------
#: The 64-bit pipeline metadata on a server bridge::
#:
#:     63      51   50    49   48   47          32 31                    0
#:     +---------+------+-----+---+--------------+-----------------------+
#:     |  zero   |learn6|learn|tag| template id  |  egress port          |
#:     +---------+------+-----+---+--------------+-----------------------+
#:
#: A VM's classifier flow writes its template tag (the tag bit and its template
#: id; the learn bit while its IPv4 is not bound yet; the learn6 bit while a
#: ``bind_ipv6: first_seen`` VM has no global IPv6 address bound) for the shared
#: from-VM tables; a delivery toward a VM (its FORWARD entry, a flood's copy, a
#: migration's delivery) writes the VM's port and its template tag for the
#: shared to-VM tables and the VM's OUTPUT entry. Access switches keep the
#: egress port alone (their port ACLs match it exactly).
METADATA_PORT_MASK = 0xFFFFFFFF
METADATA_TEMPLATE_SHIFT = 32
TEMPLATE_FIELD_MASK = 0xFFFF << METADATA_TEMPLATE_SHIFT
#: The template field holds a template id (0 is a valid id).
TAG_BIT = 1 << 48
#: The VM's IPv4 is not bound yet: its IPv4 and ARP go to the controller.
LEARN_IP_BIT = 1 << 49
#: The VM's first global IPv6 address is not bound yet: IPv6 from one goes to the controller.
LEARN_IPV6_BIT = 1 << 50
#: Selects the template tag (bit and id) of the metadata.
TAG_MASK = TAG_BIT | TEMPLATE_FIELD_MASK


def template_tag(template_id: int) -> int:
    """The metadata bits that say a frame belongs to a VM of ``template_id``."""
    if not 0 <= template_id <= 0xFFFF:
        raise ValueError(f"template id {template_id} outside 0..65535 (metadata tag)")
    return TAG_BIT | (template_id << METADATA_TEMPLATE_SHIFT)


def from_vm_metadata(template_id: int, learn_ip: bool = False, learn_ipv6: bool = False) -> int:
    """What a VM's classifier flow writes: its template tag, and the learn bits."""
    return (template_tag(template_id) | (LEARN_IP_BIT if learn_ip else 0)
            | (LEARN_IPV6_BIT if learn_ipv6 else 0))


def to_vm_metadata(port: int, template_id: int) -> int:
    """What a delivery toward a VM writes: its port and its template tag."""
    if not 0 <= port <= METADATA_PORT_MASK:
        raise ValueError(f"port {port} does not fit the metadata's port field")
    return template_tag(template_id) | port


def template_metadata_match(template_id: int, learn_ip: bool | None = None,
                            learn_ipv6: bool | None = None) -> tuple:
    """The masked metadata match of a template's shared flows (``learn_ip``,
    ``learn_ipv6``: also require that learn bit set (True) or clear (False))."""
    value, mask = template_tag(template_id), TAG_MASK
    for wanted, bit in ((learn_ip, LEARN_IP_BIT), (learn_ipv6, LEARN_IPV6_BIT)):
        if wanted is not None:
            mask |= bit
            value |= bit if wanted else 0
    return (value, mask)


def port_group_meter(port: int, vlan: int) -> int:
    """Meter id of the aggregate limit of one VLAN on one access port."""
    return PORT_METER_BASE + ((port & 0xFFFF) << 12) + vlan


def lldp_port_meter(port: int) -> int:
    """Meter id of the LLDP punts of one link port."""
    return LLDP_PORT_METER_BASE + (port & 0x0FFFFFFF)


def is_dynprov_meter(meter_id: int) -> bool:
    """Meter ids dynprov allocates (others on the bridge are left alone)."""
    return METER_BASE < meter_id <= METER_LAST


#: Packet-ins per second a server bridge may send for unknown VMs, and burst.
PACKET_IN_RATE_PPS = 200
PACKET_IN_BURST = 50
#: LLDP punts per second from one link port (a probe and a beacon a round), and burst.
LLDP_PORT_RATE_PPS = 20
LLDP_PORT_BURST = 20
#: LLDP punts per second from all the ports of a switch without a link, and burst.
LLDP_OTHER_RATE_PPS = 20
LLDP_OTHER_BURST = 20
#: Liveness-probe answers per second a switch may punt, and burst.
LIVENESS_RATE_PPS = 50
LIVENESS_BURST = 20
#: IPv6 guard drops per second a server bridge may punt for the log, and burst.
IPV6_GUARD_RATE_PPS = 10
IPV6_GUARD_BURST = 10
#: DHCP messages per second a server bridge delivers to and from `bind_ip: dhcp` VMs
#: (each copied to the controller), and burst; beyond it they are dropped and the
#: clients retry, as a switch's DHCP snooping rate limit does.
DHCP_SNOOP_RATE_PPS = 100
DHCP_SNOOP_BURST = 100


# -- table contracts ---------------------------------------------------------------------
#: The fields an ACL rule can compile to (acl_compiler), in any ACL table.
ACL_FIELDS = frozenset({"eth_type", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src",
                        "ipv6_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
                        "icmpv4_type", "icmpv4_code", "icmpv6_type", "icmpv6_code"})
#: The fields the IPv6 guard matches in ANTI_SPOOF (core/ipv6_guard.py).
IPV6_GUARD_FIELDS = frozenset({"ipv6_src", "ipv6_dst", "icmpv6_type", "ipv6_nd_target",
                               "ipv6_nd_sll", "ipv6_nd_tll"})
#: The OUTPUT table's shared flow sends a delivery out of the port in these low bits of
#: the metadata (Open vSwitch port numbers are 16 bits; real ports stay below 0xFF00).
OUTPUT_PORT_BITS = 16


@dataclass(frozen=True)
class TableContract:
    """What the flows of one table may match, do, and where they may continue.

    Action kinds: ``output`` (to a port), ``controller`` (output to the
    controller), ``push_vlan``, ``pop_vlan``, ``set:<field>``, ``meter``,
    ``write_metadata``, ``move:<field>`` (a copy into the field), ``output_field``
    (output to the port a field holds), ``ct`` (connection tracking that recirculates to the
    flow's own table: the only way back, core/conntrack.py), ``ct_commit``;
    ``goto`` and ``resubmit`` name the tables a flow may continue in. A goto
    always goes to a later table (the pipeline only goes forward); a resubmit
    is a call that comes back, and FLOOD, numbered last, is visited only that
    way, between FORWARD and TO_VM_ACL (a group flow resubmits to its chunk
    flows in FLOOD itself, never the other way).
    """

    table: Table
    match: FrozenSet[str]
    actions: FrozenSet[str] = frozenset()
    goto: FrozenSet[Table] = frozenset()
    resubmit: FrozenSet[Table] = frozenset()


def _contract(table: Table, match: Iterable[str], actions: Iterable[str] = (),
              goto: Iterable[Table] = (), resubmit: Iterable[Table] = ()) -> TableContract:
    return TableContract(table, frozenset(match), frozenset(actions), frozenset(goto),
                         frozenset(resubmit))


#: Every table's contract (docs/architecture.md, "Tables and priorities").
CONTRACTS: Mapping[Table, TableContract] = {c.table: c for c in (
    _contract(Table.CLASSIFY, {"in_port", "eth_src", "eth_dst", "eth_type", "vlan_vid"},
              {"meter", "output", "controller", "push_vlan", "set:vlan_vid", "set:eth_dst",
               "write_metadata"},
              {Table.ANTI_SPOOF, Table.FROM_VM_PORT_ACL, Table.FORWARD}),
    _contract(Table.ANTI_SPOOF, {"in_port", "metadata", "eth_type", "vlan_vid", "ipv4_src",
                                 "arp_spa", "ip_proto", "udp_src", "udp_dst"}
              | IPV6_GUARD_FIELDS,
              {"meter", "controller"}, {Table.FROM_VM_ACL}),
    # FROM_VM_ACL: a guarded template's NS/NA pass with their link-layer option set to
    # the sender's MAC (ryu_apps.core.ipv6_guard.normalise_flows).
    _contract(Table.FROM_VM_ACL, ACL_FIELDS | {"metadata", "ct_state"},
              {"ct", "ct_commit", "move:ipv6_nd_sll", "move:ipv6_nd_tll"},
              {Table.FROM_VM_PORT_ACL}),
    _contract(Table.FROM_VM_PORT_ACL, ACL_FIELDS | {"in_port", "vlan_vid", "metadata"},
              {"push_vlan", "set:vlan_vid"}, {Table.FORWARD}),
    _contract(Table.FORWARD, {"vlan_vid", "eth_dst"},
              {"output", "pop_vlan", "set:metadata", "write_metadata"},
              {Table.TO_VM_ACL, Table.TO_VM_PORT_ACL},
              {Table.TO_VM_ACL, Table.TO_VM_PORT_ACL, Table.FLOOD}),
    _contract(Table.TO_VM_ACL, ACL_FIELDS | {"metadata", "ct_state"}, {"ct", "ct_commit"},
              {Table.TO_VM_PORT_ACL}),
    _contract(Table.TO_VM_PORT_ACL, ACL_FIELDS | {"metadata", "vlan_vid"}, {"output"},
              {Table.OUTPUT}),
    # OUTPUT: one shared flow outputs to the metadata's port (output_field); DHCP server
    # messages to a `bind_ip: dhcp` VM are delivered by its own flow and copied to the
    # controller, metered (core/dhcp_snooping.py).
    _contract(Table.OUTPUT, {"metadata", "eth_type", "ip_proto", "udp_src", "udp_dst"},
              {"output", "output_field", "controller", "meter"}),
    _contract(Table.FLOOD, {"metadata"}, {"set:metadata"}, (), {Table.FLOOD, Table.TO_VM_ACL}),
)}


def contract_violations(table_id: int, match_fields: Iterable[str],
                        actions: Iterable[str], goto: Iterable[int],
                        resubmit: Iterable[int]) -> List[str]:
    """What a flow of ``table_id`` does that the table's contract does not allow."""
    try:
        contract = CONTRACTS[Table(table_id)]
    except ValueError:
        return [f"table {table_id} is not a pipeline table"]
    found = []
    for what, used, allowed in (
            ("match field", set(match_fields), set(contract.match)),
            ("action", set(actions), set(contract.actions)),
            ("goto", set(map(_table_name, goto)), set(map(_table_name, contract.goto))),
            ("resubmit", set(map(_table_name, resubmit)),
             set(map(_table_name, contract.resubmit)))):
        extra = sorted(used - allowed)
        if extra:
            found.append(f"table {contract.table.name}: {what} {', '.join(extra)} not allowed "
                         f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    return found


def _table_name(table_id: int) -> str:
    try:
        return Table(table_id).name
    except ValueError:
        return str(table_id)
