"""Two controller processes joined by a learning L2 fabric, on fake flow tables.

Process p1 manages access switch A1 and servers S11, S12; process p2 manages
A2 and S21. Port 1 of each access switch is cabled to a plain learning bridge
that no dynprov process manages (the shared fabric between pods); each
process learns that from the other's beacons.
"""


import pytest

from ryu_apps.core import lldp, shared_fabric
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import SHARED_FABRIC, PortRef, Role
from ryu_apps.core.switch_flows import BEACON_ADDRESS
from ryu_apps.core.flowspec import OFPP_CONTROLLER, Output
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import Priority, Table
from ryu_apps.core.template_validation import build_library
from tests.support.fake_switches import FakeSwitches, Packet
from tests.support.index_check import check_indexes

A1, A2 = 0x201, 0x202
S11, S12, S21 = 0x1101, 0x1102, 0x2101
UPLINK, TO_FABRIC = 10, 1
BROADCAST = "ff:ff:ff:ff:ff:ff"
WEB1, WEB2, WEB3 = "00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fa:00:00:00:03"
DB1, DB2 = "00:fc:00:00:00:01", "00:fc:00:00:00:02"
WEB_VLAN, DB_VLAN = 100, 200


def _template(template_id, name, vlan):
    return {"id": template_id, "name": name, "description": name, "vlan": vlan,
            "virtual_switch": {"default_action": "allow"},
            "access_port": {"default_action": "allow"}}


LIBRARY = build_library([("test.yaml", {"templates": [
    _template(250, "web", WEB_VLAN), _template(252, "db", DB_VLAN)]})])


class Process:
    """One controller process: its engine and its switches' flow tables."""

    def __init__(self, name, switches, links):
        self.name = name
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
        self.switches = FakeSwitches()
        for dpid, role, switch_name in switches:
            self.apply(self.engine.switch_up(dpid, role, switch_name, [], now=0.0))
        for a, b in links:
            self.apply(self.engine.link_seen(PortRef(*a), PortRef(*b), now=0.0))

    def apply(self, plan):
        self.switches.apply(plan)
        for out in plan.packet_outs:
            if out.out_port is not None and self.on_uplink_frame is not None:
                self.on_uplink_frame(self, out)
        return plan

    on_uplink_frame = None   # the data center's: a frame sent out of a shared uplink

    def vm(self, dpid, port, mac):
        verdict = self.engine.packet_in(dpid, port, mac, b"frame", now=0.0)
        self.apply(verdict.plan)
        return verdict

    def beacon(self, dpid, port):
        return self.apply(self.engine.shared_uplink_seen(PortRef(dpid, port), "test", now=0.0))

    def trace(self, dpid, port, packet):
        return self.switches.trace(self.engine.fabric, dpid, port, packet)


class LearningBridge:
    """The shared fabric: learns source MACs per VLAN, floods the unknown."""

    def __init__(self, ports):
        self.ports = ports          # bridge port -> (process, access dpid, its port)
        self.table = {}             # (vlan, mac) -> bridge port

    def forward(self, in_port, packet):
        self.table[(packet.vlan_vid, packet.eth_src)] = in_port
        out = self.table.get((packet.vlan_vid, packet.eth_dst))
        targets = [out] if out is not None else list(self.ports)
        return [p for p in targets if p != in_port]


