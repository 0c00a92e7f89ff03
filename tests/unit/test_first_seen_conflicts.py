"""``bind_ip: first_seen`` refuses an IPv4 address another VM holds, as DHCP snooping and
IPv6 binding do: the VM stays unbound (its IPv4 still goes to the controller, never
through), the refusal names both VMs, the address and the template, and the app logs
it once per VM. On fake switches, invariants after every plan."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from ryu_apps.app.framework import ofproto_v1_3 as ofp
from ryu_apps.app.repairs import RepairSchedule
from ryu_apps.app.switch_events import SwitchEventHandlers, with_article
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.pipeline import Table
from ryu_apps.lab.vmtools.forge import mac_bytes
from tests.support.fake_switches import Packet
from tests.support.small_fabric import S11, S12
from tests.unit.test_ipv6_binding import LIBRARY
from tests.unit.test_shared_pipeline import Lab

OWNER, INTRUDER, LATE = "00:b0:00:00:00:01", "00:b0:00:00:00:02", "00:b0:00:00:00:03"
HELD, FREE = "10.0.0.1", "10.0.0.9"


@pytest.fixture()
def lab() -> Lab:
    lab = Lab(LIBRARY)
    lab.vm(S11, 1, OWNER, HELD)
    return lab


def first_frame(lab: Lab, dpid: int, port: int, mac: str, ip: str):
    verdict = lab.engine.packet_in(dpid, port, mac, b"arp", now=0.0, sender_ip=ip)
    lab.apply(verdict.plan)
    return verdict


def exits(lab: Lab, dpid: int, port: int, mac: str, ip: str) -> set:
    """Where the VM's ARP reply from ``ip`` to OWNER leaves."""
    packet = Packet(mac, OWNER, eth_type=0x0806, arp_spa=ip)
    return {(d, p) for d, p, _ in lab.switches.trace(lab.engine.fabric, dpid, port, packet)}


def test_a_vm_claiming_a_neighbours_address_in_its_very_first_frame_stays_unbound(lab):
    verdict = first_frame(lab, S12, 2, INTRUDER, HELD)
    intruder = lab.engine.bindings[INTRUDER]        # provisioned, as a DHCP VM before its ACK
    assert verdict.provisioned == intruder and intruder.ip is None
    assert intruder.ip_source is None
    assert lab.engine.bindings[OWNER].ip == HELD
    kind, detail = verdict.address_refused
    assert kind == "address bound to another VM"
    for named in (HELD, OWNER, INTRUDER, "'first'", str(0xB0), "first_seen"):
        assert named in detail, (named, detail)
    assert not verdict.plan.packet_outs, "the claiming frame is not sent on"
    # what it sends from the held address reaches the controller only, never OWNER
    assert exits(lab, S12, 2, INTRUDER, HELD) == {(S12, OFPP_CONTROLLER)}
    again = lab.engine.packet_in(S12, 2, INTRUDER, b"arp", now=1.0, sender_ip=HELD)
    lab.apply(again.plan)
    assert again.address_refused is not None and not again.plan.packet_outs
    assert lab.engine.bindings[INTRUDER].ip is None
    # an address nobody holds is bound, and then it is the VM's
    free = lab.engine.packet_in(S12, 2, INTRUDER, b"arp", now=2.0, sender_ip=FREE)
    lab.apply(free.plan)
    assert free.address_refused is None and lab.engine.bindings[INTRUDER].ip == FREE
    assert exits(lab, S12, 2, INTRUDER, FREE) == {(S11, 1)}
    assert exits(lab, S12, 2, INTRUDER, HELD) == set()       # anti-spoofing now


def test_a_bound_vm_speaking_from_its_own_address_is_no_conflict(lab):
    verdict = lab.engine.packet_in(S11, 1, OWNER, b"arp", now=1.0, sender_ip=HELD)
    assert verdict.address_refused is None


