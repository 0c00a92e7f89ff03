"""The IPv6 guard on fake switches: a VM sends IPv6 only from its own link-local address,
its neighbour discovery claims only its own address and MAC, and router advertisements
and redirects pass only from a router's template."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_apps.core import ipv6_guard
from ryu_apps.core.flowspec import OFPP_CONTROLLER, Meter
from ryu_apps.core.pipeline import IPV6_GUARD_METER, Priority, Table
from ryu_apps.core.template_validation import TemplateValidationError, build_library
from tests.support.fake_switches import Packet
from tests.unit.test_shared_pipeline import S11, S12, Lab

GUARDED, ROUTER, OPEN = 0xA0, 0xA1, 0xA2
VM_A, VM_B = "00:a0:00:00:00:01", "00:a0:00:00:00:02"
GW = "00:a1:00:00:00:01"
PLAIN = "00:a2:00:00:00:01"
ALL_NODES = "33:33:00:00:00:01"


def _template(template_id: int, name: str, **vswitch) -> dict:
    return {"id": template_id, "name": name, "description": name, "vlan": 100,
            "virtual_switch": {"default_action": "allow", "bind_ip": True, **vswitch},
            "access_port": {"default_action": "allow"}}


LIBRARY = build_library([("lab.yaml", {"templates": [
    _template(GUARDED, "guarded", bind_ipv6="link_local"),
    _template(ROUTER, "router", bind_ipv6="link_local", router=True),
    _template(OPEN, "open"),
]})])

LL_A, LL_B, LL_GW = (ipv6_guard.link_local(m) for m in (VM_A, VM_B, GW))


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, VM_A, "10.0.0.1")
    lab.vm(S12, 2, VM_B, "10.0.0.2")
    lab.vm(S11, 3, GW, "10.0.0.3")
    lab.vm(S12, 4, PLAIN, "10.0.0.4")
    return lab


def v6(src_mac: str, src: str, dst_mac: str = ALL_NODES, dst: str = "ff02::1",
       **fields) -> Packet:
    return Packet(src_mac, dst_mac, 0x86DD, ip_proto=fields.pop("ip_proto", 17),
                  ipv6_src=src, ipv6_dst=dst, **fields)


def icmp6(src_mac: str, src: str, kind: int, dst_mac: str = ALL_NODES, dst: str = "ff02::1",
          **nd) -> Packet:
    return v6(src_mac, src, dst_mac, dst, ip_proto=58, icmpv6_type=kind, icmpv6_code=0,
              **{"ipv6_nd_sll": ipv6_guard.NO_LINK_LAYER if kind == 135 else None,
                 "ipv6_nd_tll": ipv6_guard.NO_LINK_LAYER if kind == 136 else None, **nd})


def delivered(lab: Lab, dpid: int, port: int, packet: Packet) -> set:
    """Where copies of ``packet`` go, but the controller (the guard's punts for its log)."""
    return {(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, dpid, port, packet)
            if p != OFPP_CONTROLLER}


def arrivals(lab: Lab, dpid: int, port: int, packet: Packet) -> dict:
    """The copies of ``packet`` that leave by a port (not the controller), by exit."""
    return {(d, p): sent for d, p, sent in lab.switches.trace(lab.engine.fabric, dpid, port,
                                                              packet)
            if p != OFPP_CONTROLLER}


def solicited_node(address: str) -> str:
    """The solicited-node multicast group of ``address`` (where its DAD probe goes)."""
    low = int(ipaddress.IPv6Address(address)) & 0xFFFFFF
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low))


def dad(mac: str, target: str, **fields) -> Packet:
    """A DAD probe from ``mac`` for ``target``: from ::, no option, to its group."""
    return icmp6(mac, "::", 135, dst=fields.pop("dst", solicited_node(target)),
                 ipv6_nd_target=target, **fields)


def punted(lab: Lab, dpid: int, port: int, packet: Packet) -> bool:
    """Whether ``packet`` goes to the controller (only) through the guard's meter."""
    _, classified = lab.switches.run_pipeline(dpid, port, packet, table_id=Table.CLASSIFY)
    spec = lab.switches.lookup(dpid, Table.ANTI_SPOOF, classified, port)
    outputs = {p for d, p, _ in lab.switches.trace(lab.engine.fabric, dpid, port, packet)}
    return outputs == {OFPP_CONTROLLER} and spec is not None and \
        Meter(IPV6_GUARD_METER) in spec.instructions