class DataCenter:
    """Both processes and the learning bridge between their uplinks."""

    def __init__(self):
        self.p1 = Process("p1", [(A1, Role.ACCESS, "a1"), (S11, Role.SERVER, "s11"),
                                 (S12, Role.SERVER, "s12")],
                          [((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3))])
        self.p2 = Process("p2", [(A2, Role.ACCESS, "a2"), (S21, Role.SERVER, "s21")],
                          [((S21, UPLINK), (A2, 2))])
        self.bridge = LearningBridge({1: (self.p1, A1, TO_FABRIC), 2: (self.p2, A2, TO_FABRIC)})
        self.announced, self.stray = [], []
        self.p1.on_uplink_frame = self.p2.on_uplink_frame = self._uplink_frame

    def _uplink_frame(self, process, out):
        """An announcement a process sent out of its uplink: the bridge learns from it;
        the other processes' uplinks must drop it."""
        data = out.data
        assert data[:6] == lldp.BEACON_MULTICAST and data[12:14] == b"\x81\x00"
        mac = ":".join(f"{b:02x}" for b in data[6:12])
        packet = Packet(mac, BEACON_ADDRESS, eth_type=lldp.ETH_TYPE_ANNOUNCE,
                        vlan_vid=0x1000 | int.from_bytes(data[14:16], "big") & 0xFFF)
        self.announced.append((process.name, mac))
        port = next(p for p, (proc, d, q) in self.bridge.ports.items()
                    if proc is process and (d, q) == (out.dpid, out.out_port))
        for target in self.bridge.forward(port, packet):
            other, access, access_port = self.bridge.ports[target]
            self.stray += other.trace(access, access_port, packet)

    def beacons(self):
        self.p1.beacon(A1, TO_FABRIC)
        self.p2.beacon(A2, TO_FABRIC)

    def send(self, process, dpid, port, src, dst, vlan_vid=0, eth_type=0x0800):
        """Every (process name, switch, port) where a copy of the frame leaves the network."""
        packet = Packet(src, dst, eth_type=eth_type, vlan_vid=vlan_vid)
        delivered, frontier = [], [(process, dpid, port, packet)]
        hops = 0
        while frontier:
            here, dpid, port, packet = frontier.pop()
            hops += 1
            assert hops < 50, "forwarding loop"
            for out_dpid, out_port, out in here.trace(dpid, port, packet):
                if here.engine.fabric.is_shared_uplink(PortRef(out_dpid, out_port)):
                    bridge_port = next(p for p, (proc, d, q) in self.bridge.ports.items()
                                       if proc is here and (d, q) == (out_dpid, out_port))
                    for target in self.bridge.forward(bridge_port, out):
                        process, access, access_port = self.bridge.ports[target]
                        frontier.append((process, access, access_port, out))
                else:
                    delivered.append((here.name, out_dpid, out_port, out))
        return delivered


@pytest.fixture
def dc():
    dc = DataCenter()
    dc.p1.vm(S11, 1, WEB1)
    dc.p1.vm(S12, 1, WEB2)
    dc.p2.vm(S21, 1, WEB3)
    dc.p2.vm(S21, 2, DB1)
    return dc


def _where(delivered):
    return sorted((name, dpid, port) for name, dpid, port, _ in delivered)


def test_without_a_beacon_each_process_is_an_island(dc):
    assert dc.send(dc.p1, S11, 1, WEB1, WEB3) == []
    assert _where(dc.send(dc.p1, S11, 1, WEB1, BROADCAST)) == [("p1", S12, 1)]


def test_a_beacon_makes_the_port_a_shared_uplink_with_its_own_drop_flow(dc):
    plan = dc.p1.beacon(A1, TO_FABRIC)
    assert dc.p1.engine.fabric.is_shared_uplink(PortRef(A1, TO_FABRIC))
    assert any("shared uplink a1:1" in note for note in plan.notes)
    drops = [f for f in dc.p1.switches.flows(A1) if f.priority == Priority.SHARED_UPLINK]
    assert [f.match_dict() for f in drops] == [{"in_port": TO_FABRIC}]
    assert decode_cookie(drops[0].cookie).kind is CookieKind.INFRA
    assert dc.p1.beacon(A1, TO_FABRIC).flow_count() == 0   # idempotent


def test_unicast_crosses_the_shared_fabric_both_ways_untagged_at_the_vm(dc):
    dc.beacons()
    dc.send(dc.p2, S21, 1, WEB3, BROADCAST)       # the fabric learns WEB3 behind a2
    delivered = dc.send(dc.p1, S11, 1, WEB1, WEB3)
    assert _where(delivered) == [("p2", S21, 1)]
    assert delivered[0][3].vlan_vid == 0
    assert _where(dc.send(dc.p2, S21, 1, WEB3, WEB1)) == [("p1", S11, 1)]
    assert _where(dc.send(dc.p2, S21, 1, WEB3, WEB2)) == [("p1", S12, 1)]


