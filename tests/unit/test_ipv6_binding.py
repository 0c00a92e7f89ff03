"""Global IPv6 addresses bound to a VM (core/ipv6_binding.py) on fake switches:
``bind_ipv6: first_seen`` binds the first global source a VM sends from, refuses one
another VM holds, drops every other global source afterwards; the bound addresses
ride the binding through a migration notice, the store's rows and a restart."""

from __future__ import annotations

import pytest

from ryu_apps.core import ipv6_binding, ipv6_guard
from ryu_apps.core.device_messages import MigrationNotice
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.flowspec import OFPP_CONTROLLER, Meter
from ryu_apps.core.handoff_engine import binding_record
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.pipeline import IPV6_GUARD_METER, PACKET_IN_METER, Priority, Table
from ryu_apps.core.template_validation import TemplateValidationError, build_library
from ryu_apps.lab.vmtools.forge import mac_bytes
from ryu_apps.lab.vmtools.forge6 import ALL_NODES_MAC, frame, icmpv6_body, icmpv6_packet, \
    udp6_packet
from ryu_apps.store.writes import binding_row
from tests.support.small_fabric import bring_up
from tests.unit.test_shared_pipeline import S11, S12, Lab

FIRST, LINKED, PINNED = 0xB0, 0xB1, 0xB2
VM_A, VM_B, VM_C = "00:b0:00:00:00:01", "00:b0:00:00:00:02", "00:b0:00:00:00:03"
OLD = "00:b1:00:00:00:01"      # bind_ipv6: link_local
PIN = "00:b2:00:00:00:01"      # first_seen with an allowed prefix
GLOBAL_A, GLOBAL_B, OTHER = "2001:db8::a", "2001:db8::b", "2001:db8::99"


def _template(template_id: int, name: str, **vswitch) -> dict:
    return {"id": template_id, "name": name, "description": name, "vlan": 100,
            "virtual_switch": {"default_action": "allow", "bind_ip": True, **vswitch},
            "access_port": {"default_action": "allow"}}


LIBRARY = build_library([("lab.yaml", {"templates": [
    _template(FIRST, "first", bind_ipv6="first_seen"),
    _template(LINKED, "linked", bind_ipv6="link_local"),
    _template(PINNED, "pinned", bind_ipv6="first_seen", allowed_addresses=["2001:db8:f::/64"]),
]})])


def echo(mac: str, src: str, dst_mac: str = ALL_NODES_MAC, dst: str = "ff02::1") -> bytes:
    return frame(mac_bytes(mac), dst_mac, icmpv6_packet(src, dst, 128,
                                                       icmpv6_body("echo", 1, None, None)))


def nd(mac: str, src: str, kind: str, target: str, lladdr: str | None = None) -> bytes:
    """An NS or NA (from ::, an NS is a DAD probe: to the target's solicited-node group)."""
    from tests.unit.test_ipv6_guard import solicited_node
    dst = solicited_node(target) if src == "::" else "ff02::1"
    return frame(mac_bytes(mac), ALL_NODES_MAC, icmpv6_packet(
        src, dst, ipv6_guard.ICMPV6_NS if kind == "ns" else ipv6_guard.ICMPV6_NA,
        icmpv6_body(kind, 0, target, lladdr)))


def packet_of(data: bytes, mac: str):
    """The fake switches' view of an IPv6 frame ``data`` (ICMPv6 only)."""
    from ryu_apps.core.ipv6_frames import parse_ipv6
    from tests.unit.test_ipv6_guard import icmp6
    info = parse_ipv6(data)
    nd_fields = {}
    if info.nd_target is not None:
        nd_fields["ipv6_nd_target"] = info.nd_target
    if info.nd_lladdr is not None:
        nd_fields["ipv6_nd_sll" if info.icmp_type == 135 else "ipv6_nd_tll"] = info.nd_lladdr
    return icmp6(mac, info.src, info.icmp_type, dst=info.dst, **nd_fields)


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, VM_A, "10.0.0.1")
    lab.vm(S12, 2, VM_B, "10.0.0.2")
    lab.vm(S11, 3, VM_C, "10.0.0.3")
    return lab


