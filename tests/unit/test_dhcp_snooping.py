"""``bind_ip: dhcp`` on fake switches: the snooping flows, the engine's decisions on each
snooped message (an allowed ACK binds; a rogue's, another MAC's or a conflicting one
does not; NAK, RELEASE and the lease's end unbind), and the ``bind_ip`` modes'
validation."""

from __future__ import annotations

import pytest

from ryu_apps.core import dhcp, dhcp_snooping
from ryu_apps.core.binding import IP_DHCP, IP_FIRST_SEEN
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import Role
from ryu_apps.core.flowspec import OFPP_CONTROLLER, Meter
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import DHCP_SNOOP_METER, Table
from ryu_apps.core.template_model import BIND_IP_DHCP, BIND_IP_FIRST_SEEN
from ryu_apps.core.template_validation import TemplateValidationError, build_library
from ryu_apps.rest import views as rest_views
from tests.support.dhcp_peer import ACK, DECLINE, NAK, OFFER, RELEASE, REQUEST, dhcp_frame
from tests.support.fake_switches import Packet
from tests.support.small_fabric import UPLINK, bring_up
from tests.unit.test_shared_pipeline import S11, S12, Lab

CLIENT, SERVER, PLAIN = 0xC0, 0xC1, 0xC2
VM_A, VM_B, VM_C = "00:c0:00:00:00:01", "00:c0:00:00:00:02", "00:c0:00:00:00:03"
DHCPD, ROGUE = "00:c1:00:00:00:01", "00:c2:00:00:00:01"
SERVER_IP, ROGUE_IP = "10.0.50.1", "10.0.50.66"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def _template(template_id: int, name: str, **vswitch) -> dict:
    return {"id": template_id, "name": name, "description": name, "vlan": 100,
            "virtual_switch": {"default_action": "allow", **vswitch},
            "access_port": {"default_action": "allow"}}


LIBRARY = build_library([("lab.yaml", {"templates": [
    _template(CLIENT, "client", bind_ip="dhcp", allowed_addresses=["10.0.9.0/24"]),
    _template(SERVER, "dhcpd", bind_ip=True, dhcp_server=True),
    _template(PLAIN, "plain", bind_ip="first_seen"),
]})])


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, VM_A)
    lab.vm(S12, 2, VM_B)
    lab.vm(S11, 3, DHCPD, SERVER_IP)
    lab.vm(S11, 4, ROGUE, ROGUE_IP)
    return lab


def server_message(kind: int, yiaddr: str, chaddr: str = VM_A, eth_dst: str | None = None,
                   eth_src: str = DHCPD, ip_src: str = SERVER_IP, lease: int = 600) -> bytes:
    return dhcp_frame(eth_src, eth_dst or chaddr, ip_src, yiaddr, sport=67, dport=68, op=2,
                      chaddr=chaddr, message_type=kind, yiaddr=yiaddr, lease=lease,
                      server_id=ip_src)


def client_message(kind: int, mac: str = VM_A, ciaddr: str = "0.0.0.0",
                   requested: str | None = None, chaddr: str | None = None) -> bytes:
    return dhcp_frame(mac, BROADCAST, ciaddr, "255.255.255.255", sport=68, dport=67, op=1,
                      chaddr=chaddr or mac, message_type=kind, ciaddr=ciaddr,
                      requested=requested)


def snoop(lab: Lab, dpid: int, port: int, frame: bytes, now: float = 0.0):
    return lab.apply(lab.engine.dhcp_seen(dpid, port, frame, now=now))


def udp(src_mac: str, src: str, sport: int, dport: int, dst_mac: str = BROADCAST) -> Packet:
    return Packet(src_mac, dst_mac, 0x0800, ip_proto=17, ipv4_src=src,
                  ipv4_dst="255.255.255.255", udp_src=sport, udp_dst=dport)


def outputs(lab: Lab, dpid: int, port: int, packet: Packet) -> set:
    return {(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, dpid, port, packet)}


def ip_of(lab: Lab, mac: str):
    binding = lab.engine.bindings[mac]
    return binding.ip, binding.ip_source


