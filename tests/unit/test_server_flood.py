"""A VLAN's flooding on a server, in FLOOD chunks: every forwarding member gets one copy
through its own template's to-VM ACL, the sender none, whatever the member count; the
chunks follow members joining, leaving from the middle and coming back.

Web (250) and database (252) VMs share VLAN 100; web takes ICMP from anywhere, the
database only from 10.0.100.0/24, so an ICMP broadcast from 192.0.2.9 shows which
ACL each copy went through. Every event is checked by the invariants (re-apply,
reconnect, from-scratch recompute equal to the incremental result).
"""

from __future__ import annotations

from typing import List, Set, Tuple

import pytest

from ryu_apps.app import openflow_bytes, prerendered
from ryu_apps.core.cookies import vlan_owner
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import GROUP_ADDRESS_MATCH, tagged
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import Table, to_vm_metadata
from ryu_apps.core.server_flood import (
    CHUNK_LEVEL,
    CHUNK_PORTS,
    GROUP_CHUNKS,
    ServerFloods,
    chunked,
    flood_key,
)
from ryu_apps.loaders.library_files import load_library
from tests.support.fake_switches import FakeSwitches, Packet
from tests.support.invariants import check_event

LIBRARY = load_library("templates")
F1, A1, S11, S12 = 0x100, 0x201, 0x1101, 0x1102
UPLINK = 1000
WEB, DATABASE = 0xFA, 0xFC
BROADCAST = "ff:ff:ff:ff:ff:ff"


def _mac(template_id: int, port: int, dpid: int = S11) -> str:
    return f"00:{template_id:02x}:00:{dpid & 0xFF:02x}:{port >> 8:02x}:{port & 0xFF:02x}"


class Lab:
    """A fabric switch, an access switch and two servers; invariants after each event."""

    def __init__(self, checking: bool = True) -> None:
        self.checking = checking
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
        self.switches = FakeSwitches()
        for dpid, role in ((F1, Role.FABRIC), (A1, Role.ACCESS), (S11, Role.SERVER),
                           (S12, Role.SERVER)):
            self.apply(self.engine.switch_up(dpid, role, hex(dpid), [], now=0.0))
        for a, b in (((A1, 1), (F1, 1)), ((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3))):
            self.apply(self.engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))
        self.vm(S12, 1, WEB)   # a member elsewhere: s11 admits VLAN 100 from its uplink

    def apply(self, plan: Plan) -> None:
        self.switches.apply(plan)
        if self.checking:
            check_event(self.engine, self.switches, plan)

    def vm(self, dpid: int, port: int, template_id: int) -> None:
        mac = _mac(template_id, port, dpid)
        verdict = self.engine.packet_in(dpid, port, mac, b"x", now=0.0)
        self.apply(verdict.plan)
        self.engine.confirm(verdict.plan.confirms)

    def gone(self, dpid: int, port: int) -> None:
        self.apply(self.engine.port_down(dpid, port, now=1.0))

    def exits(self, in_port: int, packet: Packet) -> Set[int]:
        """Ports of s11 a frame entering s11 at ``in_port`` leaves by."""
        outputs, _ = self.switches.run_pipeline(S11, in_port, packet)
        ports = [port for port, _ in outputs]
        assert len(ports) == len(set(ports)), f"a port got two copies: {sorted(ports)}"
        return set(ports)

    def flood_flows(self) -> List:
        return [f for f in self.switches.flows(S11) if getattr(f, "table_id", None) == Table.FLOOD]


def _icmp_from_outside() -> Packet:
    return Packet("00:99:00:00:00:01", BROADCAST, 0x0800, vlan_vid=tagged(100), ip_proto=1,
                  ipv4_src="192.0.2.9", ipv4_dst="10.0.100.255")


def _arp_from(port: int, template_id: int) -> Packet:
    return Packet(_mac(template_id, port), BROADCAST, 0x0806, arp_spa="0.0.0.0")


def _populate(lab: Lab, count: int) -> Tuple[Set[int], Set[int]]:
    """``count`` VMs on s11 from port 1, every third a database VM; (web, database) ports."""
    web, database = set(), set()
    for port in range(1, count + 1):
        template_id = DATABASE if port % 3 == 0 else WEB
        lab.vm(S11, port, template_id)
        (database if template_id == DATABASE else web).add(port)
    return web, database