def outputs(lab: Lab, dpid: int, port: int, packet) -> set:
    return {(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, dpid, port, packet)}


def meter_of(lab: Lab, dpid: int, port: int, packet):
    _, classified = lab.switches.run_pipeline(dpid, port, packet, table_id=Table.CLASSIFY)
    spec = lab.switches.lookup(dpid, Table.ANTI_SPOOF, classified, port)
    return next((i.meter_id for i in spec.instructions if isinstance(i, Meter)), None)


def learn(lab: Lab, dpid: int, port: int, mac: str, data: bytes):
    verdict = lab.engine.ipv6_source(dpid, port, mac, data)
    if verdict is not None:
        lab.apply(verdict.plan)
    return verdict


def test_the_first_global_source_is_punted_bound_and_then_passes(lab):
    data = echo(VM_A, GLOBAL_A)
    packet = packet_of(data, VM_A)
    assert outputs(lab, S11, 1, packet) == {(S11, OFPP_CONTROLLER)}
    assert meter_of(lab, S11, 1, packet) == PACKET_IN_METER   # the learn punt, not the guard
    verdict = learn(lab, S11, 1, VM_A, data)
    assert verdict.refused is None and verdict.plan.packet_outs[0].data == data
    assert f"VM {VM_A} bound to IPv6 {GLOBAL_A}" in verdict.plan.notes[0]
    assert lab.engine.bindings[VM_A].ipv6 == (GLOBAL_A,)
    assert (S12, 2) in outputs(lab, S11, 1, packet) and \
        (S11, OFPP_CONTROLLER) not in outputs(lab, S11, 1, packet)
    # its own ND for the bound address passes too
    for claim in (nd(VM_A, GLOBAL_A, "ns", OTHER, VM_A), nd(VM_A, GLOBAL_A, "na", GLOBAL_A),
                  nd(VM_A, "::", "ns", GLOBAL_A)):
        assert (S12, 2) in outputs(lab, S11, 1, packet_of(claim, VM_A))


def test_a_second_global_source_is_dropped_through_the_guard(lab):
    learn(lab, S11, 1, VM_A, echo(VM_A, GLOBAL_A))
    second = echo(VM_A, OTHER)
    assert outputs(lab, S11, 1, packet_of(second, VM_A)) == {(S11, OFPP_CONTROLLER)}
    assert meter_of(lab, S11, 1, packet_of(second, VM_A)) == IPV6_GUARD_METER
    assert lab.engine.ipv6_source(S11, 1, VM_A, second) is None   # the guard's log takes it
    assert lab.engine.bindings[VM_A].ipv6 == (GLOBAL_A,)


def test_an_address_another_vm_holds_is_refused_and_nothing_changes(lab):
    learn(lab, S11, 1, VM_A, echo(VM_A, GLOBAL_A))
    before = set(lab.switches.flows(S12))
    verdict = learn(lab, S12, 2, VM_B, echo(VM_B, GLOBAL_A))
    assert verdict.refused == (ipv6_binding.HELD_ADDRESS,
                               f"source {GLOBAL_A} is bound to VM {VM_A}")
    assert not verdict.plan.packet_outs and lab.engine.bindings[VM_B].ipv6 == ()
    assert set(lab.switches.flows(S12)) == before
    # ... and it may still bind an address of its own
    assert learn(lab, S12, 2, VM_B, echo(VM_B, GLOBAL_B)).refused is None
    assert lab.engine.bindings[VM_B].ipv6 == (GLOBAL_B,)