# -- the flows --------------------------------------------------------------------------------
def test_before_its_ack_a_vm_sends_only_dhcp_arp_probes_and_its_allowed_addresses(lab):
    discover = udp(VM_A, "0.0.0.0", 68, 67)
    assert {(S11, 3), (S11, OFPP_CONTROLLER)} <= outputs(lab, S11, 1, discover)
    probe = Packet(VM_A, BROADCAST, 0x0806, arp_spa="0.0.0.0")
    assert (S11, 3) in outputs(lab, S11, 1, probe)
    assert (S11, 3) in outputs(lab, S11, 1, udp(VM_A, "10.0.9.7", 4000, 4000))
    for packet in (udp(VM_A, "10.0.50.100", 4000, 4000),
                   Packet(VM_A, BROADCAST, 0x0806, arp_spa="10.0.50.100")):
        assert outputs(lab, S11, 1, packet) == set(), packet   # dropped, not even learnt
    plan = lab.apply(lab.engine.packet_in(S11, 1, VM_A, b"x", now=0.0,
                                          sender_ip="10.0.50.100").plan)
    assert ip_of(lab, VM_A) == (None, None) and not plan.changes


def test_server_messages_to_a_dhcp_vm_are_delivered_and_copied_through_the_meter(lab):
    ack = udp(DHCPD, SERVER_IP, 67, 68, dst_mac=VM_A)
    assert outputs(lab, S11, 3, ack) == {(S11, 1), (S11, OFPP_CONTROLLER)}
    copies = [f for f in lab.own_flows(VM_A)
              if f.table_id == Table.OUTPUT and Meter(DHCP_SNOOP_METER) in f.instructions]
    assert len(copies) == 1
    # a VM of a first-seen template gets its server messages without a copy
    lab.vm(S11, 5, "00:c2:00:00:00:05", "10.0.0.5")
    to_plain = udp(DHCPD, SERVER_IP, 67, 68, dst_mac="00:c2:00:00:00:05")
    assert outputs(lab, S11, 3, to_plain) == {(S11, 5)}


def test_an_ack_from_the_dhcp_server_binds_and_the_vm_then_sends_from_its_address(lab):
    plan = snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    assert ip_of(lab, VM_A) == ("10.0.50.100", IP_DHCP)
    assert any("VM 00:c0:00:00:00:01 bound to IP 10.0.50.100 (DHCPACK" in n for n in plan.notes)
    assert (S11, 3) in outputs(lab, S11, 1, udp(VM_A, "10.0.50.100", 4000, 4000))
    assert outputs(lab, S11, 1, udp(VM_A, "10.0.50.101", 4000, 4000)) == set()
    arp = Packet(VM_A, BROADCAST, 0x0806, arp_spa="10.0.50.100")
    assert (S11, 3) in outputs(lab, S11, 1, arp)


def test_an_ack_through_the_uplink_binds_a_broadcast_one_too(lab):
    snoop(lab, S12, UPLINK, server_message(ACK, "10.0.50.102", chaddr=VM_B, eth_dst=BROADCAST))
    assert ip_of(lab, VM_B) == ("10.0.50.102", IP_DHCP)


@pytest.mark.parametrize("port, frame, why", [
    (4, server_message(ACK, "10.0.50.100", eth_src=ROGUE, ip_src=ROGUE_IP),
     "it came from VM 00:c2:00:00:00:01, whose template 'plain' is no DHCP server"),
    (9, server_message(ACK, "10.0.50.100"), "neither a VM nor a link port"),
    (3, server_message(ACK, "10.0.50.100", eth_dst=VM_C), "not to the VM"),
])
def test_an_ack_from_a_rogue_or_for_another_mac_does_not_bind(lab, port, frame, why):
    plan = snoop(lab, S11, port, frame)
    assert ip_of(lab, VM_A) == (None, None)
    assert any(why in note for note in plan.notes), plan.notes


def test_an_ack_for_a_vm_elsewhere_or_of_another_mode_binds_nothing(lab):
    plan = snoop(lab, S11, 3, server_message(ACK, "10.0.50.102", chaddr=VM_B))   # on S12
    assert ip_of(lab, VM_B) == (None, None) and not plan.changes
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.104", chaddr=ROGUE))
    assert ip_of(lab, ROGUE) == (ROGUE_IP, IP_FIRST_SEEN)
    snoop(lab, S11, 3, server_message(OFFER, "10.0.50.100"))
    assert ip_of(lab, VM_A) == (None, None)