def test_the_link_local_address_is_the_modified_eui64_of_the_mac():
    assert ipv6_guard.link_local("00:a0:00:00:00:01") == "fe80::2a0:ff:fe00:1"
    assert ipv6_guard.link_local("02:00:5e:10:00:00") == "fe80::5eff:fe10:0"
    with pytest.raises(ValueError, match="expected a 48-bit MAC"):
        ipv6_guard.link_local("00:11")


def _link_local_by_ipaddress(mac: bytes) -> str:
    """The reference: RFC 4291 appendix A, formatted by the standard library."""
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


_MAC_BYTES = st.one_of(st.binary(min_size=6, max_size=6),   # any, and the zero-run cases
                       st.tuples(st.sampled_from([0x00, 0x02, 0x03]), st.sampled_from([0, 1]),
                                 st.integers(0, 255), st.integers(0, 255),
                                 st.sampled_from([0, 1, 255]), st.sampled_from([0, 1, 255]))
                       .map(bytes))


@settings(max_examples=500, deadline=None)
@given(_MAC_BYTES, st.booleans())
def test_the_link_local_text_is_the_one_ipaddress_formats(mac, upper):
    text = ":".join(f"{b:02X}" if upper else f"{b:02x}" for b in mac)
    assert ipv6_guard.link_local(text) == _link_local_by_ipaddress(mac)


def test_a_vm_s_own_ipv6_passes_and_a_spoofed_source_is_dropped(lab):
    unicast = dict(dst_mac=VM_B, dst=LL_B)
    assert (S12, 2) in delivered(lab, S11, 1, v6(VM_A, LL_A, **unicast))
    for spoofed in (LL_B, "2001:db8::1", "fe80::1"):
        packet = v6(VM_A, spoofed, **unicast)
        assert delivered(lab, S11, 1, packet) == set() and punted(lab, S11, 1, packet)


def test_the_vm_s_own_neighbour_discovery_passes(lab):
    solicit = icmp6(VM_A, LL_A, 135, ipv6_nd_target=LL_B, ipv6_nd_sll=VM_A)
    assert (S12, 2) in delivered(lab, S11, 1, solicit)
    assert (S12, 2) in delivered(lab, S11, 1, icmp6(VM_A, LL_A, 135, ipv6_nd_target=LL_B))
    for tll in (VM_A, ipv6_guard.NO_LINK_LAYER):
        advert = icmp6(VM_A, LL_A, 136, dst_mac=VM_B, ipv6_nd_target=LL_A, ipv6_nd_tll=tll)
        assert (S12, 2) in delivered(lab, S11, 1, advert)
    assert (S12, 2) in delivered(lab, S11, 1, dad(VM_A, LL_A))
    mld = icmp6(VM_A, "::", 143, dst_mac="33:33:00:00:00:16")
    assert (S12, 2) in delivered(lab, S11, 1, mld)


def test_neighbour_discovery_claiming_another_vm_is_dropped(lab):
    for packet in (
            icmp6(VM_A, LL_A, 136, dst_mac=VM_B, ipv6_nd_target=LL_B),    # NA for B's address
            icmp6(VM_A, LL_B, 136, dst_mac=VM_B, ipv6_nd_target=LL_B),    # ... from B's
            icmp6(VM_A, LL_B, 136, dst_mac=VM_B, ipv6_nd_target=LL_A),    # NA from B's
            icmp6(VM_A, LL_B, 135, ipv6_nd_target=LL_GW),                # NS from B's address
            dad(VM_A, LL_A, ipv6_nd_sll=VM_A),                           # DAD with an option
            dad(VM_A, LL_A, dst="ff02::1"),                              # DAD to all nodes
            icmp6(VM_A, "::", 136, ipv6_nd_target=LL_A)):                # NA from ::
        assert delivered(lab, S11, 1, packet) == set(), packet
        assert punted(lab, S11, 1, packet), packet


