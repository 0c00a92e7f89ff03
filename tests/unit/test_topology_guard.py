"""Topology comes only from probes the controller signed, and no probe rewires a cable.

The forged-LLDP attacks of issue 11 on fake switches and on the probe codec:
unsigned, forged, stale, replayed and malformed probes are rejected without an
exception; self-links, links between VM hosts and links that would evict a
verified one are refused; flapping ports are held down; links and shared
uplinks age out; a VM's LLDP and tagged frames die in its pipeline.
"""

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_apps.core import lldp
from ryu_apps.core.fabric import SHARED_FABRIC, PortRef, Role
from ryu_apps.core.flowspec import ETH_TYPE_LLDP, OFPP_CONTROLLER, OFPVID_PRESENT
from ryu_apps.core.link_guard import MAX_CHANGES, MAX_MISSED_ROUNDS, UPLINK_TIMEOUT
from ryu_apps.core.pipeline import Priority, Table
from ryu_apps.core.probe_auth import ProbeSigner, ProbeVerifier, RejectReason, Rejection
from tests.support.fake_switches import Packet
from tests.unit.test_engine import A1, A2, F1, S11, S12, S21, UPLINK, WEB1, WEB3
from tests.unit.test_identity import Lab

SECRET = b"s" * 32
SRC = bytes.fromhex("0e00d9000001")
NOW = 1_000_000.0


def _signed(dpid=S11, port=3, now=NOW, nonce=b"n0000001", beacon=False, secret=SECRET,
            process="p1"):
    return ProbeSigner(secret, process).probe(dpid, port, SRC, now, nonce, beacon=beacon)


# -- the probe codec and its signature -------------------------------------------------
def test_a_signed_probe_is_believed_once():
    verifier = ProbeVerifier(SECRET)
    probe = verifier.verify(_signed(), NOW + 0.5)
    assert (probe.dpid, probe.port, probe.process, probe.beacon) == (S11, 3, "p1", False)
    again = verifier.verify(_signed(), NOW + 0.6)
    assert isinstance(again, Rejection) and again.reason is RejectReason.REPLAYED


@pytest.mark.parametrize("frame, reason", [
    (lldp.build_probe(S11, 3, SRC), RejectReason.UNSIGNED),
    (_signed(secret=b"x" * 32), RejectReason.BAD_SIGNATURE),
    (_signed(now=NOW - 60), RejectReason.STALE),
    (_signed(now=NOW + 60), RejectReason.STALE),
    (b"\x01\x80\xc2\x00\x00\x0e" + SRC + b"\x88\xcc" + b"\x02\x07\x07dpid:-5",
     RejectReason.MALFORMED),
])
def test_probes_nobody_signed_now_are_rejected_with_their_reason(frame, reason):
    verifier = ProbeVerifier(SECRET)
    rejection = verifier.verify(frame, NOW)
    assert isinstance(rejection, Rejection) and rejection.reason is reason
    assert verifier.rejected[reason] == 1 and verifier.accepted == 0


def test_a_signature_covers_the_port_the_switch_and_the_destination():
    frame = bytearray(_signed(port=3))
    at = frame.index(b"\x073", 20)                  # the port id TLV's value: "3" -> "4"
    frame[at + 1] = ord("4")
    assert ProbeVerifier(SECRET).verify(bytes(frame), NOW).reason is RejectReason.BAD_SIGNATURE
    beacon = bytearray(_signed(beacon=True))
    beacon[:6] = lldp.LLDP_MULTICAST                 # a beacon re-sent as a probe
    assert isinstance(ProbeVerifier(SECRET).verify(bytes(beacon), NOW), Rejection)


def test_a_beacon_is_believed_once_per_receiving_port():
    verifier = ProbeVerifier(SECRET)
    beacon = _signed(beacon=True)
    assert not isinstance(verifier.verify(beacon, NOW, at=(A1, 1)), Rejection)
    assert not isinstance(verifier.verify(beacon, NOW, at=(A2, 1)), Rejection)
    assert verifier.verify(beacon, NOW, at=(A1, 1)).reason is RejectReason.REPLAYED


@pytest.mark.parametrize("port_text", [b"-5", b"0", b"4294967041", b"05", b"3x", b"",
                                       b"99999999999999999999"])
