"""The latency benchmark's capture reader: OpenFlow messages cut from TCP segments, legs."""

from __future__ import annotations

import struct

from benchmarks import latency_trace
from benchmarks.latency_trace import BARRIER_REPLY, FLOW_MOD, PACKET_IN

OF_PORT, SWITCH_PORT = 6653, 40000
MAC = "00:fa:00:00:00:01"


def _of(type_: int, body: bytes = b"", xid: int = 1) -> bytes:
    return struct.pack("!BBHI", 4, type_, 8 + len(body), xid) + body


def _segment(ns: int, to_switch: bool, payload: bytes) -> bytes:
    sport, dport = (OF_PORT, SWITCH_PORT) if to_switch else (SWITCH_PORT, OF_PORT)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     b"\x7f\0\0\1", b"\x7f\0\0\1") + tcp
    frame = b"\0" * 12 + b"\x08\x00" + ip
    return struct.pack("<IIII", ns // 1_000_000_000, ns % 1_000_000_000,
                       len(frame), len(frame)) + frame


def _pcap(tmp_path, segments) -> object:
    header = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    path = tmp_path / "openflow.pcap"
    path.write_bytes(header + b"".join(_segment(*s) for s in segments))
    return path


def test_messages_split_across_and_packed_into_segments_are_cut_apart(tmp_path):
    flow_mod, barrier = _of(FLOW_MOD, b"x" * 40), _of(BARRIER_REPLY)
    pcap = _pcap(tmp_path, [(1_000, True, flow_mod[:20]),
                            (2_000, True, flow_mod[20:]),
                            (3_000, False, barrier + barrier[:4]),
                            (4_000, False, barrier[4:])])
    found = latency_trace.messages(pcap, OF_PORT)
    assert [(m.ns, m.to_switch, m.type, len(m.body)) for m in found] == [
        (2_000, True, FLOW_MOD, 40), (3_000, False, BARRIER_REPLY, 0),
        (4_000, False, BARRIER_REPLY, 0)]
    assert {m.connection for m in found} == {SWITCH_PORT}


def test_a_vms_latency_is_split_at_its_packet_in_first_write_and_last_reply(tmp_path):
    mac = bytes.fromhex(MAC.replace(":", ""))
    offset = 5_000_000_000          # wall clock minus monotonic
    ms = 1_000_000
    pcap = _pcap(tmp_path, [(offset + 1 * ms, False, _of(PACKET_IN, b"\0" * 10 + mac)),
                            (offset + 4 * ms, True, _of(FLOW_MOD, b"f" * 8)),
                            (offset + 6 * ms, False, _of(BARRIER_REPLY)),
                            (offset + 7 * ms, False, _of(BARRIER_REPLY))])
    trace = {"of_port": OF_PORT, "offset_ns": offset,
             "vms": [{"mac": MAC, "sent_ns": 0, "detected_ns": 2 * ms, "confirmed_ns": 8 * ms}]}
    legs = latency_trace.decompose(trace, pcap)["legs"]
    assert [legs[leg]["p50"] for leg in latency_trace.LEGS] == [1.0, 1.0, 2.0, 3.0, 1.0]