def test_a_link_layer_option_leaves_as_the_vm_s_own_mac_and_none_stays_none(lab):
    """The option is normalised to the sender's MAC (which the classifier proved): an NS
    or NA that claims another VM's MAC arrives claiming its own; one without the option
    arrives without it."""
    no_option = ipv6_guard.NO_LINK_LAYER
    for kind, field in ((135, "ipv6_nd_sll"), (136, "ipv6_nd_tll")):
        for claimed, expected in ((VM_B, VM_A), (GW, VM_A), (VM_A, VM_A),
                                  (no_option, no_option)):
            packet = icmp6(VM_A, LL_A, kind, dst_mac=VM_B, ipv6_nd_target=LL_A,
                           **{field: claimed})
            out = arrivals(lab, S11, 1, packet)
            assert set(out) == {(S12, 2)}, (kind, claimed)
            assert getattr(out[(S12, 2)], field) == expected, (kind, claimed)
    # a DAD probe has no option and gets none
    out = arrivals(lab, S11, 1, dad(VM_A, LL_A))
    assert out[(S12, 2)].ipv6_nd_sll == no_option


def test_router_advertisements_and_redirects_pass_only_from_a_router(lab):
    for kind in (ipv6_guard.ICMPV6_RA, ipv6_guard.ICMPV6_REDIRECT):
        assert delivered(lab, S11, 1, icmp6(VM_A, LL_A, kind)) == set()
        assert punted(lab, S11, 1, icmp6(VM_A, LL_A, kind))
        assert (S12, 2) in delivered(lab, S11, 3, icmp6(GW, LL_GW, kind))
        # a router still sends them only from its own address
        assert delivered(lab, S11, 3, icmp6(GW, LL_A, kind)) == set()
    assert (S11, 1) in delivered(lab, S12, 2, icmp6(VM_B, LL_B, ipv6_guard.ICMPV6_RS))


def test_a_template_without_bind_ipv6_leaves_ipv6_alone(lab):
    assert (S11, 1) in delivered(lab, S12, 4, v6(PLAIN, "2001:db8::9", VM_A, LL_A))
    assert (S11, 1) in delivered(lab, S12, 4, icmp6(PLAIN, LL_B, ipv6_guard.ICMPV6_RA))
    assert not [f for f in lab.own_flows(PLAIN) if dict(f.match).get("eth_type") == 0x86DD]


def test_the_guard_is_per_template_once_and_per_vm_only_its_own(lab):
    shared = {f for f in lab.shared_flows(S11, GUARDED)
              if dict(f.match).get("eth_type") == 0x86DD
              and f.priority != Priority.DHCP_SERVER_DROP}   # the rogue-server guard's
    # NA, RA, redirect dropped; DAD, RS and MLD from ::; the rest; NS and NA normalised
    assert len(shared) == 10
    lab.vm(S11, 5, "00:a0:00:00:00:05", "10.0.0.5")
    assert {f for f in lab.shared_flows(S11, GUARDED)
            if dict(f.match).get("eth_type") == 0x86DD
            and f.priority != Priority.DHCP_SERVER_DROP} == shared
    own = [f for f in lab.own_flows(VM_A) if dict(f.match).get("eth_type") == 0x86DD]
    assert len(own) == 2   # its link-local's source and NA
    assert {dict(f.match).get("ipv6_src") for f in own} == {LL_A}


# -- the template keys ---------------------------------------------------------------------
def _errors(**vswitch) -> list:
    with pytest.raises(TemplateValidationError) as raised:
        build_library([("t.yaml", {"templates": [_template(1, "t", **vswitch)]})])
    return [str(error) for error in raised.value.errors]


def test_bind_ipv6_and_router_are_validated_and_located():
    assert LIBRARY.get(GUARDED).virtual_switch.bind_ipv6 == "link_local"
    assert LIBRARY.get(ROUTER).virtual_switch.router is True
    assert LIBRARY.get(OPEN).virtual_switch.bind_ipv6 is None
    prefix = "t.yaml: template 1 't': virtual_switch."
    assert _errors(bind_ipv6="link-local") == [
        f"{prefix}bind_ipv6: expected 'link_local' or 'first_seen' or 'dhcpv6' or false, "
        "got 'link-local'; "
        "did you mean 'link_local'?"]
    assert _errors(bind_ipv6=True) == [
        f"{prefix}bind_ipv6: expected 'link_local' or 'first_seen' or 'dhcpv6' or false, "
        "got true (a boolean)"]
    assert _errors(router=True) == _errors(router=True, bind_ipv6=False) == [
        f"{prefix}router: has no effect without bind_ipv6 (router advertisements are only "
        "guarded with it; did you mean to add bind_ipv6: link_local?)"]
    assert _errors(bind_ipv6="link_local", router="yes") == [
        f"{prefix}router: expected true or false, got 'yes'"]
    template = _template(1, "t", bind_ipv6="link_local")
    template["access_port"] = {"default_action": "allow", "bind_ipv6": "link_local"}
    with pytest.raises(TemplateValidationError, match="access_port: unknown key 'bind_ipv6'"):
        build_library([("t.yaml", {"templates": [template]})])


