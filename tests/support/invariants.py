"""Checks that hold after every event an engine applies to fake switches.

- :func:`check_reapply`: applying the same plan a second time changes nothing
  (FAUCET's check in ``clib/valve_test_lib.py``: flow-mods are idempotent);
- :func:`check_reconnect`: a switch reconnecting with exactly the entries it
  holds gets an empty plan (desired state equals what the switches hold);
- :func:`check_recompute`: a fresh engine fed the same facts (switches, links,
  bound VMs) ends with the same tables, binding ids aside;
- :func:`check_delivery`: the frames VMs send arrive where the oracle
  (tests/support/oracle.py) says, and nowhere else.

:func:`check_event` runs the first three; unit labs call it after each event.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import AbstractSet, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ryu_apps.core.binding import VmState
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER, Meter, MeterSpec
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.pipeline import BINDING_METER_BASE, MAX_BINDING_ID, MOVED_PORT_METER_OFFSET
from tests.support.dhcp_peer import dhcp_ack
from tests.support.fake_switches import FakeSwitches, Packet
from tests.support.oracle import Exit, Facts, Oracle, Vm, arp_broadcast, probes

#: Cookie kinds whose owner id is a binding id.
_BY_BINDING = (CookieKind.BINDING, CookieKind.MIGRATION, CookieKind.LIVENESS)
#: Owners a fresh engine cannot know from the facts: refused MACs, liveness probes.
_NOT_FACTS = (CookieKind.QUARANTINE, CookieKind.LIVENESS)
#: Binding states a fresh engine is brought to by replaying packets and notices.
_REPLAYABLE = (VmState.ACTIVE, VmState.PROVISIONING, VmState.SUSPENDED)


def snapshot(switches: FakeSwitches) -> Dict[int, frozenset]:
    """Every switch's flows and meters, comparable."""
    dpids = set(switches.tables) | set(switches.meters)
    return {dpid: frozenset(switches.entries(dpid)) for dpid in dpids}


def check_reapply(switches: FakeSwitches, plans: Union[Plan, Sequence[Plan]]) -> None:
    """Applying the event's plans again, in order (they were just applied), must change
    nothing."""
    before = snapshot(switches)
    for plan in [plans] if isinstance(plans, Plan) else plans:
        switches.apply(plan)
    after = snapshot(switches)
    changed = sorted(hex(d) for d in set(before) | set(after)
                     if before.get(d, frozenset()) != after.get(d, frozenset()))
    assert not changed, f"re-applying the last plan changed the tables of {changed}"


def check_reconnect(engine: ProvisioningEngine, switches: FakeSwitches) -> None:
    """Each switch reconnecting with exactly what it holds must get an empty plan."""
    for dpid, info in sorted(engine.fabric.switches.items()):
        plan = engine.switch_up(dpid, info.role, info.name, switches.entries(dpid), now=0.0)
        changes = plan.changes.get(dpid)
        assert changes is None or not changes, (
            f"reconnect of {info.name} ({dpid:#x}) with its own entries planned "
            f"adds {sorted(map(str, changes.adds))[:3]} deletes "
            f"{sorted(map(str, changes.deletes))[:3]}")
        assert not plan.flow_count(), f"reconnect of {info.name} changed other switches"


def check_event(engine: ProvisioningEngine, switches: FakeSwitches,
                plans: Union[Plan, Sequence[Plan]]) -> None:
    """The invariants every applied event must keep. ``plans``: what the event
    returned and what the messages it carried produced (the app delivers those
    before it handles the next event), all just applied."""
    check_reapply(switches, plans)
    check_reconnect(engine, switches)
    check_recompute(engine, switches)


# -- a full recompute ----------------------------------------------------------------------
def replayable(engine: ProvisioningEngine) -> bool:
    """Whether a fresh engine can be brought to this engine's state from the facts:
    no migration in flight (its progress is history, not a fact)."""
    return not engine.incoming and not engine.outgoing and all(
        b.state in _REPLAYABLE for b in engine.bindings.values())


