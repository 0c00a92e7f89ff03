"""The rogue-DHCP-server guard and ``allowed_addresses`` on fake switches, their template
keys' validation (located errors), and the guard's frame parser (fuzzed)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_apps.core import address_guard, ipv6_guard
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.template_validation import TemplateValidationError, build_library
from tests.support.fake_switches import Packet
from tests.unit.test_ipv6_guard import arrivals, dad, delivered, icmp6, punted
from tests.support.small_fabric import bring_up
from tests.unit.test_shared_pipeline import S11, S12, Lab

CLIENT, SERVER, PINNED = 0xB0, 0xB1, 0xB2
VM_A, VM_B = "00:b0:00:00:00:01", "00:b0:00:00:00:02"
DHCPD = "00:b1:00:00:00:01"
VIP = "00:b2:00:00:00:01"


def _template(template_id: int, name: str, **vswitch) -> dict:
    return {"id": template_id, "name": name, "description": name, "vlan": 100,
            "virtual_switch": {"default_action": "allow", "bind_ip": True, **vswitch},
            "access_port": {"default_action": "allow"}}


LIBRARY = build_library([("lab.yaml", {"templates": [
    _template(CLIENT, "client", bind_ipv6="link_local"),
    _template(SERVER, "dhcpd", dhcp_server=True),
    _template(PINNED, "pinned", bind_ipv6="link_local",
              allowed_addresses=["10.0.9.0/24", "10.0.8.7", "2001:db8:9::/64",
                                 "2001:db8:8::7"]),
]})])


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, VM_A, "10.0.0.1")
    lab.vm(S12, 2, VM_B, "10.0.0.2")
    lab.vm(S11, 3, DHCPD, "10.0.0.3")
    lab.vm(S12, 4, VIP, "10.0.0.4")
    return lab


def udp4(src_mac: str, src: str, sport: int, dport: int,
         dst_mac: str = "ff:ff:ff:ff:ff:ff") -> Packet:
    return Packet(src_mac, dst_mac, 0x0800, ip_proto=17, ipv4_src=src,
                  ipv4_dst="255.255.255.255", udp_src=sport, udp_dst=dport)


def udp6(src_mac: str, src: str, sport: int, dport: int, dst_mac: str = VM_B) -> Packet:
    return Packet(src_mac, dst_mac, 0x86DD, ip_proto=17, ipv6_src=src, ipv6_dst="fe80::1",
                  udp_src=sport, udp_dst=dport)


# -- the rogue-server guard ------------------------------------------------------------------
def test_a_vm_that_is_no_dhcp_server_cannot_answer_dhcp_in_either_family(lab):
    offer = udp4(VM_A, "10.0.0.1", 67, 68)
    assert delivered(lab, S11, 1, offer) == set() and punted(lab, S11, 1, offer)
    advertise = udp6(VM_A, ipv6_guard.link_local(VM_A), 547, 546)
    assert delivered(lab, S11, 1, advertise) == set() and punted(lab, S11, 1, advertise)
    # its own DHCP client messages still pass, as does other UDP from its address
    assert (S12, 2) in delivered(lab, S11, 1, udp4(VM_A, "10.0.0.1", 68, 67))
    assert (S12, 2) in delivered(lab, S11, 1, udp4(VM_A, "10.0.0.1", 5353, 67))


def test_a_dhcp_server_template_answers_and_is_not_punted(lab):
    offer = udp4(DHCPD, "10.0.0.3", 67, 68)
    assert {(S11, 1), (S12, 2)} <= delivered(lab, S11, 3, offer)
    assert not punted(lab, S11, 3, offer)
    server = LIBRARY.get(SERVER).virtual_switch
    assert address_guard.template_flows(S11, SERVER, server, cookie=1) == set()


def test_the_guard_drops_before_the_learning_punt_of_an_unbound_vm():
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, VM_A)           # its address is not bound yet
    lab.vm(S12, 2, VM_B, "10.0.0.2")
    offer = udp4(VM_A, "10.0.0.1", 67, 68)
    assert delivered(lab, S11, 1, offer) == set() and punted(lab, S11, 1, offer)
    assert lab.engine.bindings[VM_A].ip is None


# -- allowed_addresses -----------------------------------------------------------------------
def test_allowed_addresses_let_a_vm_send_from_them_in_both_families(lab):
    for source in ("10.0.9.1", "10.0.9.254", "10.0.8.7"):
        packet = Packet(VIP, VM_B, 0x0800, ip_proto=1, ipv4_src=source, ipv4_dst="10.0.0.2")
        assert (S12, 2) in delivered(lab, S12, 4, packet), source
        arp = Packet(VIP, "ff:ff:ff:ff:ff:ff", 0x0806, arp_spa=source)
        assert (S12, 2) in delivered(lab, S12, 4, arp), source
    for source in ("10.0.8.8", "10.0.10.1", "10.0.0.1"):
        packet = Packet(VIP, VM_B, 0x0800, ip_proto=1, ipv4_src=source, ipv4_dst="10.0.0.2")
        assert delivered(lab, S12, 4, packet) == set(), source
    for source in ("2001:db8:9::1", "2001:db8:9::ffff", "2001:db8:8::7"):
        assert (S12, 2) in delivered(lab, S12, 4, udp6(VIP, source, 4000, 4000)), source
    for source in ("2001:db8:8::8", "2001:db8:a::1"):
        packet = udp6(VIP, source, 4000, 4000)
        assert delivered(lab, S12, 4, packet) == set() and punted(lab, S12, 4, packet)
    # another VM of another template may not use them
    packet = Packet(VM_A, VM_B, 0x0800, ip_proto=1, ipv4_src="10.0.9.1", ipv4_dst="10.0.0.2")
    assert delivered(lab, S11, 1, packet) == set()


def test_neighbour_discovery_claims_only_allowed_addresses_with_the_vm_s_own_mac(lab):
    ok = icmp6(VIP, "2001:db8:8::7", 136, dst_mac=VM_B, ipv6_nd_target="2001:db8:8::7",
               ipv6_nd_tll=VIP)
    assert (S12, 2) in delivered(lab, S12, 4, ok)
    claim = icmp6(VIP, "2001:db8:8::7", 136, dst_mac=VM_B, ipv6_nd_target="2001:db8:8::8",
                  ipv6_nd_tll=VIP)
    assert delivered(lab, S12, 4, claim) == set()
    # another VM's MAC in the option leaves as the sender's own (NA and NS)
    forged = icmp6(VIP, "2001:db8:8::7", 136, dst_mac=VM_B, ipv6_nd_target="2001:db8:8::7",
                   ipv6_nd_tll=VM_B)
    assert arrivals(lab, S12, 4, forged)[(S12, 2)].ipv6_nd_tll == VIP
    solicit = icmp6(VIP, "2001:db8:9::5", 135, dst_mac=VM_B, ipv6_nd_target="fe80::1",
                    ipv6_nd_sll=VIP)
    assert (S12, 2) in delivered(lab, S12, 4, solicit)
    forged = icmp6(VIP, "2001:db8:9::5", 135, dst_mac=VM_B, ipv6_nd_target="fe80::1",
                   ipv6_nd_sll=VM_A)
    assert arrivals(lab, S12, 4, forged)[(S12, 2)].ipv6_nd_sll == VIP
    assert (S12, 2) in delivered(lab, S12, 4, dad(VIP, "2001:db8:8::7"))
    # no flow of its own for its template's prefixes: they are the template's
    assert not [f for f in lab.own_flows(VIP) if "2001:db8" in str(f.match)]
    # from a prefix: the advertised target must lie in it too (the source alone does not
    # make another VM's link-local address, or an address outside the prefix, its to claim)
    inside = icmp6(VIP, "2001:db8:9::5", 136, dst_mac=VM_B, ipv6_nd_target="2001:db8:9::6",
                   ipv6_nd_tll=VIP)
    assert (S12, 2) in delivered(lab, S12, 4, inside)
    for target in (ipv6_guard.link_local(VM_A), "2001:db8:7::1"):
        claim = icmp6(VIP, "2001:db8:9::5", 136, dst_mac=VM_B, ipv6_nd_target=target,
                      ipv6_nd_tll=VIP)
        assert delivered(lab, S12, 4, claim) == set(), target


def test_an_allowed_address_is_never_bound_as_the_vm_s_own():
    lab = Lab(LIBRARY)
    lab.vm(S12, 4, VIP, "10.0.9.9")
    assert lab.engine.bindings[VIP].ip is None
    lab.apply(lab.engine.packet_in(S12, 4, VIP, b"x", now=0.0, sender_ip="10.0.0.4").plan)
    assert lab.engine.bindings[VIP].ip == "10.0.0.4"


def test_a_restart_restores_the_bound_address_not_an_allowed_one(lab):
    fresh = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    bring_up(fresh, lambda plan: plan, held=lab.switches.entries)
    assert fresh.bindings[VIP].ip == "10.0.0.4"
    assert fresh.bindings[VM_A].ip == "10.0.0.1"


# -- validation ------------------------------------------------------------------------------
def _errors(*templates: dict, source: str = "t.yaml") -> list:
    with pytest.raises(TemplateValidationError) as raised:
        build_library([(source, {"templates": list(templates)})])
    return [str(error) for error in raised.value.errors]


PREFIX = "t.yaml: template 1 't': virtual_switch."


def test_allowed_addresses_are_validated_and_located():
    assert _errors(_template(1, "t", allowed_addresses="10.0.0.0/8")) == [
        f"{PREFIX}allowed_addresses: expected a list of prefixes, got '10.0.0.0/8'"]
    assert _errors(_template(1, "t", allowed_addresses=["10.0.0.1/8"])) == [
        f"{PREFIX}allowed_addresses[0]: expected an IPv4 or IPv6 prefix like '10.0.1.0/24' "
        "or '2001:db8:1::/64', got '10.0.0.1/8': host bits are set (did you mean "
        "'10.0.0.0/8'?)"]
    assert _errors(_template(1, "t", allowed_addresses=["10.0.0.0/8", "10.1.0.0/16"])) == [
        f"{PREFIX}allowed_addresses[1]: IPv4 prefix 10.1.0.0/16 overlaps 10.0.0.0/8 at "
        "virtual_switch.allowed_addresses[0]"]
    assert _errors(_template(1, "t", allowed_addresses=["2001:db8::/64"])) == [
        f"{PREFIX}allowed_addresses[0]: IPv6 prefix 2001:db8::/64 has no effect without "
        "bind_ipv6 (IPv6 sources are not checked; did you mean to add bind_ipv6?)"]
    assert _errors(_template(1, "t", bind_ip=False, allowed_addresses=["10.0.0.0/8"])) == [
        f"{PREFIX}allowed_addresses[0]: IPv4 prefix 10.0.0.0/8 has no effect without "
        "bind_ip (IPv4 sources are not checked; did you mean to add bind_ip?)"]
    assert _errors(_template(1, "t", allowed_addresses=[7])) == [
        f"{PREFIX}allowed_addresses[0]: expected an IPv4 or IPv6 prefix like '10.0.1.0/24' "
        "or '2001:db8:1::/64', got 7"]


def test_overlapping_allowed_addresses_across_templates_are_refused_with_both_places():
    first = _template(1, "t", allowed_addresses=["10.0.0.0/24"])
    second = _template(2, "u", allowed_addresses=["10.0.1.0/24", "10.0.0.128/25"])
    assert _errors(first, second) == [
        "t.yaml: template 2 'u': virtual_switch.allowed_addresses[1]: IPv4 prefix "
        "10.0.0.128/25 overlaps 10.0.0.0/24 of template 1 't' in t.yaml: an address may be "
        "allowed to one template only"]
    # the same addresses in both families are no overlap
    build_library([("t.yaml", {"templates": [
        first, _template(2, "u", bind_ipv6="link_local", allowed_addresses=["::a00:0/120"])]})])


def test_dhcp_server_is_a_boolean_of_the_virtual_switch_only():
    assert LIBRARY.get(SERVER).virtual_switch.dhcp_server is True
    assert LIBRARY.get(CLIENT).virtual_switch.dhcp_server is False
    assert _errors(_template(1, "t", dhcp_server="yes")) == [
        f"{PREFIX}dhcp_server: expected true or false, got 'yes'"]
    template = _template(1, "t")
    template["access_port"] = {"default_action": "allow", "dhcp_server": True}
    assert any("access_port: unknown key 'dhcp_server'" in e for e in _errors(template))


def test_an_ipv6_prefix_where_an_ipv4_field_is_expected_and_a_type_without_protocol():
    rule = {"direction": "from_vm", "action": "allow", "ethertype": "ipv4",
            "dst": "2001:db8::/32"}
    assert any("contradicts" in e for e in _errors(_template(1, "t", acl=[rule])))
    rule = {"direction": "from_vm", "action": "allow", "icmp_type": 8}
    assert _errors(_template(1, "t", acl=[rule]))


# -- the parser ------------------------------------------------------------------------------
def _ethernet(payload: bytes, ethertype: int) -> bytes:
    return bytes.fromhex("ffffffffffff00b000000001") + struct.pack("!H", ethertype) + payload


def _ipv4_udp(sport: int, dport: int) -> bytes:
    return (bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 255, 255, 255, 255])
            + struct.pack("!HHHH", sport, dport, 8, 0))


def test_the_refusal_names_the_kind_and_its_source():
    assert address_guard.refusal(_ethernet(_ipv4_udp(67, 68), 0x0800)) == (
        address_guard.DHCP_SERVER, "source 10.0.0.1")
    v6 = (bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes.fromhex("fe80" + "00" * 12 + "0001")
          + bytes(16) + struct.pack("!HHHH", 547, 546, 8, 0))
    assert address_guard.refusal(_ethernet(v6, 0x86DD)) == (
        address_guard.DHCPV6_SERVER, "source fe80::1")
    assert address_guard.refusal(_ethernet(_ipv4_udp(68, 67), 0x0800)) is None
    assert address_guard.refusal(_ethernet(_ipv4_udp(67, 68)[:24], 0x0800)) is None
    server = LIBRARY.get(SERVER).virtual_switch
    assert address_guard.guard_refusal(_ethernet(_ipv4_udp(67, 68), 0x0800), server) is None
    assert address_guard.guard_refusal(_ethernet(_ipv4_udp(67, 68), 0x0800), None)[0] == "DHCP"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([0x0800, 0x86DD, 0x8100, 0x0806]))
def test_the_refusal_parser_never_raises(payload, ethertype):
    frame = _ethernet(payload, ethertype)
    found = address_guard.refusal(frame)
    assert found is None or found[0] in (address_guard.DHCP_SERVER, address_guard.DHCPV6_SERVER)
    address_guard.guard_refusal(frame, None)