def test_neighbour_discovery_claiming_another_vm_s_global_address_is_dropped(lab):
    learn(lab, S11, 1, VM_A, echo(VM_A, GLOBAL_A))
    learn(lab, S12, 2, VM_B, echo(VM_B, GLOBAL_B))
    # B, bound, advertises A's address from its own: the switch drops it (guard's punt)
    claim = nd(VM_B, GLOBAL_B, "na", GLOBAL_A, VM_B)
    assert outputs(lab, S12, 2, packet_of(claim, VM_B)) == {(S12, OFPP_CONTROLLER)}
    assert meter_of(lab, S12, 2, packet_of(claim, VM_B)) == IPV6_GUARD_METER
    assert lab.engine.ipv6_source(S12, 2, VM_B, claim) is None
    # C, still learning, advertises A's address from it: refused, nothing bound
    verdict = learn(lab, S11, 3, VM_C, nd(VM_C, GLOBAL_A, "na", GLOBAL_A, VM_C))
    assert verdict.refused[0] == ipv6_binding.HELD_ADDRESS
    # ... or another target from an unheld address, or with another VM's MAC
    for bad in (nd(VM_C, OTHER, "na", GLOBAL_B), nd(VM_C, OTHER, "ns", GLOBAL_B, VM_A)):
        verdict = learn(lab, S11, 3, VM_C, bad)
        assert verdict.refused[0] in (ipv6_guard.NA_CLAIM, ipv6_guard.NS_CLAIM)
    assert lab.engine.bindings[VM_C].ipv6 == ()


def test_link_local_and_allowed_addresses_are_never_bound(lab):
    lab.vm(S12, 4, OLD, "10.0.0.4")
    lab.vm(S12, 5, PIN, "10.0.0.5")
    assert lab.engine.ipv6_source(S12, 4, OLD, echo(OLD, GLOBAL_A)) is None   # link_local
    assert lab.engine.ipv6_source(S11, 1, VM_A, echo(VM_A, "fe80::1")) is None
    pinned = learn(lab, S12, 5, PIN, echo(PIN, "2001:db8:f::7"))
    assert pinned.refused is None and len(pinned.plan.packet_outs) == 1
    assert lab.engine.bindings[PIN].ipv6 == ()


def deliver(lab: Lab, plan) -> None:
    """Apply a plan, and hand its device messages back to the engine (one device here)."""
    lab.apply(plan)
    for message in plan.messages:
        deliver(lab, lab.engine.receive(message, now=0.0))


def test_the_bound_address_rides_a_migration_notice(lab):
    learn(lab, S11, 1, VM_A, echo(VM_A, GLOBAL_A))
    lab.apply(lab.engine.vm_attached(S12, 7, VM_A, now=0.0).plan)
    ack = lab.engine.notify(Notice.MIGRATING, VM_A, server=hex(S12), now=0.0)
    notices = [m for m in ack.plan.messages if isinstance(m, MigrationNotice)]
    assert notices and notices[0].ipv6 == (GLOBAL_A,)
    deliver(lab, ack.plan)
    incoming = lab.engine.incoming[VM_A]   # pre-provisioned at its destination port
    assert (incoming.dpid, incoming.port, incoming.ipv6) == (S12, 7, (GLOBAL_A,))
    assert S11 in {d for d, _ in outputs(lab, S12, 7, packet_of(echo(VM_A, GLOBAL_A), VM_A))}
    assert outputs(lab, S12, 7, packet_of(echo(VM_A, OTHER), VM_A)) == \
        {(S12, OFPP_CONTROLLER)}


def test_the_bound_address_rides_a_move_found_by_its_packets(lab):
    """No OVSDB, no notice (the conformance sweep's seed 4): the VM's port goes away, the
    search for it finds it speaking at a new port; it keeps its bound IPv6 address there
    as it keeps its IPv4 one, and another global source stays refused."""
    learn(lab, S11, 1, VM_A, echo(VM_A, GLOBAL_A))
    lab.apply(lab.engine.port_up(S12, 7, now=1.0))
    lab.apply(lab.engine.port_down(S11, 1, now=1.2))
    assert VM_A not in lab.engine.bindings
    lab.apply(lab.engine.packet_in(S12, 7, VM_A, b"rarp", now=1.3).plan)
    binding = lab.engine.bindings[VM_A]
    assert (binding.dpid, binding.port, binding.ip) == (S12, 7, "10.0.0.1")
    assert binding.ipv6 == (GLOBAL_A,)
    assert S11 in {d for d, _ in outputs(lab, S12, 7, packet_of(echo(VM_A, GLOBAL_A), VM_A))}
    assert meter_of(lab, S12, 7, packet_of(echo(VM_A, OTHER), VM_A)) == IPV6_GUARD_METER
    assert VM_A not in lab.engine.state.ports.expected_ipv6


