"""The attack tool's frames are the attacks the integration tests claim they are."""

import struct

import pytest

from ryu_apps.core import lldp
from ryu_apps.core.frames import parse_frame
from ryu_apps.core.probe_auth import ProbeSigner, ProbeVerifier, RejectReason, Rejection
from ryu_apps.lab.vmtools import forge

SECRET = b"k" * 32
SRC = bytes.fromhex("00fa00000003")
DPID = "0000000000000201"


def _reason(frame: bytes):
    verdict = ProbeVerifier(SECRET).verify(frame, 1000.0)
    return verdict.reason if isinstance(verdict, Rejection) else None


def test_forged_lldp_names_the_switch_and_port_it_is_told():
    frame = forge.forged_lldp(DPID, "2", SRC)
    assert lldp.parse_probe(frame) == (0x201, 2)
    assert frame[6:12] == SRC and _reason(frame) is RejectReason.UNSIGNED


def test_a_garbage_signature_is_well_formed_but_wrong():
    frame = forge.forged_lldp(DPID, "2", SRC, "garbage", now=1000.0)
    probe = lldp.parse_probe_frame(frame)
    assert probe is not None and probe.stamp_ms == 1_000_000 and probe.process == "forger"
    assert _reason(frame) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize("port", ["-5", "0", "99999999999999999999", "4294967041"])
def test_bad_port_values_are_malformed_probes(port):
    assert _reason(forge.forged_lldp(DPID, port, SRC)) is RejectReason.MALFORMED


def test_a_replayed_probe_is_the_real_one_byte_for_byte(tmp_path):
    real = ProbeSigner(SECRET, "p1").probe(0x201, 2, SRC, 1000.0, b"n" * 8)
    capture = tmp_path / "probe.pcap"
    header = struct.pack("<IHHiIII", forge.PCAP_MAGIC_US, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 0, 0, len(real), len(real)) + real
    capture.write_bytes(header + record + record[:10])    # a truncated last record
    assert forge.read_pcap(str(capture)) == [real]
    assert _reason(real) is None


@pytest.mark.parametrize("vlans, tpid", [([300], 0x8100), ([300, 100], 0x8100),
                                         ([100, 300], 0x88A8)])
def test_tagged_frames_carry_their_tags_and_a_marked_echo(vlans, tpid):
    frame = forge.tagged_echo(bytes.fromhex("00fe00000004"), SRC, vlans, tpid,
                              bytes([10, 0, 100, 3]), bytes([10, 0, 30, 4]), 7)
    assert struct.unpack_from("!HH", frame, 12) == (tpid, vlans[0])
    inner = 16 + 4 * (len(vlans) - 1)
    assert struct.unpack_from("!H", frame, inner)[0] == forge.ETH_P_IP
    packet = frame[inner + 2:]
    assert forge.checksum(packet[:20]) == 0, "a valid IPv4 header: a VM would answer it"
    assert forge.checksum(packet[20:20 + 8 + len(forge.MARKER) + 8]) == 0
    assert forge.has_marker(frame)
    if tpid == 0x8100:
        assert parse_frame(frame).tagged


def test_spoofed_frames_come_from_the_victims_mac_and_ip():
    victim, ip = bytes.fromhex("00fa00000001"), bytes([10, 0, 100, 1])
    garp = forge.spoofed("garp", victim, ip, forge.BROADCAST, b"\xff" * 4, 0)
    parsed = parse_frame(garp)
    assert parsed.eth_src == "00:fa:00:00:00:01" and parsed.sender_ip == "10.0.100.1"
    for kind in ("icmp", "udp"):
        frame = forge.spoofed(kind, victim, ip, bytes.fromhex("00fa00000005"),
                              bytes([10, 0, 100, 5]), 1)
        assert frame[6:12] == victim and frame[26:30] == ip and forge.has_marker(frame)
    with pytest.raises(ValueError, match="kind: expected garp, icmp or udp, got 'tcp'"):
        forge.spoofed("tcp", victim, ip, victim, ip, 0)