def test_the_address_is_free_again_once_its_holder_is_gone(lab):
    lab.vm(S12, 2, INTRUDER)
    assert first_frame(lab, S12, 2, INTRUDER, HELD).address_refused is not None
    lab.apply(lab.engine.notify(Notice.SHUTDOWN, OWNER, now=1.0).plan)
    assert OWNER not in lab.engine.bindings
    verdict = first_frame(lab, S12, 2, INTRUDER, HELD)
    assert verdict.address_refused is None and lab.engine.bindings[INTRUDER].ip == HELD
    # and the one who lost it cannot take it back
    assert first_frame(lab, S11, 3, LATE, HELD).address_refused is not None


def test_an_address_bound_by_the_switches_flows_after_a_restart_is_held_too(lab):
    """A fresh engine reading OWNER's flows back (its address pinned) refuses it too."""
    from ryu_apps.core.engine import ProvisioningEngine
    from ryu_apps.core.identifiers import PrefixScheme
    from tests.support.small_fabric import bring_up
    fresh = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    bring_up(fresh, lambda plan: plan, held=lab.switches.entries)
    assert fresh.bindings[OWNER].ip == HELD
    verdict = fresh.packet_in(S12, 2, INTRUDER, b"arp", now=0.0, sender_ip=HELD)
    assert verdict.address_refused is not None and fresh.bindings[INTRUDER].ip is None


# -- the app's log: once per VM ----------------------------------------------------------
class _App(SwitchEventHandlers):
    def __init__(self, lab: Lab) -> None:
        self.engine = lab.engine
        self.logger = logging.getLogger("test.first_seen")
        self.datapaths = {S11: object(), S12: object()}
        self.repairs = RepairSchedule(5.0)
        self.metrics = SimpleNamespace(packet_in=lambda label: None)
        self.vm_log = SimpleNamespace(verdict=lambda *args: None)
        self.provisioning_times = SimpleNamespace(detected=lambda *args: None)
        self._fault_mac = ""
        self.sent: list = []
        self.send_plan = self.sent.append
        self._send_urgent = lambda plan: None

    def handler_failed(self, name: str) -> None:
        raise AssertionError(f"{name} raised")


def _arp_packet_in(mac: str, ip: str, port: int):
    arp = bytes.fromhex("0001080006040002") + mac_bytes(mac) \
        + bytes(int(x) for x in ip.split(".")) + mac_bytes(OWNER) + bytes([10, 0, 0, 1])
    data = mac_bytes(OWNER) + mac_bytes(mac) + b"\x08\x06" + arp
    datapath = SimpleNamespace(id=S12, ofproto=ofp)
    return SimpleNamespace(msg=SimpleNamespace(datapath=datapath, version=ofp.OFP_VERSION,
                                               match={"in_port": port}, data=data,
                                               table_id=Table.CLASSIFY))


def test_the_app_logs_the_refusal_once_per_vm_naming_both_vms(lab, caplog):
    app = _App(lab)
    with caplog.at_level(logging.WARNING, logger="test.first_seen"):
        for _ in range(3):
            app._packet_in(_arp_packet_in(INTRUDER, HELD, 2))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert all(named in lines[0] for named in (HELD, OWNER, INTRUDER, "'first'")), lines[0]
    assert lines[0].startswith(f"IPv4 guard dropped an address bound to another VM from VM "
                               f"{INTRUDER} on switch"), lines[0]
    assert lab.engine.bindings[INTRUDER].ip is None


@pytest.mark.parametrize("kind, phrase", [
    ("address bound to another VM", "an address bound to another VM"),
    ("spoofed source", "a spoofed source"),
    ("neighbour advertisement", "a neighbour advertisement"),
    ("DHCPv6 server message", "a DHCPv6 server message"),
    ("", "a "),
])
def test_a_guard_s_refusal_takes_its_article(kind, phrase):
    assert with_article(kind) == phrase