@pytest.mark.parametrize("yiaddr, why", [
    ("10.0.50.1", "is bound to VM 00:c1:00:00:00:01"),
    ("0.0.0.0", "is not a unicast address"), ("224.0.0.1", "is not a unicast address"),
    ("255.255.255.255", "is not a unicast address"),
    ("10.0.9.4", "lies in the template's allowed_addresses"),
])
def test_a_conflicting_or_unusable_address_is_refused_and_the_vm_keeps_its_own(lab, yiaddr,
                                                                                 why):
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    plan = snoop(lab, S11, 3, server_message(ACK, yiaddr))
    assert ip_of(lab, VM_A) == ("10.0.50.100", IP_DHCP)
    assert any(why in note and "the VM keeps 10.0.50.100" in note for note in plan.notes)


def test_a_repeated_ack_changes_no_flow_and_a_new_address_replaces_the_old(lab):
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    again = snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"), now=300.0)
    assert not again.changes and not again.notes
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.110"))
    assert ip_of(lab, VM_A) == ("10.0.50.110", IP_DHCP)
    assert outputs(lab, S11, 1, udp(VM_A, "10.0.50.100", 4000, 4000)) == set()


def test_a_nak_from_the_server_unbinds_and_one_from_a_rogue_does_not(lab):
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    snoop(lab, S11, 4, server_message(NAK, "0.0.0.0", eth_src=ROGUE, ip_src=ROGUE_IP))
    assert ip_of(lab, VM_A) == ("10.0.50.100", IP_DHCP)
    plan = snoop(lab, S11, 3, server_message(NAK, "0.0.0.0"))
    assert ip_of(lab, VM_A) == (None, None)
    assert any("unbound from IP 10.0.50.100: DHCPNAK" in note for note in plan.notes)
    assert outputs(lab, S11, 1, udp(VM_A, "10.0.50.100", 4000, 4000)) == set()


def test_the_vm_s_release_or_decline_unbinds_another_s_does_not(lab):
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    snoop(lab, S11, 4, client_message(RELEASE, mac=ROGUE, ciaddr="10.0.50.100", chaddr=VM_A))
    snoop(lab, S11, 1, client_message(RELEASE, ciaddr="10.0.50.199"))
    snoop(lab, S11, 1, client_message(REQUEST, ciaddr="10.0.50.100"))
    assert ip_of(lab, VM_A) == ("10.0.50.100", IP_DHCP)
    snoop(lab, S11, 1, client_message(RELEASE, ciaddr="10.0.50.100"))
    assert ip_of(lab, VM_A) == (None, None)
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    snoop(lab, S11, 1, client_message(DECLINE, requested="10.0.50.100"))
    assert ip_of(lab, VM_A) == (None, None)


def test_the_lease_s_end_unbinds_and_a_renewal_extends_it(lab):
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100", lease=600), now=0.0)
    lab.apply(lab.engine.tick(599.0))
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100", lease=600), now=500.0)
    lab.apply(lab.engine.tick(1000.0))
    assert ip_of(lab, VM_A) == ("10.0.50.100", IP_DHCP)
    plan = lab.apply(lab.engine.tick(1100.0))
    assert ip_of(lab, VM_A) == (None, None)
    assert any("its DHCP lease ended" in note for note in plan.notes)


def test_the_rest_view_says_how_the_address_was_bound(lab):
    def view(mac):
        return rest_views.binding_view(lab.engine.bindings[mac], lab.engine.fabric.switches,
                                       None)
    assert (view(VM_A)["ip"], view(VM_A)["ip_source"]) == (None, None)
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    assert (view(VM_A)["ip"], view(VM_A)["ip_source"]) == ("10.0.50.100", "dhcp")
    assert (view(DHCPD)["ip"], view(DHCPD)["ip_source"]) == (SERVER_IP, "first_seen")


def test_a_dhcp_binding_survives_a_reconnect_and_a_restart(lab):
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    plan = lab.engine.switch_up(S11, Role.SERVER, hex(S11), lab.switches.entries(S11), now=1.0)
    assert not plan.changes
    fresh = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    bring_up(fresh, lambda plan: plan, held=lab.switches.entries)
    assert (fresh.bindings[VM_A].ip, fresh.bindings[VM_A].ip_source) == ("10.0.50.100",
                                                                          IP_DHCP)
    assert fresh.bindings[ROGUE].ip_source == IP_FIRST_SEEN