def ipv6_from(mac: str, address: str) -> bytes:
    """A UDP datagram VM ``mac`` sends from IPv6 ``address`` (the fact its binding is)."""
    src = bytes.fromhex(mac.replace(":", ""))
    body = struct.pack("!HHHH", 40000, 9, 8, 0)
    header = struct.pack("!IHBB", 6 << 28, len(body), 17, 64) \
        + ipaddress.IPv6Address(address).packed + ipaddress.IPv6Address("ff02::1").packed
    return bytes.fromhex("333300000001") + src + struct.pack("!H", 0x86DD) + header + body


def dhcpv6_reply(mac: str, address: str) -> bytes:
    """A DHCPv6 Reply leasing ``address`` to VM ``mac`` (the fact its binding is)."""
    iaaddr = struct.pack("!HH", 5, 24) + ipaddress.IPv6Address(address).packed \
        + struct.pack("!II", 3600, 7200)
    ia_na = struct.pack("!HHIII", 3, 12 + len(iaaddr), 1, 1800, 2880) + iaaddr
    payload = bytes([7, 0, 0, 1]) + ia_na
    udp = struct.pack("!HHHH", 547, 546, 8 + len(payload), 0) + payload
    header = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) \
        + ipaddress.IPv6Address("fe80::1").packed + ipaddress.IPv6Address("fe80::2").packed
    return bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000000001") \
        + struct.pack("!H", 0x86DD) + header + udp


def fresh_engine(engine: ProvisioningEngine) -> Tuple[ProvisioningEngine, FakeSwitches]:
    """A new engine fed the facts ``engine`` holds, and the switches its plans built.

    Each VM speaks at its port (with its address, if one is bound; a DHCPACK through
    the server's uplink for an address bound from DHCP), gets the
    template it is bound with (a notice, where a template change gave it another
    than its MAC's), is confirmed if active and suspended if suspended.
    """
    fresh = ProvisioningEngine(engine.main_library, engine.scheme, engine.domains,
                               engine.domain_libraries, engine.identity_default)
    switches = FakeSwitches()

    def feed(plan: Plan) -> None:
        switches.apply(plan)

    for dpid, info in sorted(engine.fabric.switches.items()):
        feed(fresh.switch_up(dpid, info.role, info.name, [], now=0.0))
    for a, b in engine.fabric.links():
        feed(fresh.link_seen(a, b, now=0.0))
    for binding in sorted(engine.bindings.values(), key=lambda b: b.binding_id):
        if binding.state not in _REPLAYABLE:
            continue
        feed(fresh.packet_in(binding.dpid, binding.port, binding.mac, b"frame", now=0.0).plan)
        template = engine.template_of(binding)
        if binding.ip is not None and template is not None \
                and template.virtual_switch.binds_from_dhcp:
            feed(fresh.dhcp_seen(binding.dpid, min(engine.fabric.link_ports(binding.dpid)),
                                 dhcp_ack(binding.mac, binding.ip), now=0.0))
        elif binding.ip is not None:
            feed(fresh.packet_in(binding.dpid, binding.port, binding.mac, b"frame",
                                 sender_ip=binding.ip, now=0.0).plan)
        for address in binding.ipv6:
            learnt = fresh.ipv6_source(binding.dpid, binding.port, binding.mac,
                                       ipv6_from(binding.mac, address))
            if learnt is not None:
                feed(learnt.plan)
            else:   # leased: a trusted server's DHCPv6 reply, through the server's uplink
                uplink = next(end.port for link in fresh.fabric.links() for end in link
                              if end.dpid == binding.dpid)
                leased = fresh.dhcpv6_snooped(binding.dpid, uplink,
                                              dhcpv6_reply(binding.mac, address), now=0.0)
                feed(leased or Plan())
        if fresh.bindings[binding.mac].template_id != binding.template_id:
            feed(fresh.notify(Notice.TEMPLATE_CHANGE, binding.mac,
                              template_id=binding.template_id, now=0.0).plan)
        if binding.state is VmState.ACTIVE:
            fresh.confirm([binding.mac])
        elif binding.state is VmState.SUSPENDED:
            feed(fresh.notify(Notice.SUSPENDED, binding.mac, now=0.0).plan)
    return fresh, switches


