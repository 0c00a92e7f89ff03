"""One plan per new VM: the IP its first frame carries is bound with it (issue 13)."""

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.pipeline import Table
from tests.support.fake_switches import Packet, tcp
from tests.unit.test_template_enforcement import (DB2, DB2_IP, S11, WEB1, WEB1_IP, Lab)


def _first_frame(lab: Lab, sender_ip):
    verdict = lab.engine.packet_in(S11, 1, WEB1, b"x", now=0.0, sender_ip=sender_ip)
    lab.apply(verdict.plan)
    return verdict


def _anti_spoof_ips(lab: Lab):
    binding = lab.engine.bindings[WEB1]
    return sorted(str(f.match_dict().get("ipv4_src") or f.match_dict().get("arp_spa"))
                  for f in lab.switches.flows(S11)
                  if f.table_id == Table.ANTI_SPOOF and decode_cookie(f.cookie).kind
                  is CookieKind.BINDING and decode_cookie(f.cookie).owner_id
                  == binding.binding_id
                  and ("ipv4_src" in f.match_dict() or "arp_spa" in f.match_dict()))


def test_first_frame_with_an_ip_binds_it_in_the_provisioning_plan():
    lab = Lab()
    lab.vm(S11, 2, DB2, DB2_IP)
    verdict = _first_frame(lab, WEB1_IP)
    assert lab.engine.bindings[WEB1].ip == WEB1_IP
    assert [out.in_port for out in verdict.plan.packet_outs] == [1]
    assert [ip for ip in _anti_spoof_ips(lab) if ip != "0.0.0.0"] == [WEB1_IP, WEB1_IP]
    # the re-injected first frame now passes anti-spoofing: no second trip
    assert lab.ports_reached(S11, 1, tcp(WEB1, DB2, WEB1_IP, DB2_IP, 5432)) == [(S11, 2)]
    again = lab.engine.packet_in(S11, 1, WEB1, b"x", now=0.0, sender_ip=WEB1_IP)
    assert again.plan.is_empty()


def test_spoofed_ip_is_still_dropped_after_the_fold():
    lab = Lab()
    lab.vm(S11, 2, DB2, DB2_IP)
    _first_frame(lab, WEB1_IP)
    assert lab.ports_reached(S11, 1, tcp(WEB1, DB2, "10.0.100.99", DB2_IP, 5432)) == []
    arp = Packet(WEB1, "ff:ff:ff:ff:ff:ff", 0x0806, arp_spa="10.0.100.99")
    assert lab.ports_reached(S11, 1, arp) == []


def test_frame_without_an_ip_leaves_the_ip_to_be_learned_as_before():
    lab = Lab()
    verdict = _first_frame(lab, None)   # DHCP from 0.0.0.0: frames.py reports no sender
    assert lab.engine.bindings[WEB1].ip is None
    assert not any("bound to IP" in note for note in verdict.plan.notes)
    first = tcp(WEB1, DB2, WEB1_IP, DB2_IP, 5432)
    assert lab.ports_reached(S11, 1, first) == [(S11, OFPP_CONTROLLER)]
    learned = lab.engine.packet_in(S11, 1, WEB1, b"x", sender_ip=WEB1_IP, now=0.0)
    assert lab.engine.bindings[WEB1].ip == WEB1_IP and not learned.plan.is_empty()


def test_template_without_bind_ip_ignores_the_frame_ip():
    lab = Lab()
    unbound = [t for t in lab.engine.library if not t.virtual_switch.bind_ip]
    assert unbound, "the default library has a template that binds no IP"
    template = unbound[0]
    mac = f"{template.template_id >> 8:02x}:{template.template_id & 0xFF:02x}:00:00:00:09"
    verdict = lab.engine.packet_in(S11, 3, mac, b"x", now=0.0, sender_ip="10.9.9.9")
    assert verdict.provisioned is not None and verdict.provisioned.ip is None