def test_port_values_outside_openflow_ports_make_no_probe(port_text):
    chassis = bytes([7]) + b"dpid:" + b"%016x" % S11
    body = (struct.pack("!H", (1 << 9) | len(chassis)) + chassis
            + struct.pack("!H", (2 << 9) | (1 + len(port_text))) + bytes([7]) + port_text
            + b"\x00\x00")
    assert lldp.parse_probe(lldp.LLDP_MULTICAST + SRC + b"\x88\xcc" + body) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_parsed_without_an_exception(junk):
    frame = lldp.LLDP_MULTICAST + SRC + b"\x88\xcc" + junk
    lldp.parse_probe_frame(frame)
    ProbeVerifier(SECRET).verify(frame, NOW)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(1, lldp.MAX_PORT), st.binary(min_size=8,
                                                                             max_size=8))
def test_every_signed_probe_round_trips(dpid, port, nonce):
    probe = ProbeVerifier(SECRET).verify(_signed(dpid, port, nonce=nonce), NOW)
    assert (probe.dpid, probe.port) == (dpid, port)


def test_the_replay_cache_is_bounded():
    verifier = ProbeVerifier(SECRET, cache_size=100)
    for i in range(1000):
        verifier.verify(_signed(nonce=b"%08d" % i), NOW)
    assert len(verifier._seen) <= 100 and verifier.accepted == 1000


# -- which links may change the fabric ------------------------------------------------
def test_self_links_and_links_between_vm_hosts_are_refused():
    lab = Lab()
    plan = lab.apply(lab.engine.link_seen(PortRef(S11, 5), PortRef(S11, 6), now=lab.now))
    assert "self-link" in plan.warnings[0] and not lab.engine.fabric.peer(PortRef(S11, 5))
    plan = lab.apply(lab.engine.link_seen(PortRef(S11, 5), PortRef(S21, 6), now=lab.now))
    assert "both switches host VMs" in plan.warnings[0]
    assert not lab.engine.fabric.peer(PortRef(S21, 6))
    again = lab.engine.link_seen(PortRef(S11, 5), PortRef(S11, 6), now=lab.now)
    assert not again.warnings, "each refusal is reported once"


def test_a_probe_never_evicts_a_verified_link():
    lab = Lab()
    plan = lab.apply(lab.engine.link_seen(PortRef(S11, 7), PortRef(A1, 2), now=lab.now))
    assert "is linked to" in plan.warnings[0]
    assert lab.engine.fabric.peer(PortRef(A1, 2)) == PortRef(S11, UPLINK)
    assert lab.engine.fabric.peer(PortRef(S11, 7)) is None


def test_after_its_port_went_down_a_port_may_be_linked_again():
    lab = Lab()
    lab.apply(lab.engine.port_down(S11, UPLINK, now=lab.now))
    lab.apply(lab.engine.link_seen(PortRef(S11, 7), PortRef(A1, 2), now=lab.now))
    assert lab.engine.fabric.peer(PortRef(A1, 2)) == PortRef(S11, 7)


def test_a_flapping_port_is_held_down():
    lab = Lab()
    a, b = PortRef(S11, UPLINK), PortRef(A1, 2)
    warnings = []
    for _ in range(MAX_CHANGES):
        warnings += lab.apply(lab.engine.port_down(S11, UPLINK, now=lab.now)).warnings
        warnings += lab.apply(lab.engine.link_seen(a, b, now=lab.now)).warnings
        lab.now += 1
    assert any("held down" in w for w in warnings)
    assert lab.engine.fabric.peer(a) is None
    lab.now += lab.engine.links.hold_down + 1
    lab.apply(lab.engine.link_seen(a, b, now=lab.now))
    assert lab.engine.fabric.peer(a) == b


def test_links_age_out_when_their_probes_stop_but_not_while_a_switch_is_away():
    lab = Lab()
    lab.apply(lab.engine.switch_down(S21))
    for _ in range(MAX_MISSED_ROUNDS + 2):
        lab.now += 1
        lab.apply(lab.engine.probe_round(lab.now))
        # every link but s21's keeps being proven
        for a, b in lab.engine.fabric.links():
            if S21 not in (a.dpid, b.dpid):
                lab.engine.link_seen(a, b, now=lab.now)
    assert lab.engine.fabric.peer(PortRef(S21, UPLINK)) == PortRef(A2, 2), "s21 is away"
    lab.apply(lab.engine.switch_up(S21, Role.SERVER, "s21", [], now=lab.now))
    warnings = []
    for _ in range(MAX_MISSED_ROUNDS + 2):
        lab.now += 1
        warnings += lab.apply(lab.engine.probe_round(lab.now)).warnings
    assert lab.engine.fabric.peer(PortRef(S21, UPLINK)) is None
    assert any("no probes" in w for w in warnings)