def check_recompute(engine: ProvisioningEngine, switches: FakeSwitches) -> None:
    """A fresh engine fed the same facts ends with the same tables (binding ids aside)."""
    if not replayable(engine):
        return
    fresh, rebuilt = fresh_engine(engine)
    assert {m: (b.dpid, b.port, b.template_id, b.state, b.ip, b.ipv6)
            for m, b in fresh.bindings.items()} == \
        {m: (b.dpid, b.port, b.template_id, b.state, b.ip, b.ipv6)
         for m, b in engine.bindings.items()}, "the facts did not rebuild the same bindings"
    names = {b.binding_id: b.mac for b in engine.bindings.values()}
    fresh_names = {b.binding_id: b.mac for b in fresh.bindings.values()}
    # templates' shared flows lingering after their last VM left are history, not facts
    lingering = engine.state.desired.templates.idle_flows_on
    fresh_lingering = fresh.state.desired.templates.idle_flows_on
    for dpid, info in sorted(engine.fabric.switches.items()):
        held = _canonical(set(switches.entries(dpid)) - lingering(dpid), names)
        recomputed = _canonical(set(rebuilt.entries(dpid)) - fresh_lingering(dpid),
                                fresh_names)
        assert held == recomputed, (
            f"{info.name} ({dpid:#x}) differs from a full recompute:\n"
            f"  only held: {sorted(map(str, held - recomputed))[:4]}\n"
            f"  only recomputed: {sorted(map(str, recomputed - held))[:4]}")


def _named_meter(meter_id: int, names: Dict[int, str]) -> object:
    if BINDING_METER_BASE < meter_id <= BINDING_METER_BASE + MAX_BINDING_ID:
        return ("meter of", names.get(meter_id - BINDING_METER_BASE, meter_id))
    if MOVED_PORT_METER_OFFSET < meter_id <= MOVED_PORT_METER_OFFSET + MAX_BINDING_ID:
        return ("port meter of", names.get(meter_id - MOVED_PORT_METER_OFFSET, meter_id))
    return meter_id


def _named_cookie(cookie: int, names: Dict[int, str]) -> object:
    owner = decode_cookie(cookie)
    if owner is not None and owner.kind in _BY_BINDING:
        return (owner.kind.name, owner.template_id, names.get(owner.owner_id, owner.owner_id))
    return cookie


def _canonical(entries: Iterable, names: Dict[int, str]) -> frozenset:
    """Entries with binding ids replaced by their VMs' MACs; unfactual owners left out."""
    out: Set[tuple] = set()
    for entry in entries:
        owner = decode_cookie(entry.cookie)
        if owner is not None and owner.kind in _NOT_FACTS:
            continue
        if isinstance(entry, MeterSpec):
            out.add(("meter", _named_meter(entry.meter_id, names), entry.rate_kbps,
                     entry.burst_kbits, entry.packets))
            continue
        instructions = tuple(("meter", _named_meter(i.meter_id, names))
                             if isinstance(i, Meter) else i for i in entry.instructions)
        out.add((entry.table_id, entry.priority, entry.match, instructions,
                 _named_cookie(entry.cookie, names), entry.idle_timeout))
    return frozenset(out)


# -- delivery ------------------------------------------------------------------------------
class Wiring:
    """The links of the facts, for tracing frames across switches."""

    def __init__(self, facts: Facts) -> None:
        self._peer: Dict[PortRef, PortRef] = {}
        for link in facts.links:
            a, b = tuple(link)
            self._peer[a], self._peer[b] = b, a

    def peer(self, end: PortRef) -> Optional[PortRef]:
        """The other end of a link."""
        return self._peer.get(end)


def _trace(switches: FakeSwitches, wiring: Wiring, dpid: int, port: int,
           packet: Packet) -> Tuple[List[Exit], List[Exit]]:
    """(exits at ports, exits to the controller) of one frame, unsolicited: the oracle
    knows no connections, so no earlier probe's connection lets it pass a stateful side."""
    exits, controller = [], []
    for here, out_port, out in switches.trace(wiring, dpid, port, packet,  # type: ignore[arg-type]
                                              unsolicited=True):
        if out_port == OFPP_CONTROLLER:
            controller.append((here, out_port))
            continue
        assert out == Packet(packet.eth_src, packet.eth_dst, packet.eth_type, 0,
                             packet.ip_proto, packet.ipv4_src, packet.ipv4_dst,
                             packet.tcp_src, packet.tcp_dst, packet.udp_src, packet.udp_dst,
                             packet.arp_spa), f"{packet} left {here:#x}:{out_port} as {out}"
        exits.append((here, out_port))
    return exits, controller