def test_broadcast_reaches_every_member_of_the_vlan_once_and_no_other(dc):
    dc.beacons()
    assert _where(dc.send(dc.p1, S11, 1, WEB1, BROADCAST)) == [("p1", S12, 1), ("p2", S21, 1)]
    assert _where(dc.send(dc.p2, S21, 1, WEB3, BROADCAST)) == [("p1", S11, 1), ("p1", S12, 1)]
    assert _where(dc.send(dc.p2, S21, 2, DB1, BROADCAST)) == []   # no db VM in p1


def test_isolation_between_vlans_holds_across_the_shared_fabric(dc):
    dc.beacons()
    dc.send(dc.p1, S11, 1, WEB1, BROADCAST)
    assert dc.send(dc.p2, S21, 2, DB1, WEB1) == []


def test_the_uplink_admits_only_vlans_with_members_here(dc):
    dc.beacons()
    tagged = lambda vlan: 0x1000 | vlan  # noqa: E731
    web = dc.p1.trace(A1, TO_FABRIC, Packet(WEB3, BROADCAST, vlan_vid=tagged(WEB_VLAN)))
    assert sorted((d, p) for d, p, _ in web) == [(S11, 1), (S12, 1)]
    assert dc.p1.trace(A1, TO_FABRIC, Packet(DB1, BROADCAST, vlan_vid=tagged(DB_VLAN))) == []
    assert dc.p1.trace(A1, TO_FABRIC, Packet(DB1, WEB1, vlan_vid=tagged(DB_VLAN))) == []


def test_a_frame_from_the_shared_fabric_for_an_unknown_mac_goes_nowhere(dc):
    dc.beacons()
    stray = Packet(WEB3, "00:fa:00:00:00:99", vlan_vid=0x1000 | WEB_VLAN)
    assert dc.p1.trace(A1, TO_FABRIC, stray) == []


def test_the_last_member_leaving_takes_the_vlan_off_the_uplink(dc):
    dc.beacons()
    for server in (S11, S12):
        dc.p1.apply(dc.p1.engine.port_down(server, 1, now=0.0))
    vlan_flows_on_a1 = [f for f in dc.p1.switches.flows(A1)
                        if decode_cookie(f.cookie).kind is CookieKind.VLAN]
    assert vlan_flows_on_a1 == []
    assert dc.send(dc.p2, S21, 1, WEB3, BROADCAST) == []
    check_indexes(dc.p1.engine)


def test_a_probe_wins_over_a_beacon_on_the_same_port(dc):
    dc.beacons()
    # a1's port 1 is re-cabled to a switch of p1's own: the probe proves the cable
    dc.p1.apply(dc.p1.engine.switch_up(0x100, Role.FABRIC, "f1", [], now=0.0))
    dc.p1.apply(dc.p1.engine.link_seen(PortRef(A1, TO_FABRIC), PortRef(0x100, 1), now=0.0))
    assert not dc.p1.engine.fabric.is_shared_uplink(PortRef(A1, TO_FABRIC))
    assert dc.p1.beacon(A1, TO_FABRIC).flow_count() == 0
    assert not [f for f in dc.p1.switches.flows(A1) if f.priority == Priority.SHARED_UPLINK]


def test_beacons_on_a_server_switch_are_ignored(dc):
    assert dc.p1.beacon(S11, 5).flow_count() == 0
    assert not dc.p1.engine.fabric.is_shared_uplink(PortRef(S11, 5))


def test_two_uplinks_on_one_switch_carry_traffic_by_one_only(dc):
    dc.beacons()
    dc.p1.beacon(A1, 4)
    assert dc.p1.engine.fabric.shared_uplinks(A1) == {TO_FABRIC, 4}
    floods = [f for f in dc.p1.switches.flows(A1)
              if f.table_id == Table.FORWARD and decode_cookie(f.cookie).kind is CookieKind.VLAN]
    outputs = {a.port for f in floods for i in f.instructions
               for a in getattr(i, "actions", ()) if isinstance(a, Output)}
    assert TO_FABRIC in outputs and 4 not in outputs
    drops = {f.match_dict()["in_port"] for f in dc.p1.switches.flows(A1)
             if f.priority == Priority.SHARED_UPLINK}
    assert drops == {TO_FABRIC, 4}
    tagged_web = 0x1000 | WEB_VLAN
    assert dc.p1.trace(A1, 4, Packet(WEB3, BROADCAST, vlan_vid=tagged_web)) == []


