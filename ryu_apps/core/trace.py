"""The policy trace: would VM A reach VM B with this packet, and which rule decides (pure).

A trace runs a packet built from the two VMs' addresses and a protocol
(``tcp/443``, ``udp/53``, ``icmp``, ``icmpv6``) over IPv4 or IPv6 (``family``;
over IPv6 a VM's address is its link-local one, from its MAC, unless one is
given) through the *compiled desired*
flows of each switch on its way (the shared table model,
:mod:`ryu_apps.core.table_sim`), across the fabric's links, and reports the
verdict, each switch and table passed with the flow it matched, and the
template rules behind the ACL flows (:mod:`ryu_apps.core.rule_origin`). The
edges (REST, CLI) cross-check each hop with the switch itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ryu_apps.core.cookies import decode_cookie
from ryu_apps.core.flowspec import OFPP_CONTROLLER, FlowSpec
from ryu_apps.core.ipv6_guard import link_local
from ryu_apps.core.pipeline import Table
from ryu_apps.core.rule_origin import ACL_TABLES, RuleOrigin
from ryu_apps.core.table_sim import (
    ConnectionTable,
    Packet,
    Run,
    Step,
    best_match,
    run_tables,
)

#: Protocols the pipeline handles: name -> (ip_proto, has ports, address families).
PROTOCOLS = {"tcp": (6, True, (4, 6)), "udp": (17, True, (4, 6)),
             "icmp": (1, False, (4,)), "icmpv6": (58, False, (6,))}
#: Address family -> ethertype.
FAMILIES = {4: 0x0800, 6: 0x86DD}
#: The echo of each family, named in an error about the other.
ECHO = {4: "icmp", 6: "icmpv6"}
MAX_HOPS = 32
SRC_PORT = 40000


class TraceError(ValueError):
    """A trace that cannot be run: names what was wrong (``field``: the input)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Endpoint:
    """A VM as the trace sees it: where it is attached and its addresses."""

    mac: str
    dpid: int
    port: int
    ipv4: Optional[str]
    template: str
    #: The IPv6 address it sends from (None: its link-local one, from its MAC).
    ipv6: Optional[str] = None

    @property
    def ipv6_address(self) -> str:
        """The IPv6 address a trace over IPv6 uses."""
        return self.ipv6 or link_local(self.mac)


@dataclass(frozen=True)
class Probe:
    """What is sent: ``proto`` over IPv4 or IPv6 (``family``) and, for TCP and UDP,
    the destination port."""

    proto: str
    port: Optional[int] = None
    reply: bool = False   # the answer: ports swapped, echo reply
    family: int = 4

    def __str__(self) -> str:
        text = f"{self.proto}/{self.port}" if self.port is not None else self.proto
        return text + " reply" if self.reply else text


def parse_probe(text: str, family: Optional[int] = None) -> Probe:
    """``tcp/443``, ``udp/53``, ``icmp`` or ``icmpv6`` over IPv4 or IPv6 (``family`` 4 or
    6; None: IPv6 for icmpv6, else IPv4). A TraceError names what was wrong."""
    found = re.fullmatch(r"([a-z0-9]+)(?:/(\d{1,5}))?", text.strip().lower())
    name = found.group(1) if found else text
    if found is None or name not in PROTOCOLS:
        raise TraceError("proto", f"protocol {text!r} is not one the pipeline handles "
                                  f"(expected one of: tcp/PORT, udp/PORT, icmp, icmpv6)")
    _, has_ports, families = PROTOCOLS[name]
    if family is None:
        family = families[0]
    if family not in FAMILIES:
        raise TraceError("family", f"address family {family!r} is not 4 (IPv4) or 6 (IPv6)")
    if family not in families:
        raise TraceError("proto", f"{name} is not an IPv{family} protocol: over "
                                  f"IPv{family} the echo is {ECHO[family]!r}")
    port = found.group(2)
    if has_ports and port is None:
        raise TraceError("port", f"{name} needs a destination port: {name}/PORT")
    if not has_ports and port is not None:
        raise TraceError("port", f"{name} has no ports: write {name!r} alone")
    if port is not None and not 0 < int(port) <= 0xFFFF:
        raise TraceError("port", f"port {port} outside 1..65535")
    return Probe(name, int(port) if port is not None else None, family=family)


def build_packet(src: Endpoint, dst: Endpoint, probe: Probe) -> Packet:
    """The packet ``src`` sends to ``dst`` for ``probe``."""
    ip_proto = PROTOCOLS[probe.proto][0]
    base = Packet(src.mac, dst.mac, FAMILIES[probe.family], ip_proto=ip_proto)
    if probe.family == 6:
        base = replace(base, ipv6_src=src.ipv6_address, ipv6_dst=dst.ipv6_address)
        if probe.proto == "icmpv6":
            return replace(base, icmpv6_type=129 if probe.reply else 128, icmpv6_code=0)
    else:
        for end, what in ((src, "src"), (dst, "dst")):
            if end.ipv4 is None:
                raise TraceError(what, f"VM {end.mac} has no known IPv4 address yet (it is "
                                       "learnt from its first frames); give it (--src-ip, "
                                       "--dst-ip), trace over IPv6, or try again later")
        base = replace(base, ipv4_src=src.ipv4, ipv4_dst=dst.ipv4)
        if probe.proto == "icmp":
            return replace(base, icmpv4_type=0 if probe.reply else 8, icmpv4_code=0)
    sport, dport = (probe.port, SRC_PORT) if probe.reply else (SRC_PORT, probe.port)
    if probe.proto == "tcp":
        return replace(base, tcp_src=sport, tcp_dst=dport)
    return replace(base, udp_src=sport, udp_dst=dport)