def _expect(switches: FakeSwitches, wiring: Wiring, sender: Vm, packet: Packet,
            expected: Set[Exit], may_punt: bool,
            open_ports: AbstractSet[Exit] = frozenset(), at_most: bool = False) -> None:
    """The frame leaves exactly at ``expected`` (or only there, ``at_most``), apart
    from ``open_ports``; a copy to the controller only if ``may_punt``."""
    exits, controller = _trace(switches, wiring, sender.dpid, sender.port, packet)
    exits = [e for e in exits if e not in open_ports]
    expected = set(expected) - set(open_ports)
    what = (f"{packet.eth_src}@{sender.dpid:#x}:{sender.port} -> {packet.eth_dst} "
            f"{packet.eth_type:#06x}/{packet.ip_proto} {packet.tcp_src}->{packet.tcp_dst}")
    assert len(set(exits)) == len(exits), f"{what}: delivered twice: {sorted(exits)}"
    fits = set(exits) <= expected if at_most else sorted(exits) == sorted(expected)
    assert fits, f"{what}: left at {sorted(exits)}, expected {sorted(expected)}" + \
        (" at most" if at_most else "")
    assert may_punt or not controller, f"{what}: copy to the controller"
    assert all(dpid == sender.dpid for dpid, _ in controller), \
        f"{what}: punted away from its ingress switch: {controller}"


def check_delivery(switches: FakeSwitches, facts: Facts, ips: Dict[str, str],
                   spare_port: int) -> None:
    """Every VM's frames to every VM (and broadcasts) leave exactly where the oracle says.

    ``ips`` gives each MAC its address; ``spare_port`` is a port number no VM is
    bound to on any switch (for frames from a port a VM is not bound to).
    """
    oracle, wiring = Oracle(facts), Wiring(facts)
    for sender in facts.vms + facts.incoming:
        punts = not sender.forwards or (sender.template.virtual_switch.bind_ip
                                        and sender.ip is None)
        waiting = sender.state is VmState.PRE_PROVISIONED
        packets = [packet for receiver in facts.vms if receiver.mac != sender.mac
                   for packet in probes(sender, receiver.mac, ips[receiver.mac],
                                        ips[sender.mac])]
        for packet in packets + [arp_broadcast(sender, ips[sender.mac])]:
            _expect(switches, wiring, sender, packet, oracle.exits(sender, packet),
                    punts or waiting, oracle.open_exits(sender, packet), at_most=waiting)
        _check_spoofing(switches, wiring, facts, sender, ips, spare_port)


def _check_spoofing(switches: FakeSwitches, wiring: Wiring, facts: Facts, sender: Vm,
                    ips: Dict[str, str], spare_port: int) -> None:
    """Another MAC from the VM's port, or its MAC from a port it is not bound to: nowhere."""
    others = [vm for vm in facts.vms if vm.mac != sender.mac]
    for receiver in others[:1]:
        for packet in list(probes(sender, receiver.mac, ips[receiver.mac],
                                  ips[sender.mac]))[:1]:
            forged = Packet("00:fa:de:ad:be:ef", packet.eth_dst, packet.eth_type,
                            ip_proto=packet.ip_proto, ipv4_src=packet.ipv4_src,
                            ipv4_dst=packet.ipv4_dst)
            _expect(switches, wiring, sender, forged, set(), True)
            elsewhere = Vm(sender.mac, sender.dpid, spare_port, sender.template, sender.state)
            _expect(switches, wiring, elsewhere, packet, set(), True)


def facts_of(engine: ProvisioningEngine, library=None) -> Facts:
    """The facts an engine was given: switches, links, bound VMs (with templates from
    ``library``, default the engine's main library)."""
    library = library or engine.main_library
    roles = {dpid: info.role for dpid, info in engine.fabric.switches.items()}
    links = {frozenset((a, b)) for a, b in engine.fabric.links()}

    def vm(binding) -> Vm:
        template = library.get(binding.template_id)
        assert template is not None and template.vlan == binding.vlan, binding
        return Vm(binding.mac, binding.dpid, binding.port, template, binding.state, binding.ip)

    return Facts(roles, links, [vm(b) for b in engine.bindings.values()],
                 [vm(b) for b in engine.incoming.values()])