def test_two_access_switches_of_one_process_use_their_cable_not_the_fabric():
    """Both uplinked and cabled to each other: one uplink on the tree, no loop."""
    p = Process("p", [(A1, Role.ACCESS, "a1"), (A2, Role.ACCESS, "a2"),
                      (S11, Role.SERVER, "s11"), (S21, Role.SERVER, "s21")],
                [((S11, UPLINK), (A1, 2)), ((S21, UPLINK), (A2, 2)), ((A1, 5), (A2, 5))])
    p.vm(S11, 1, WEB1)
    p.vm(S21, 1, WEB3)
    p.beacon(A1, TO_FABRIC)
    p.beacon(A2, TO_FABRIC)
    delivered = p.trace(S11, 1, Packet(WEB1, BROADCAST))
    assert sorted((d, port) for d, port, _ in delivered) == [(A1, TO_FABRIC), (S21, 1)]
    assert p.trace(S11, 1, Packet(WEB1, WEB3)) == [(S21, 1, Packet(WEB1, WEB3))]


def test_a_restarted_process_reads_its_shared_uplinks_back_from_the_switch(dc):
    dc.beacons()
    before = dc.p1.switches.entries(A1)
    again = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    plans = [again.switch_up(dpid, role, name, dc.p1.switches.entries(dpid), now=0.0)
             for dpid, role, name in [(S11, Role.SERVER, "s11"), (S12, Role.SERVER, "s12"),
                                      (A1, Role.ACCESS, "a1")]]
    plans += [again.link_seen(PortRef(S11, UPLINK), PortRef(A1, 2), now=0.0),
              again.link_seen(PortRef(S12, UPLINK), PortRef(A1, 3), now=0.0)]
    assert again.fabric.is_shared_uplink(PortRef(A1, TO_FABRIC))
    assert any("restored shared uplink a1:1" in n for plan in plans for n in plan.notes)
    for plan in plans:
        dc.p1.switches.apply(plan)
    assert dc.p1.switches.entries(A1) == before


def test_the_shared_fabric_never_gets_a_flow(dc):
    dc.beacons()
    dc.p1.vm(S11, 2, DB2)
    assert SHARED_FABRIC not in dc.p1.switches.tables
    assert all(SHARED_FABRIC not in plan_dpids for plan_dpids in [set(dc.p1.switches.tables)])
    check_indexes(dc.p1.engine)
    check_indexes(dc.p2.engine)


def test_a_vm_taken_over_by_another_process_is_reached_there(dc):
    """Cross-process migration without notice: the source cedes, then lets go."""
    dc.beacons()
    dc.send(dc.p1, S11, 1, WEB1, BROADCAST)
    # WEB1 resumes on s21 (p2); its first frame there is one the fabric never sees
    # (a RARP its ACL drops, say): p2's announcement is what moves it in the fabric
    dc.p2.vm(S21, 3, WEB1)
    assert ("p2", WEB1) in dc.announced and dc.stray == []
    # p1 learns from the store that p2 took WEB1 while its old port is still there
    dc.p1.apply(dc.p1.engine.handing_over(WEB1))
    assert ("p2", S21, 3) in _where(dc.send(dc.p1, S12, 1, WEB2, WEB1))
    assert _where(dc.send(dc.p2, S21, 1, WEB3, WEB1)) == [("p2", S21, 3)]
    # the old port goes away: p1 deprovisions and frames go by the shared fabric only
    dc.p1.apply(dc.p1.engine.port_down(S11, 1, now=0.0))
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p2", S21, 3)]
    assert not [f for dpid in (A1, S11, S12) for f in dc.p1.switches.flows(dpid)
                if decode_cookie(f.cookie).kind is CookieKind.MIGRATION]
    check_indexes(dc.p1.engine)


def test_ceding_an_unknown_vm_does_nothing(dc):
    assert dc.p1.engine.handing_over("00:fa:00:00:00:77").flow_count() == 0
    assert dc.p1.engine.handing_over(WEB3).flow_count() == 0