def test_a_shared_uplink_expires_when_its_beacons_stop():
    lab = Lab()
    lab.apply(lab.engine.shared_uplink_seen(PortRef(A1, 9), "p2", now=lab.now))
    assert lab.engine.fabric.is_shared_uplink(PortRef(A1, 9))
    lab.now += UPLINK_TIMEOUT / 2
    lab.apply(lab.engine.shared_uplink_seen(PortRef(A1, 9), "p2", now=lab.now))
    lab.apply(lab.engine.probe_round(lab.now + UPLINK_TIMEOUT - 1))
    assert lab.engine.fabric.is_shared_uplink(PortRef(A1, 9))
    lab.apply(lab.engine.probe_round(lab.now + UPLINK_TIMEOUT + 1))
    assert not lab.engine.fabric.is_shared_uplink(PortRef(A1, 9))
    assert SHARED_FABRIC not in {p.dpid for _, p in lab.engine.fabric.links()}


# -- what the pipeline does with LLDP and tagged frames ---------------------------------
def _lldp(src):
    return Packet(src, "01:80:c2:00:00:0e", ETH_TYPE_LLDP)


def test_a_vms_lldp_and_tagged_frames_die_in_its_pipeline():
    lab = Lab()
    lab.frame(S11, 1, WEB1)
    trace = lab.switches.trace(lab.engine.fabric, S11, 1, _lldp(WEB1))
    assert trace == [], "neither the controller nor another VM"
    tagged = Packet(WEB1, WEB3, vlan_vid=OFPVID_PRESENT | 300)
    assert lab.switches.trace(lab.engine.fabric, S11, 1, tagged) == []
    # tagged frames from a port without a VM are dropped too, not punted
    from_new_port = dataclasses.replace(tagged, eth_src="00:fa:00:00:00:07")
    assert lab.switches.trace(lab.engine.fabric, S11, 5, from_new_port) == []


def test_lldp_from_a_link_port_and_from_a_new_port_reach_the_controller_metered():
    lab = Lab()
    for dpid, port in ((S11, UPLINK), (S11, 5), (A1, 9)):
        spec = lab.switches.lookup(dpid, Table.CLASSIFY, _lldp(lldp_src()), port)
        assert any(getattr(a, "port", None) == OFPP_CONTROLLER
                   for i in spec.instructions for a in getattr(i, "actions", ()))
        assert any(type(i).__name__ == "Meter" for i in spec.instructions)
    link = lab.switches.lookup(S11, Table.CLASSIFY, _lldp(lldp_src()), UPLINK)
    other = lab.switches.lookup(S11, Table.CLASSIFY, _lldp(lldp_src()), 5)
    assert link.priority == Priority.LLDP and other.priority == Priority.LLDP_OTHER
    assert _meter(link) != _meter(other)


def lldp_src():
    return "0e:00:d9:00:00:01"


def _meter(spec):
    return next(i.meter_id for i in spec.instructions if type(i).__name__ == "Meter")


def test_a_port_that_sent_a_forged_probe_has_its_lldp_dropped_until_the_quarantine_ends():
    lab = Lab()
    lab.apply(lab.engine.probe_refused(S11, 5, now=lab.now))
    assert lab.switches.trace(lab.engine.fabric, S11, 5, _lldp(lldp_src())) == []
    assert lab.switches.trace(lab.engine.fabric, S11, UPLINK, _lldp(lldp_src())) == \
        [(S11, OFPP_CONTROLLER, _lldp(lldp_src()))], "link ports are not affected"
    lab.later(61)
    assert lab.switches.trace(lab.engine.fabric, S11, 5, _lldp(lldp_src())) != []


def test_a_free_port_of_an_access_or_fabric_switch_reaches_nothing():
    lab = Lab()
    lab.frame(S11, 1, WEB1)
    lab.frame(S21, 1, WEB3)
    injected = Packet("00:fa:00:00:00:66", WEB3, vlan_vid=OFPVID_PRESENT | 100)
    for dpid in (A1, F1, A2):
        assert lab.switches.trace(lab.engine.fabric, dpid, 9, injected) == [], hex(dpid)
    # the same frame from a link reaches the VM
    assert lab.switches.trace(lab.engine.fabric, F1, 1, injected) != []


def test_no_flow_is_compiled_for_a_refused_link():
    lab = Lab()
    before = lab.switches.entries(S12)
    lab.apply(lab.engine.link_seen(PortRef(S12, 7), PortRef(S21, 8), now=lab.now))
    assert lab.switches.entries(S12) == before