def _oracle(src: str, dst: str, kind: int | None, target: str | None, lladdr: str | None,
            router: bool) -> bool:
    """Whether the guard lets a VM (whose own address is LL_A or LL_GW) send this packet
    (its link-layer option, if any, then leaves as its own MAC)."""
    own = LL_GW if router else LL_A
    if src == "::":
        if kind == ipv6_guard.ICMPV6_NS:   # a DAD probe: no option, to a solicited-node group
            return lladdr == ipv6_guard.NO_LINK_LAYER and dst == solicited_node(target)
        return kind in (ipv6_guard.ICMPV6_RS, ipv6_guard.ICMPV6_MLD1_REPORT,
                        ipv6_guard.ICMPV6_MLD2_REPORT)
    if src != own:
        return False
    if kind == ipv6_guard.ICMPV6_NA:
        return target == own
    if kind in (ipv6_guard.ICMPV6_RA, ipv6_guard.ICMPV6_REDIRECT):
        return router
    return True


def test_every_combination_of_source_type_target_and_option_meets_the_oracle(lab):
    sources = (LL_A, LL_GW, LL_B, "::", "2001:db8::1")
    kinds = (None, 128, 131, 133, 134, 135, 136, 137, 143)
    no_option = ipv6_guard.NO_LINK_LAYER
    for router in (False, True):
        mac, port = (GW, 3) if router else (VM_A, 1)
        for src, kind in itertools.product(sources, kinds):
            nd = kind in (ipv6_guard.ICMPV6_NS, ipv6_guard.ICMPV6_NA)
            for target, lladdr, group in itertools.product(
                    (LL_A, LL_GW, LL_B) if nd else (None,),
                    (VM_A, GW, VM_B, no_option) if nd else (None,), (False, True)):
                dst = solicited_node(target) if group and nd else "ff02::1"
                field = {ipv6_guard.ICMPV6_NS: "ipv6_nd_sll",
                         ipv6_guard.ICMPV6_NA: "ipv6_nd_tll"}.get(kind or 0)
                packet = v6(mac, src, VM_B, LL_B) if kind is None else icmp6(
                    mac, src, kind, dst_mac=VM_B, dst=dst, ipv6_nd_target=target,
                    ipv6_nd_sll=lladdr if field == "ipv6_nd_sll" else None,
                    ipv6_nd_tll=lladdr if field == "ipv6_nd_tll" else None)
                out = arrivals(lab, S11, port, packet)
                passed = (S12, 2) in out
                assert passed == _oracle(src, dst, kind, target, lladdr, router), packet
                assert passed != punted(lab, S11, port, packet), packet
                if passed and field is not None:   # the option: the sender's MAC, or none
                    assert getattr(out[(S12, 2)], field) == (
                        no_option if lladdr == no_option else mac), packet


def test_a_refusal_names_its_kind_and_what_the_frame_claimed():
    from tests.unit.test_frames_ipv6 import ethernet, ipv6, nd
    advert = ethernet(ipv6(58, nd(136, LL_B, option=2, mac=VM_A), src=LL_A))
    assert ipv6_guard.refusal(advert) == (
        ipv6_guard.NA_CLAIM, f"source {LL_A}, target {LL_B}, target link-layer address {VM_A}")
    solicit = ethernet(ipv6(58, nd(135, LL_B), src=LL_A))
    assert ipv6_guard.refusal(solicit) == (
        ipv6_guard.NS_CLAIM, f"source {LL_A}, target {LL_B}, source link-layer address none")
    assert ipv6_guard.refusal(ethernet(ipv6(58, bytes([134, 0, 0, 0]) + bytes(12))))[0] == \
        ipv6_guard.ROUTER_ADVERTISEMENT
    assert ipv6_guard.refusal(ethernet(ipv6(58, bytes([137, 0, 0, 0]) + bytes(36))))[0] == \
        ipv6_guard.REDIRECT
    assert ipv6_guard.refusal(ethernet(ipv6(17, bytes(8), src="2001:db8::1"))) == (
        ipv6_guard.SPOOFED_SOURCE, "source 2001:db8::1")
    assert ipv6_guard.refusal(ethernet(b"\x45" + bytes(30), ethertype=0x0800)) is None
    assert ipv6_guard.refusal(b"junk") is None