def test_a_new_uplink_announces_every_vm_behind_it_and_no_one_delivers_it(dc):
    dc.beacons()
    assert sorted(dc.announced) == sorted([("p1", WEB1), ("p1", WEB2), ("p2", DB1), ("p2", WEB3)])
    assert dc.stray == []
    assert dc.bridge.table[(0x1000 | WEB_VLAN, WEB1)] == 1
    dc.p1.vm(S12, 2, DB2)
    assert dc.announced[-1] == ("p1", DB2) and dc.stray == []


def test_a_vm_is_announced_only_once_its_flows_are_confirmed(dc):
    dc.beacons()
    verdict = dc.p1.engine.packet_in(S11, 2, DB2, b"", now=0.0)
    (out,) = [o for o in verdict.plan.packet_outs if o.out_port is not None]
    assert (out.dpid, out.out_port) == (A1, TO_FABRIC)
    assert DB2 in verdict.plan.confirms   # the app sends packet-outs after the barriers


def test_a_vm_attached_to_a_down_port_is_pre_provisioned_then_activated_by_link_up(dc):
    """The hypervisor of p2's server creates WEB1's port before WEB1 resumes there."""
    dc.beacons()
    dc.send(dc.p1, S11, 1, WEB1, BROADCAST)
    engine = dc.p2.engine
    dc.p2.apply(engine.port_down(S21, 3, deleted=False, now=0.0))
    verdict = engine.vm_attached(S21, 3, WEB1, now=0.0)
    dc.p2.apply(verdict.plan)
    assert WEB1 in engine.incoming and WEB1 not in engine.bindings
    assert not [a for a in dc.announced if a == ("p2", WEB1)]
    # a peer in p2's pod reaches WEB1 where it runs and where it is about to
    assert _where(dc.send(dc.p2, S21, 1, WEB3, WEB1)) == [("p1", S11, 1), ("p2", S21, 3)]
    plan = dc.p2.apply(engine.port_up(S21, 3))
    assert WEB1 in engine.bindings and WEB1 not in engine.incoming
    assert ("p2", WEB1) in dc.announced and WEB1 in plan.confirms
    assert _where(dc.send(dc.p2, S21, 1, WEB3, WEB1)) == [("p2", S21, 3)]
    assert not [f for f in dc.p2.switches.all_flows()
                if decode_cookie(f.cookie).kind is CookieKind.MIGRATION]
    check_indexes(engine)


def test_a_vm_attached_to_an_up_port_is_provisioned_at_once(dc):
    dc.beacons()
    verdict = dc.p2.engine.vm_attached(S21, 3, WEB2, now=0.0)
    dc.p2.apply(verdict.plan)
    assert verdict.provisioned is not None and WEB2 in dc.p2.engine.bindings


def test_a_hand_off_delivers_at_the_old_port_and_to_the_shared_fabric(dc):
    dc.beacons()
    dc.p1.apply(dc.p1.engine.handing_over(WEB1))
    dc.send(dc.p2, S21, 1, WEB3, BROADCAST)
    # the fabric still has WEB1 behind a1: the copy to the fabric goes nowhere yet
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p1", S11, 1)]
    dc.p2.apply(dc.p2.engine.port_down(S21, 3, deleted=False, now=0.0))
    dc.p2.apply(dc.p2.engine.vm_attached(S21, 3, WEB1, now=0.0).plan)
    dc.p2.apply(dc.p2.engine.port_up(S21, 3))    # announced: the fabric follows WEB1
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p1", S11, 1), ("p2", S21, 3)]


def test_the_ip_of_a_vm_handed_over_is_bound_before_it_arrives(dc):
    engine = dc.p2.engine
    dc.p2.apply(engine.expect_ip(WEB1, "10.0.100.1"))
    dc.p2.apply(engine.port_down(S21, 3, deleted=False, now=0.0))
    dc.p2.apply(engine.vm_attached(S21, 3, WEB1, now=0.0).plan)
    assert engine.incoming[WEB1].ip == "10.0.100.1"
    dc.p2.apply(engine.port_up(S21, 3))
    assert engine.bindings[WEB1].ip == "10.0.100.1"
    assert engine.expect_ip(WEB1, "10.0.100.9").flow_count() == 0   # bound: unchanged
    assert engine.bindings[WEB1].ip == "10.0.100.1"


