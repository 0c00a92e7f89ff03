"""A stateful template's virtual-switch ACL: Open vSwitch connection tracking (pure).

With ``stateful: true`` on a template's ``virtual_switch``, each of its two ACL
tables on a server (FROM_VM_ACL, TO_VM_ACL) holds, besides its rules, these
flows of the template (all shared by its VMs, matched on the template tag):

- CT_ND: IPv6 neighbour discovery (ICMPv6 133-137) passes untracked, as in OVN
  and Neutron: conntrack would call it invalid, and the IPv6 guard in
  ANTI_SPOOF already holds a VM to its own addresses;
- CT_TRACK: untracked IPv4 and IPv6 -> ``ct(zone=Z, table=<this table>)``: the
  packet comes back into the same table with its ``ct_state``;
- CT_INVALID: ``+trk+inv`` -> drop (the flow's packet count counts them);
- CT_REPLY: ``+trk+est+rpl`` -> pass: the replies of a connection a rule allowed
  in the other table, with no mirror rule;
- CT_RELATED: ``+trk+rel`` -> pass (ICMP errors about such a connection);
- the rules: an IPv4/IPv6 entry also matches ``+trk`` (what reaches it is a new
  connection, or the original direction of an established one, which the
  rules judge again, so a reload that stops allowing it cuts it) and, when it
  allows, commits the connection (``ct(commit, zone=Z)``); an entry of another
  ethertype (ARP) is unchanged (such frames are never tracked); an entry of
  every ethertype becomes three: untracked (``-trk``: not IP), IPv4 and IPv6.

The zone is the template id: one template's connections never open the reply
path of another's, a template's VLAN may change on a reload without losing its
connections, and a VM keeps its zone on every server (docs/security.md).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Set, Tuple

from ryu_apps.core.acl_compiler import acl_entries, rules_for
from ryu_apps.core.flowspec import (
    CT_EST,
    CT_INV,
    CT_REL,
    CT_RPL,
    CT_TRK,
    Conntrack,
    FlowSpec,
    MatchValue,
    flow,
)
from ryu_apps.core.pipeline import Priority, Table
from ryu_apps.core.template_model import (
    ETH_IPV4,
    ETH_IPV6,
    Action,
    Direction,
    SwitchSide,
    TemplateLibrary,
)

#: ct_state (value, mask) matches.
UNTRACKED = (0, CT_TRK)
TRACKED = (CT_TRK, CT_TRK)
INVALID = (CT_TRK | CT_INV, CT_TRK | CT_INV)
REPLY = (CT_TRK | CT_EST | CT_RPL, CT_TRK | CT_EST | CT_RPL | CT_INV)
RELATED = (CT_TRK | CT_REL, CT_TRK | CT_REL | CT_INV)
IP_ETHERTYPES = (ETH_IPV4, ETH_IPV6)
#: ICMPv6 router/neighbour solicitation and advertisement, and redirect.
ND_TYPES = (133, 134, 135, 136, 137)

Fields = Tuple[Tuple[str, MatchValue], ...]


def zone_of(template_id: int) -> int:
    """The conntrack zone of a template's connections (its id; zones are 16 bits)."""
    if not 0 <= template_id <= 0xFFFF:
        raise ValueError(f"template id {template_id} outside 0..65535 (conntrack zone)")
    return template_id


def stateful_entries(rules_and_default: Iterable[Tuple[int, dict, Action]]
                     ) -> List[Tuple[int, dict, Action, bool]]:
    """(priority, fields, action, commit) of a stateful side's ACL entries.

    An IP entry matches tracked packets and commits what it allows; a non-IP one
    is unchanged; one of every ethertype splits into untracked, IPv4 and IPv6.
    """
    out: List[Tuple[int, dict, Action, bool]] = []
    for priority, fields, action in rules_and_default:
        ethertype = fields.get("eth_type")
        if ethertype is not None and ethertype not in IP_ETHERTYPES:
            out.append((priority, fields, action, False))
            continue
        commit = action is Action.ALLOW
        if ethertype is not None:
            out.append((priority, {**fields, "ct_state": TRACKED}, action, commit))
            continue
        out.append((priority, {**fields, "ct_state": UNTRACKED}, action, False))
        for family in IP_ETHERTYPES:
            out.append((priority, {**fields, "eth_type": family, "ct_state": TRACKED},
                        action, commit))
    return out