def test_the_bound_address_rides_a_move_accepted_when_the_old_port_goes(lab):
    """No OVSDB, no notice, the VM's first frame at its new port comes while its old port
    is still there (held as a conflict), then the old port goes: the move is accepted
    with its bound IPv6 address (the conformance sweep's seed 10, packets/qemu)."""
    learn(lab, S11, 1, VM_A, echo(VM_A, GLOBAL_A))
    lab.apply(lab.engine.packet_in(S12, 7, VM_A, b"rarp", now=1.0).plan)
    assert lab.engine.bindings[VM_A].dpid == S11   # a conflict, not a move yet
    lab.apply(lab.engine.port_down(S11, 1, now=1.2))
    binding = lab.engine.bindings[VM_A]
    assert (binding.dpid, binding.port, binding.ipv6) == (S12, 7, (GLOBAL_A,))
    assert meter_of(lab, S12, 7, packet_of(echo(VM_A, OTHER), VM_A)) == IPV6_GUARD_METER
    assert VM_A not in lab.engine.state.ports.expected_ipv6


def test_the_store_row_and_a_restart_keep_the_bound_addresses(lab):
    learn(lab, S11, 1, VM_A, echo(VM_A, GLOBAL_A))
    record = binding_record(lab.engine, lab.engine.bindings[VM_A])
    assert record.ipv6 == (GLOBAL_A,)
    row = binding_row({"mac": VM_A, "owner": "p1", "ip": "10.0.0.1",
                       "ipv6": [GLOBAL_B, GLOBAL_A]})
    assert row.ipv6 == (GLOBAL_A, GLOBAL_B) and binding_row({"mac": VM_A}).ipv6 == ()
    # a hand-off's row carries them to the process the VM arrives at
    handed = "00:b0:00:00:00:04"
    lab.apply(lab.engine.expect_ip(handed, "10.0.0.9", (GLOBAL_B,)))
    lab.vm(S12, 8, handed)
    assert lab.engine.bindings[handed].ipv6 == (GLOBAL_B,)
    fresh = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    bring_up(fresh, lambda plan: plan, held=lab.switches.entries)
    assert fresh.bindings[VM_A].ipv6 == (GLOBAL_A,)
    assert fresh.bindings[VM_B].ipv6 == ()


def test_the_learn_punt_sits_above_the_guard_and_only_while_learning(lab):
    learning = [f for f in lab.switches.flows(S11) if f.priority == Priority.IPV6_LEARN]
    assert len(learning) == 2   # 2000::/3 and fc00::/7, shared by the template's VMs
    assert outputs(lab, S11, 1, packet_of(echo(VM_A, "fd00::1"), VM_A)) == \
        {(S11, OFPP_CONTROLLER)}
    assert meter_of(lab, S11, 1, packet_of(echo(VM_A, "fd00::1"), VM_A)) == PACKET_IN_METER
    udp = frame(mac_bytes(VM_A), ALL_NODES_MAC, udp6_packet(GLOBAL_A, "ff02::1:2", (547, 546),
                                                            0))
    assert lab.engine.ipv6_source(S11, 1, VM_A, udp) is None   # rogue DHCPv6: the guard's


def test_bind_ipv6_modes_are_validated_with_a_suggestion():
    assert LIBRARY.get(FIRST).virtual_switch.bind_ipv6 == "first_seen"
    ok = build_library([("t.yaml", {"templates": [_template(1, "t", bind_ipv6="dhcpv6")]})])
    assert ok.get(1).virtual_switch.bind_ipv6 == "dhcpv6"
    with pytest.raises(TemplateValidationError) as raised:
        build_library([("t.yaml", {"templates": [_template(1, "t", bind_ipv6="first-seen")]})])
    assert [str(e) for e in raised.value.errors] == [
        "t.yaml: template 1 't': virtual_switch.bind_ipv6: expected 'link_local' or "
        "'first_seen' or 'dhcpv6' or false, got 'first-seen'; did you mean 'first_seen'?"]