def test_the_arrival_on_a_pre_provisioned_port_is_announced_before_activation(dc):
    dc.beacons()
    engine = dc.p2.engine
    dc.p2.apply(engine.port_down(S21, 3, deleted=False, now=0.0))
    dc.p2.apply(engine.vm_attached(S21, 3, WEB1, now=0.0).plan)
    assert engine.arrival(S21, 1).is_empty()          # WEB3's port: nothing pre-provisioned
    plan = engine.arrival(S21, 3)
    (out,) = plan.packet_outs
    assert out.at_once and (out.dpid, out.out_port) == (A2, TO_FABRIC)
    assert not plan.changes and WEB1 in engine.incoming   # activation comes after


def test_an_expected_vms_rarp_moves_it_in_the_fabric_without_the_controller(dc):
    """QEMU's RARP from a VM resuming on a pre-provisioned port leaves by the uplink as
    an announcement (switches only); the other process's uplink drops it."""
    dc.beacons()
    dc.send(dc.p1, S11, 1, WEB1, BROADCAST)      # the fabric has WEB1 behind a1
    engine = dc.p2.engine
    dc.p2.apply(engine.port_down(S21, 3, deleted=False, now=0.0))
    dc.p2.apply(engine.vm_attached(S21, 3, WEB1, now=0.0).plan)
    delivered = dc.send(dc.p2, S21, 3, WEB1, BROADCAST, eth_type=0x8035)
    assert _where(delivered) == [("p2", S21, OFPP_CONTROLLER)]   # for the activation
    assert dc.bridge.table[(0x1000 | WEB_VLAN, WEB1)] == 2         # learned behind a2
    # another VM's RARP is an ordinary broadcast (its template decides), not readdressed
    others = dc.send(dc.p2, S21, 1, WEB3, BROADCAST, eth_type=0x8035)
    assert others and all(packet.eth_dst == BROADCAST for *_, packet in others)
    dc.p2.apply(engine.port_up(S21, 3))
    assert not [f for f in dc.p2.switches.all_flows()
                if decode_cookie(f.cookie).kind is CookieKind.MIGRATION]


def test_a_withdrawn_hand_off_leaves_the_vm_served_at_its_port_only(dc):
    dc.beacons()
    before = dc.p1.switches.all_flows()
    dc.p1.apply(dc.p1.engine.handing_over(WEB1))
    assert dc.p1.switches.all_flows() != before
    plan = dc.p1.apply(dc.p1.engine.stop_handing_over(WEB1))
    assert any("hand-off to another process was withdrawn" in n for n in plan.notes)
    assert dc.p1.switches.all_flows() == before
    assert dc.p1.engine.stop_handing_over(WEB1).flow_count() == 0


def test_a_vm_behind_the_other_access_switch_reaches_the_shared_fabric_by_the_cable():
    """Only a1 has an uplink: a2's VMs reach other processes' VMs through a1."""
    p = Process("p", [(A1, Role.ACCESS, "a1"), (A2, Role.ACCESS, "a2"),
                      (S11, Role.SERVER, "s11"), (S21, Role.SERVER, "s21")],
                [((S11, UPLINK), (A1, 2)), ((S21, UPLINK), (A2, 2)), ((A1, 5), (A2, 5))])
    p.vm(S11, 1, WEB1)
    p.vm(S21, 1, WEB3)
    p.beacon(A1, TO_FABRIC)
    elsewhere = "00:fa:00:00:00:77"   # a VM of another process
    assert [(d, port) for d, port, _ in p.trace(S21, 1, Packet(WEB3, elsewhere))] == \
        [(A1, TO_FABRIC)]
    assert p.engine.recompute_all().flow_count() == 0