#: Compiled entries per (side, direction): a side is immutable and held by its template.
_CACHE: Dict[Tuple[int, Direction], Tuple[SwitchSide, list]] = {}


def _entries(side: SwitchSide, direction: Direction) -> list:
    key = (id(side), direction)
    cached = _CACHE.get(key)
    if cached is None or cached[0] is not side:
        if len(_CACHE) >= 4096:
            _CACHE.clear()
        entries = stateful_entries(acl_entries(rules_for(side.acl, direction),
                                               side.default_action))
        cached = _CACHE[key] = (side, [(p, tuple(f.items()), a, c) for p, f, a, c in entries])
    return cached[1]


def stateful_acl_flows(dpid: int, table: Table, tag: Tuple[int, int], cookie: int,
                       template_id: int, side: SwitchSide, direction: Direction,
                       next_table: Table) -> Set[FlowSpec]:
    """One ACL table's flows of a stateful template side (see the module docstring)."""
    zone = zone_of(template_id)
    key = (("metadata", tag),)
    entries: Set[FlowSpec] = set()
    for nd_type in ND_TYPES:
        entries.add(flow(dpid, table, Priority.CT_ND,
                         _match(key, eth_type=ETH_IPV6, ip_proto=58, icmpv6_type=nd_type),
                         cookie, goto=next_table))
    for family in IP_ETHERTYPES:
        entries.add(flow(dpid, table, Priority.CT_TRACK,
                         _match(key, eth_type=family, ct_state=UNTRACKED), cookie,
                         actions=(Conntrack(zone, table=int(table)),)))
    entries.add(flow(dpid, table, Priority.CT_INVALID, _match(key, ct_state=INVALID), cookie))
    for priority, state in ((Priority.CT_REPLY, REPLY), (Priority.CT_RELATED, RELATED)):
        entries.add(flow(dpid, table, priority, _match(key, ct_state=state), cookie,
                         goto=next_table))
    commit = (Conntrack(zone, commit=True),)
    for priority, fields, action, do_commit in _entries(side, direction):
        match = tuple(sorted(key + fields))
        if action is not Action.ALLOW:
            entries.add(flow(dpid, table, priority, match, cookie))
        else:
            entries.add(flow(dpid, table, priority, match, cookie,
                             actions=commit if do_commit else (), goto=next_table))
    return entries


def _match(key: Fields, **fields: MatchValue) -> Fields:
    return tuple(sorted(key + tuple(fields.items())))


def _one_sided(rule) -> bool:
    """Whether a rule names a port or a prefix (one with none, e.g. ICMP both ways,
    allows connections started from either side: no mirror)."""
    return any(value is not None for value in (rule.src, rule.dst, rule.src_port,
                                               rule.dst_port))


def library_warnings(library: TemplateLibrary) -> List[str]:
    """What a valid library holds in vain: each located, one line each."""
    lines = []
    for template in library:
        if not template.virtual_switch.stateful:
            continue
        for index, why in redundant_reply_rules(template.virtual_switch):
            lines.append(f"{template.source}: template {template.template_id} "
                         f"'{template.name}': virtual_switch.acl[{index}]: {why}")
    return lines


def redundant_reply_rules(side: SwitchSide) -> List[Tuple[int, str]]:
    """(index, why) of the rules a stateful side makes redundant: an allow rule of one
    direction whose traffic is exactly the replies of an earlier allow rule of the
    other (addresses and ports swapped)."""
    found = []
    for index, rule in enumerate(side.acl):
        if rule.action is not Action.ALLOW or not _one_sided(rule):
            continue
        for earlier_index, earlier in enumerate(side.acl[:index]):
            if (earlier.action is Action.ALLOW and earlier.direction is not rule.direction
                    and earlier.protocol is not None and earlier.protocol == rule.protocol
                    and earlier.ethertypes() == rule.ethertypes()
                    and earlier.src == rule.dst and earlier.dst == rule.src
                    and earlier.src_port == rule.dst_port
                    and earlier.dst_port == rule.src_port):
                found.append((index, f"mirrors acl[{earlier_index}] ({earlier.describe()}): "
                                     "with stateful: true its replies pass already"))
                break
    return found
