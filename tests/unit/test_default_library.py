"""The default library's issue-#14 behaviour on the fake switches (what the demo shows on
real OVS): the stateful web tier, the database over IPv6 from the web tier only, the IPv6
guard on both, and the quarantine limited to DHCP and DNS in both families."""

from __future__ import annotations

import pytest

from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.template_model import Direction
from tests.support.fake_switches import Packet, tcp
from tests.support.oracle import side_allows
from tests.unit.test_shared_pipeline import LIBRARY, S11, S12, Lab

WEB, DB, DB_B, QUARANTINE = ("00:fa:00:00:00:03", "00:fc:00:00:00:02", "00:fc:00:00:00:06",
                             "00:f0:00:00:00:01")
IP_WEB, IP_DB, IP_DB_B = "10.0.100.3", "10.0.200.2", "10.0.200.6"
IP6_WEB, IP6_DB, IP6_DB_B = "fd00:0:0:100::3", "fd00:0:0:200::2", "fd00:0:0:200::6"
ETH_IPV6, UDP = 0x86DD, 17


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, WEB, IP_WEB)
    lab.vm(S12, 2, DB, IP_DB)
    lab.vm(S12, 3, DB_B, IP_DB_B)
    lab.vm(S11, 4, QUARANTINE)
    return lab


def reaches(lab: Lab, dpid: int, port: int, packet: Packet) -> set:
    return {(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, dpid, port, packet)}


def tcp6(src_mac, dst_mac, src, dst, dst_port, src_port=40000) -> Packet:
    return Packet(src_mac, dst_mac, ETH_IPV6, ip_proto=6, ipv6_src=src, ipv6_dst=dst,
                  tcp_src=src_port, tcp_dst=dst_port)


def udp(src_mac, dst_mac, src_port, dst_port, src=None, dst=None, ipv6=False) -> Packet:
    if ipv6:
        return Packet(src_mac, dst_mac, ETH_IPV6, ip_proto=UDP, ipv6_src=src or "fe80::1",
                      ipv6_dst=dst or "ff02::1:2", udp_src=src_port, udp_dst=dst_port)
    return Packet(src_mac, dst_mac, ip_proto=UDP, ipv4_src=src or "0.0.0.0",
                  ipv4_dst=dst or "255.255.255.255", udp_src=src_port, udp_dst=dst_port)


def test_the_stateful_web_tier_passes_replies_and_drops_an_unsolicited_reply_look(lab):
    assert reaches(lab, S11, 1, tcp(WEB, DB, IP_WEB, IP_DB, 5432, 50000)) == {(S12, 2)}
    assert reaches(lab, S12, 2, tcp(DB, WEB, IP_DB, IP_WEB, 50000, 5432)) == {(S11, 1)}
    # the database's mirror rule lets a SYN from port 5432 out; no connection: dropped
    assert reaches(lab, S12, 3, tcp(DB_B, WEB, IP_DB_B, IP_WEB, 8080, 5432)) == set()


def test_the_database_takes_ipv6_postgresql_from_the_web_prefix_only(lab):
    there = tcp6(WEB, DB, IP6_WEB, IP6_DB, 5432, 50000)
    assert reaches(lab, S11, 1, there) == {(S12, 2)}
    assert reaches(lab, S12, 2, tcp6(DB, WEB, IP6_DB, IP6_WEB, 50000, 5432)) == {(S11, 1)}
    assert reaches(lab, S12, 3, tcp6(DB_B, DB, IP6_DB_B, IP6_DB, 5432)) == set()
    assert reaches(lab, S11, 1, tcp6(WEB, DB, IP6_WEB, IP6_DB, 22)) == set()


def test_the_ipv6_guard_holds_each_tier_to_its_prefix(lab):
    """A web VM sending from the database prefix (to pass as a database), or a database
    VM from the web prefix, reaches no VM: the guard punts it (to log it) and drops it."""
    assert reaches(lab, S11, 1, tcp6(WEB, DB, IP6_DB_B, IP6_DB, 5432)) == \
        {(S11, OFPP_CONTROLLER)}
    assert reaches(lab, S12, 3, tcp6(DB_B, DB, IP6_WEB, IP6_DB, 5432)) == \
        {(S12, OFPP_CONTROLLER)}


def test_the_quarantine_allows_dhcp_and_dns_in_both_families_and_nothing_else():
    """Its rules (no VM of the library is a DHCP server to trace a whole exchange to;
    the oracle's rule matcher knows IPv4 prefixes only, so DNS is checked over IPv4)."""
    side = LIBRARY.by_name("quarantine").virtual_switch
    out, back = Direction.FROM_VM, Direction.TO_VM
    for src_port, dst_port, ipv6 in ((68, 67, False), (546, 547, True)):
        assert side_allows(side, out, udp(QUARANTINE, "ff", src_port, dst_port, ipv6=ipv6))
        assert side_allows(side, back, udp("aa", QUARANTINE, dst_port, src_port, ipv6=ipv6))
    assert side_allows(side, out, udp(QUARANTINE, "aa", 40000, 53, "10.0.99.7", "10.0.99.10"))
    assert not side_allows(side, out, udp(QUARANTINE, "aa", 40000, 53, "10.0.99.7",
                                          "10.0.99.11"))
    assert not side_allows(side, out, tcp(QUARANTINE, "aa", "10.0.99.7", "10.0.99.10", 80))
    assert not side.dhcp_server and not side.router