def _moved_to_p2(dc):
    """WEB1, served by p1 on s11, resumes on p2's pre-provisioned s21 port 3 while p1
    delivers its frames at the old port and to the shared fabric (a hand-off)."""
    dc.beacons()
    dc.send(dc.p1, S11, 1, WEB1, BROADCAST)       # the fabric has WEB1 behind a1
    dc.p1.apply(dc.p1.engine.handing_over(WEB1))
    engine = dc.p2.engine
    dc.p2.apply(engine.port_down(S21, 3, deleted=False, now=0.0))
    dc.p2.apply(engine.vm_attached(S21, 3, WEB1, now=0.0).plan)
    dc.p2.apply(engine.arrival(S21, 3))
    dc.p2.apply(engine.port_up(S21, 3))
    assert dc.bridge.table[(0x1000 | WEB_VLAN, WEB1)] == 2
    dc.p1.apply(dc.p1.engine.port_down(S11, 1, now=0.0))   # the old port goes away


def _rounds(process, count):
    """``count`` announcement rounds of the process's timer; the rounds that sent."""
    sent = []
    for number in range(1, count + 1):
        plan = process.engine.announce_rounds()
        if plan is not None:
            process.apply(plan)
            sent.append(number)
    return sent


def test_a_stale_frame_that_teaches_the_fabric_the_old_way_is_corrected_by_a_round(dc):
    """A frame WEB1 sent at its old place, delivered by the fabric after the new
    place's announcement, teaches the fabric the old way back: frames from p1's
    pod then hairpin at the fabric and are lost while WEB1 talks only inside p2's
    pod. The next announcement round corrects the fabric."""
    _moved_to_p2(dc)
    dc.bridge.table[(0x1000 | WEB_VLAN, WEB1)] = 1    # the stale frame, behind a1
    assert dc.send(dc.p1, S12, 1, WEB2, WEB1) == []   # lost at the fabric
    assert _rounds(dc.p2, 1) == [1]
    assert dc.bridge.table[(0x1000 | WEB_VLAN, WEB1)] == 2 and dc.stray == []
    assert _where(dc.send(dc.p1, S12, 1, WEB2, WEB1)) == [("p2", S21, 3)]


def test_announcement_rounds_repeat_a_few_times_then_stop(dc):
    _moved_to_p2(dc)
    announced = len(dc.announced)
    assert _rounds(dc.p2, 30) == list(shared_fabric.REANNOUNCE_ROUNDS)
    assert dc.announced[announced:] == [("p2", WEB1)] * len(shared_fabric.REANNOUNCE_ROUNDS)
    assert dc.p2.engine.announce_rounds() is None    # nothing pending, nothing sent


def test_announcement_rounds_stop_when_the_vm_leaves_or_moves_on(dc):
    _moved_to_p2(dc)
    dc.p2.apply(dc.p2.engine.port_down(S21, 3, now=0.0))   # gone before round 1
    assert _rounds(dc.p2, 30) == []
    dc.p2.vm(S21, 4, WEB1)                                 # back on another port
    assert _rounds(dc.p2, 1) == [1]
    dc.p2.apply(dc.p2.engine.port_down(S21, 4, now=0.0))   # and moved on again
    dc.p2.vm(S21, 5, WEB1)
    assert dc.p2.engine.bindings[WEB1].port == 5
    announced = len(dc.announced)
    assert _rounds(dc.p2, 30) == list(shared_fabric.REANNOUNCE_ROUNDS)   # from port 5
    assert dc.announced[announced:] == [("p2", WEB1)] * len(shared_fabric.REANNOUNCE_ROUNDS)


def test_a_vm_being_handed_over_is_never_announced_by_its_source(dc):
    """The source's announcement would pull the fabric back to the pod the VM left."""
    dc.p1.apply(dc.p1.engine.handing_over(WEB1))   # before the uplink is known
    dc.beacons()                                     # a new uplink announces its VMs
    assert ("p1", WEB2) in dc.announced and ("p1", WEB1) not in dc.announced
    assert _rounds(dc.p1, 30) == []
    dc.p1.apply(dc.p1.engine.stop_handing_over(WEB1))   # withdrawn: announced as before
    dc.p1.apply(dc.p1.engine.port_down(S11, 1, now=0.0))
    dc.p1.vm(S11, 1, WEB1)
    assert dc.announced[-1] == ("p1", WEB1)
