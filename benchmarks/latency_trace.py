"""Where a new VM's provisioning latency goes, from a capture of the OpenFlow connections.

``python -m benchmarks.provisioning_latency --trace DIR`` captures the controller's
OpenFlow port on the loopback with tcpdump while VMs arrive one at a time, and saves
each VM's send, detection and confirmation times (monotonic clock) with the offset
of the capture's wall clock. This module splits each VM's latency into legs:

- ``frame -> packet-in on the wire``: OVS (upcall, ofproto, the OpenFlow encoder, TCP);
- ``packet-in on the wire -> handler``: Ryu reading, parsing and dispatching it;
- ``handler -> first write``: the engine, the encoder, the plan sender's flush and
  Ryu's send loop;
- ``first write -> last barrier reply``: the switches applying the VM's messages;
- ``last barrier reply -> confirmed``: Ryu reading and dispatching the replies.

The capture holds the loopback's TCP segments; each direction of each connection is
reassembled and cut into OpenFlow messages, each stamped with the time of the segment
that completed it.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from benchmarks.common import format_table, summary

PACKET_IN, FLOW_MOD, BARRIER_REPLY, METER_MOD = 10, 14, 21, 29
LEGS = ("frame -> packet-in on the wire", "packet-in on the wire -> handler",
        "handler -> first write", "first write -> last barrier reply",
        "last barrier reply -> confirmed")


@dataclass(frozen=True)
class Message:
    """One OpenFlow message seen on the wire."""

    ns: int              # wall-clock time of the segment that completed it
    to_switch: bool      # written by the controller
    connection: int      # the switch side's TCP port
    type: int
    body: bytes


def _segments(pcap: Path, of_port: int) -> Iterator[Tuple[int, int, int, bytes]]:
    """(ns, source port, destination port, TCP payload) of each captured IPv4 segment."""
    data = pcap.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    nanos = magic == 0xA1B23C4D
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack("<IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:
            continue
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport = struct.unpack("!HH", tcp[:4])
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload and of_port in (sport, dport):
            yield sec * 1_000_000_000 + (frac if nanos else frac * 1000), sport, dport, payload


def messages(pcap: Path, of_port: int) -> List[Message]:
    """Every OpenFlow message of the capture, in capture order."""
    buffers: Dict[Tuple[int, int], bytearray] = defaultdict(bytearray)
    found: List[Message] = []
    for ns, sport, dport, payload in _segments(pcap, of_port):
        to_switch = sport == of_port
        connection = dport if to_switch else sport
        buf = buffers[(connection, to_switch)]
        buf += payload
        while len(buf) >= 8:
            length = struct.unpack("!H", buf[2:4])[0]
            if length < 8 or len(buf) < length:
                break
            found.append(Message(ns, to_switch, connection, buf[1], bytes(buf[8:length])))
            del buf[:length]
    return found


def _legs(vm: dict, wire: List[Message], offset_ns: int) -> Optional[List[float]]:
    """A VM's five legs in ms, or None when its messages are not all in the window."""
    sent = vm["sent_ns"] + offset_ns
    detected, confirmed = vm["detected_ns"] + offset_ns, vm["confirmed_ns"] + offset_ns
    mac = bytes.fromhex(vm["mac"].replace(":", ""))
    window = [m for m in wire if sent <= m.ns <= confirmed]
    packet_in = next((m for m in window if m.type == PACKET_IN and not m.to_switch
                      and mac in m.body), None)
    if packet_in is None:
        return None
    writes = [m for m in window if m.to_switch and m.ns >= packet_in.ns
              and m.type in (FLOW_MOD, METER_MOD)]
    replies = [m for m in window if m.type == BARRIER_REPLY and not m.to_switch]
    if not writes or not replies:
        return None
    first_write, last_reply = writes[0].ns, replies[-1].ns
    points = (sent, packet_in.ns, detected, first_write, last_reply, confirmed)
    return [(b - a) / 1e6 for a, b in zip(points, points[1:])]


def decompose(trace: dict, pcap: Path) -> dict:
    """Per leg, the summary of its ms over the VMs whose messages were all found."""
    wire = messages(pcap, trace["of_port"])
    per_leg: List[List[float]] = [[] for _ in LEGS]
    switches_written: List[float] = []
    for vm in trace["vms"]:
        if vm.get("confirmed_ns") is None:
            continue
        legs = _legs(vm, wire, trace["offset_ns"])
        if legs is None:
            continue
        for values, value in zip(per_leg, legs):
            values.append(value)
        start, end = vm["detected_ns"] + trace["offset_ns"], vm["confirmed_ns"] + trace["offset_ns"]
        switches_written.append(len({m.connection for m in wire if m.to_switch
                                     and start <= m.ns <= end and m.type == FLOW_MOD}))
    return {"legs": {leg: summary(values) for leg, values in zip(LEGS, per_leg)},
            "switches_written_per_vm": summary(switches_written),
            "messages_captured": len(wire)}


def report(decomposition: dict) -> None:
    rows = [[leg, s["n"], s.get("p50"), s.get("p90"), s.get("p99"), s.get("max")]
            for leg, s in decomposition["legs"].items()]
    print(format_table(["leg (ms)", "n", "p50", "p90", "p99", "max"], rows))
    print(f"switches written per VM: {decomposition['switches_written_per_vm'].get('p50')} "
          f"(p50); OpenFlow messages captured: {decomposition['messages_captured']}")