def test_a_reload_to_dhcp_unbinds_a_first_seen_address_and_keeps_a_dhcp_one(lab):
    snoop(lab, S11, 3, server_message(ACK, "10.0.50.100"))
    swapped = build_library([("lab.yaml", {"templates": [
        _template(CLIENT, "client", bind_ip="first_seen", allowed_addresses=["10.0.9.0/24"]),
        _template(SERVER, "dhcpd", bind_ip=True, dhcp_server=True),
        _template(PLAIN, "plain", bind_ip="dhcp"),
    ]})])
    plan = lab.apply(lab.engine.set_library(swapped))
    assert ip_of(lab, ROGUE) == (None, None)
    assert any("its template 'plain' binds from DHCP now" in note for note in plan.notes)
    assert ip_of(lab, VM_A) == ("10.0.50.100", IP_DHCP)
    assert outputs(lab, S11, 4, udp(ROGUE, ROGUE_IP, 4000, 4000)) == set()


def test_only_snooping_copies_take_the_dhcp_route():
    client = client_message(REQUEST)
    server = server_message(ACK, "10.0.50.100")
    assert dhcp_snooping.punted(Table.ANTI_SPOOF, client)
    assert dhcp_snooping.punted(Table.OUTPUT, server)
    assert not dhcp_snooping.punted(Table.ANTI_SPOOF, server)   # the rogue guard's punt
    assert not dhcp_snooping.punted(Table.OUTPUT, client)
    assert not dhcp_snooping.punted(Table.CLASSIFY, client)
    assert not dhcp_snooping.punted(Table.OUTPUT, server[:30])


def test_a_malformed_copy_is_noted_and_changes_nothing(lab):
    frame = bytearray(server_message(ACK, "10.0.50.100"))
    frame[14 + 20 + 8 + 1] = 9   # htype: not Ethernet
    plan = snoop(lab, S11, 3, bytes(frame))
    assert ip_of(lab, VM_A) == (None, None) and not plan.changes
    assert any("not a well-formed DHCP message" in note for note in plan.notes)


# -- the modes ------------------------------------------------------------------------------
def _errors(**vswitch) -> list:
    with pytest.raises(TemplateValidationError) as raised:
        build_library([("t.yaml", {"templates": [_template(1, "t", **vswitch)]})])
    return [str(error) for error in raised.value.errors]


def test_bind_ip_takes_its_modes_true_as_first_seen_and_false():
    assert LIBRARY.get(CLIENT).virtual_switch.bind_ip == BIND_IP_DHCP
    assert LIBRARY.get(CLIENT).virtual_switch.binds_from_dhcp
    assert LIBRARY.get(SERVER).virtual_switch.bind_ip == BIND_IP_FIRST_SEEN
    assert LIBRARY.get(PLAIN).virtual_switch.binds_first_seen
    library = build_library([("t.yaml", {"templates": [_template(1, "t", bind_ip=False)]})])
    assert library.get(1).virtual_switch.bind_ip is None
    assert _errors(bind_ip="dchp") == [
        "t.yaml: template 1 't': virtual_switch.bind_ip: expected 'first_seen' or 'dhcp' "
        "(true means 'first_seen') or false, got 'dchp'; did you mean 'dhcp'?"]
    assert _errors(bind_ip="First-Seen")[0].endswith("did you mean 'first_seen'?")
    assert _errors(bind_ip=1) == [
        "t.yaml: template 1 't': virtual_switch.bind_ip: expected 'first_seen' or 'dhcp' "
        "(true means 'first_seen') or false, got 1"]


def test_the_parser_reads_what_snooping_decides_on():
    message = dhcp.parse_dhcp(server_message(ACK, "10.0.50.100", lease=600))
    assert message is not None and message.from_server and not message.from_client
    assert (message.name, message.chaddr, message.yiaddr, message.lease_time,
            message.server_id, message.eth_dst) == (
        "DHCPACK", VM_A, "10.0.50.100", 600, SERVER_IP, VM_A)
    release = dhcp.parse_dhcp(client_message(RELEASE, ciaddr="10.0.50.100"))
    assert release is not None and release.from_client and release.ciaddr == "10.0.50.100"
    decline = dhcp.parse_dhcp(client_message(DECLINE, requested="10.0.50.100"))
    assert decline is not None and decline.requested_ip == "10.0.50.100"