@pytest.mark.parametrize("count", [1, 6, 7, 8, 9, 100])
def test_each_member_gets_one_copy_through_its_own_templates_acl(count):
    lab = Lab(checking=count < 50)
    web, database = _populate(lab, count)
    assert lab.exits(UPLINK, _icmp_from_outside()) == web, "ICMP from 192.0.2.9: web only"
    sender = min(web)
    assert lab.exits(sender, _arp_from(sender, WEB)) == (web | database | {UPLINK}) - {sender}
    chunks = {port // CHUNK_PORTS for port in web | database}
    groups = {chunk // GROUP_CHUNKS for chunk in chunks}
    assert len(lab.flood_flows()) == len(chunks) + len(groups)


def test_the_flood_entry_lists_groups_not_members():
    lab = Lab(checking=False)
    _populate(lab, 100)
    entry, = [f for f in lab.switches.flows(S11) if f.table_id == Table.FORWARD
              and f.match_dict().get("eth_dst") == GROUP_ADDRESS_MATCH]
    actions = entry.instructions[0].actions
    groups = -(-101 // (CHUNK_PORTS * GROUP_CHUNKS))   # ports 1..100: groups 0..2
    assert len(actions) == 1 + 1 + 2 * groups, "uplink, pop_vlan, a resubmit per group"


def test_a_member_leaving_the_middle_of_a_chunk_loses_only_its_copy():
    lab = Lab()
    web, database = _populate(lab, 9)
    before = {f for f in lab.flood_flows()}
    lab.gone(S11, 8)   # chunk 1 holds ports 6..11: 8 is in its middle
    assert lab.exits(UPLINK, _icmp_from_outside()) == web - {8}
    assert lab.exits(1, _arp_from(1, WEB)) == (web | database | {UPLINK}) - {1, 8}
    changed = before ^ {f for f in lab.flood_flows()}
    assert {f.match_dict()["metadata"] for f in changed} == {flood_key(100, CHUNK_LEVEL, 1)}


def test_chunks_and_groups_close_with_their_last_member_and_reopen():
    lab = Lab()
    web, database = _populate(lab, 7)   # ports 1..5: chunk 0, 6..7: chunk 1
    for port in (6, 7):
        lab.gone(S11, port)
    assert lab.exits(UPLINK, _icmp_from_outside()) == web - {6, 7}
    assert len(lab.flood_flows()) == 2, "chunk 0 and its group"
    lab.vm(S11, 40, DATABASE)   # chunk 6: a new group
    lab.vm(S11, 7, WEB)
    assert lab.exits(UPLINK, _icmp_from_outside()) == (web - {6})
    assert lab.exits(40, _arp_from(40, DATABASE)) == \
        (web | database | {UPLINK}) - {6, 40} | {7}
    assert len(lab.flood_flows()) == 5, "chunks 0, 1, 6 and groups 0, 1"
    for port in sorted(web | database | {40}):
        if port != 6:
            lab.gone(S11, port)
    assert lab.flood_flows() == [], "no member on s11: no FLOOD flow left"


def test_from_scratch_chunks_are_a_function_of_the_member_set():
    members = [0x1_00FA_0000_0000 | port for port in (13, 1, 7, 2, 40)]
    groups, flows = chunked(S11, 100, members)
    assert (groups, flows) == chunked(S11, 100, reversed(members))
    assert groups == [0, 1]
    assert all(f.cookie == vlan_owner(100).cookie for f in flows)
    assert len(flows) == 4 + 2, "chunks 0, 1, 2, 6; groups 0, 1"


def test_a_full_chunk_flow_is_pre_rendered_byte_identical(monkeypatch):
    """A full chunk's values (cookie, key, one per member) fit the pre-renderer, so a
    rewritten chunk is patched, not encoded from scratch."""
    def full_chunk(chunk: int):
        ports = range(chunk * CHUNK_PORTS, (chunk + 1) * CHUNK_PORTS)
        _, flows = chunked(S11, 100, [to_vm_metadata(p, WEB) for p in ports])
        spec, = [f for f in flows if f.match_dict()["metadata"] ==
                 flood_key(100, CHUNK_LEVEL, chunk)]
        return spec
    monkeypatch.setattr(prerendered, "_SHAPES", {})     # no shape known yet
    monkeypatch.setattr(prerendered, "_SEEN_ONCE", {})
    for chunk in (101, 102, 103):
        spec = full_chunk(chunk)
        assert prerendered.flow_add(spec) == openflow_bytes.encode_flow_add_uncached(spec)
    assert prerendered.shape_count() == 1, "the full chunk's shape was learnt"


def test_the_vlan_flush_patches_only_the_chunk_a_new_member_joins():
    """At 100 members a new VM's plan carries its chunk (and nothing else of FLOOD),
    and the desired flows stay what a from-scratch rebuild gives."""
    lab = Lab(checking=False)
    _populate(lab, 100)
    before = {f.key: f for f in lab.flood_flows()}
    verdict = lab.engine.packet_in(S11, 101, _mac(WEB, 101), b"x", now=0.0)
    lab.apply(verdict.plan)
    flood_adds = [f for f in verdict.plan.changes[S11].adds
                  if getattr(f, "table_id", None) == Table.FLOOD]
    assert len(flood_adds) == 1 and flood_adds[0].key in before   # chunk 16 (ports 96..101)
    assert not verdict.plan.changes[S11].deletes
    assert lab.engine.recompute_all().is_empty()


def test_server_floods_report_each_change_once_and_all_after_forget():
    floods = ServerFloods()
    for port in (1, 2, 7):
        floods.change(100, S11, to_vm_metadata(port, WEB), +1)
    groups, changed = floods.take(100, S11)
    assert groups == [0] and len(changed) == 3   # chunks 0 and 1, group 0
    assert floods.take(100, S11) == ([0], {})
    floods.change(100, S11, to_vm_metadata(7, WEB), -1)
    _, changed = floods.take(100, S11)
    assert sorted(v is None for v in changed.values()) == [False, True]   # chunk 1 gone, group
    floods.forget(100, S11)
    _, changed = floods.take(100, S11)
    assert len(changed) == 2 and None not in changed.values()