@dataclass(frozen=True)
class TableStep:
    """One table passed: the flow matched (None: no flow matched) and its rule."""

    table_id: int
    flow: Optional[FlowSpec]
    origin: Optional[RuleOrigin]

    @property
    def drops(self) -> bool:
        """The packet stopped here without being sent anywhere by this flow."""
        return self.flow is None or not self.flow.instructions


@dataclass(frozen=True)
class Hop:
    """What one switch did: entered at ``in_port``, the tables, the ports sent out of."""

    dpid: int
    in_port: int
    packet: Packet
    steps: Tuple[TableStep, ...]
    outputs: Tuple[int, ...]


@dataclass
class Trace:
    """A trace's answer."""

    src: Endpoint
    dst: Endpoint
    probe: Probe
    hops: List[Hop] = field(default_factory=list)
    delivered: bool = False
    to_controller: bool = False
    #: The answer's trace (``dst`` back to ``src``), when it was traced.
    reply: Optional["Trace"] = None

    @property
    def verdict(self) -> str:
        """``allowed`` or ``blocked``."""
        return "allowed" if self.delivered else "blocked"

    @property
    def connects(self) -> bool:
        """The packet and its answer both get through (a TCP handshake, a ping)."""
        return self.delivered and (self.reply is None or self.reply.delivered)

    @property
    def rules(self) -> List[RuleOrigin]:
        """The template rules of every ACL flow passed, in order."""
        return [s.origin for h in self.hops for s in h.steps if s.origin is not None]

    @property
    def deciding(self) -> Optional[RuleOrigin]:
        """The rule that decided: the dropping rule, else the last explicit rule that let
        the packet through (else the last default)."""
        if not self.delivered:
            for hop in self.hops:
                for step in hop.steps:
                    if step.drops and step.origin is not None:
                        return step.origin
            return None
        rules = self.rules
        explicit = [rule for rule in rules if rule.index is not None]
        chosen = explicit or rules
        return chosen[-1] if chosen else None


Flows = Callable[[int], Iterable[FlowSpec]]
Peer = Callable[[int, int], Optional[Tuple[int, int]]]
Origin = Callable[[FlowSpec], Optional[RuleOrigin]]


def trace(src: Endpoint, dst: Endpoint, probe: Probe, flows_on: Flows, peer: Peer,
          origin: Origin, connections: Optional[Dict[int, ConnectionTable]] = None) -> Trace:
    """Run ``src``'s packet for ``probe`` through the desired flows, hop by hop.

    ``flows_on(dpid)``: a switch's desired flows; ``peer(dpid, port)``: the other
    end of a link between managed switches, or None; ``origin(flow)``: its rule;
    ``connections``: each switch's connection tracker (share it between a packet
    and its answer, so a stateful template sees the answer as a reply).
    """
    connections = {} if connections is None else connections
    result = Trace(src, dst, probe)
    tables: Dict[int, Dict[int, List[FlowSpec]]] = {}
    frontier = [(src.dpid, src.port, build_packet(src, dst, probe))]
    seen = set()
    while frontier and len(result.hops) < MAX_HOPS:
        dpid, in_port, packet = frontier.pop(0)
        if (dpid, in_port, packet.vlan_vid) in seen:
            continue
        seen.add((dpid, in_port, packet.vlan_vid))
        by_table = tables.get(dpid)
        if by_table is None:
            by_table = tables[dpid] = _by_table(flows_on(dpid))
        run = run_tables(_lookup(by_table), in_port, replace(packet, metadata=0, ct_state=0),
                         connections=connections.setdefault(dpid, ConnectionTable()))
        result.hops.append(_hop(dpid, in_port, packet, run, origin))
        for port, sent in run.outputs:
            if port == OFPP_CONTROLLER:
                result.to_controller = True
                continue
            if (dpid, port) == (dst.dpid, dst.port):
                result.delivered = True
                continue
            other = peer(dpid, port)
            if other is not None:
                frontier.append((other[0], other[1], replace(sent, metadata=0)))
    return result


def _by_table(flows: Iterable[FlowSpec]) -> Dict[int, List[FlowSpec]]:
    found: Dict[int, List[FlowSpec]] = {}
    for spec in flows:
        if isinstance(spec, FlowSpec):
            found.setdefault(spec.table_id, []).append(spec)
    return found


def _lookup(by_table: Dict[int, List[FlowSpec]]):
    def lookup(table_id: int, packet: Packet, in_port: int) -> Optional[FlowSpec]:
        return best_match(by_table.get(table_id, ()), table_id, packet, in_port)
    return lookup


def _hop(dpid: int, in_port: int, packet: Packet, run: Run, origin: Origin) -> Hop:
    steps = tuple(TableStep(s.table_id, s.flow, _origin_of(s, origin)) for s in run.steps)
    return Hop(dpid, in_port, packet, steps, tuple(p for p, _ in run.outputs))


def _origin_of(step: Step, origin: Origin) -> Optional[RuleOrigin]:
    if step.flow is None or Table(step.table_id) not in ACL_TABLES:
        return None
    if decode_cookie(step.flow.cookie) is None:
        return None
    return origin(step.flow)

