"""Where a move's milliseconds go: one dynprov test bed, its OpenFlow channel captured.

Run: ``python -m benchmarks.migration_trace --mode packets --shape qemu [--moves 4]``
(root; OVS running; about 20 s per test bed and 3 s per move).

One copy of the demo topology and one dynprov controller in detection mode
``--mode`` (``ovsdb``, ``notice``, ``packets``); web1 moves between s11 and s21
as in ``benchmarks.migration`` (same ``migrate_once``), while ``tcpdump``
captures the controller's OpenFlow connections on the loopback. Per move it
prints one timeline, in ms since the switchover (the VM's old interface going
down), merging:

- the VM's milestones (new interface up, announcements, old port deleted);
- every OpenFlow message between the controller and the switches
  (PORT_STATUS, PACKET_IN, PACKET_OUT, FLOW_MOD, GROUP_MOD, BARRIER), by
  bridge, from the capture;
- the flow tables' changes (``ovs-ofctl monitor``);
- each prober's loss window (first lost, first answered probe by send time).

The timelines are saved as ``benchmarks/results/migration-trace-MODE-SHAPE.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from benchmarks.migration_cases import Case

#: OpenFlow 1.3 message types worth a line in the timeline.
OF_TYPES = {6: "FEATURES_REPLY", 10: "PACKET_IN", 12: "PORT_STATUS", 13: "PACKET_OUT",
            14: "FLOW_MOD", 15: "GROUP_MOD", 20: "BARRIER_REQUEST", 21: "BARRIER_REPLY",
            29: "METER_MOD"}
RESULTS = Path(__file__).resolve().parent / "results"


# -- the capture --------------------------------------------------------------------
def pcap_segments(path: Path) -> Iterator[Tuple[int, int, int, bytes]]:
    """(wall-clock ns, source port, destination port, TCP payload) of an Ethernet pcap."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError(f"{path}: not a little-endian pcap file (magic {magic:#x})")
    scale = 1000 if magic == 0xA1B2C3D4 else 1
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, length, _ = struct.unpack("<IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + length]
        offset += 16 + length
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            continue
        ip_len = (frame[14] & 0x0F) * 4
        tcp = frame[14 + ip_len:]
        total = struct.unpack("!H", frame[16:18])[0]
        header = (tcp[12] >> 4) * 4
        payload = tcp[header:total - ip_len]
        if payload:
            source, destination = struct.unpack("!HH", tcp[:4])
            yield seconds * 1_000_000_000 + fraction * scale, source, destination, payload


def of_messages(path: Path, of_port: int) -> List[dict]:
    """Every OpenFlow message of the capture: time, direction, switch-side port, type."""
    streams: Dict[Tuple[int, bool], bytearray] = {}
    messages: List[dict] = []
    for at_ns, source, destination, payload in pcap_segments(path):
        if of_port not in (source, destination):
            continue
        to_controller = destination == of_port
        switch_port = source if to_controller else destination
        buffer = streams.setdefault((switch_port, to_controller), bytearray())
        buffer += payload
        while len(buffer) >= 8:
            length = struct.unpack("!H", buffer[2:4])[0]
            if length < 8 or len(buffer) < length:
                break
            body = bytes(buffer[:length])
            del buffer[:length]
            messages.append({"at_ns": at_ns, "up": to_controller, "conn": switch_port,
                             "type": body[1], "body": body})
    return messages


def bridges_of(messages: List[dict], dpid_names: Dict[int, str]) -> Dict[int, str]:
    """Switch-side TCP port -> bridge name, from each connection's FEATURES_REPLY."""
    return {m["conn"]: dpid_names.get(struct.unpack("!Q", m["body"][8:16])[0], "?")
            for m in messages if m["type"] == 6 and m["up"]}


def describe(message: dict) -> str:
    """A short label: the type, and a packet-in's source MAC or a port-status reason."""
    kind, body = message["type"], message["body"]
    label = OF_TYPES.get(kind, f"type {kind}")
    if kind == 12 and len(body) >= 24:
        reason = {0: "add", 1: "delete", 2: "modify"}.get(body[8], "?")
        port_no = struct.unpack("!I", body[16:20])[0]
        state = struct.unpack("!I", body[16 + 52:16 + 56])[0] if len(body) >= 72 else 0
        label += f" {reason} port {port_no}" + (" link-down" if state & 1 else "")
    elif kind == 10 and len(body) >= 32:
        match_len = struct.unpack("!H", body[26:28])[0]
        frame = body[24 + ((match_len + 7) // 8) * 8 + 2:]
        if len(frame) >= 14:
            label += f" from {frame[6:12].hex(':')} ethertype {frame[12:14].hex()}"
    return label


# -- one traced test bed ------------------------------------------------------------------
def trace(mode: str, shape: str, moves: int) -> List[dict]:
    """``moves`` traced moves of web1 in (mode, shape) on a fresh test bed."""
    from benchmarks.migration import migrate_once
    from benchmarks.migration_beds import DynprovTestbed
    from ryu_apps.lab.processes import free_tcp_port

    of_port = free_tcp_port()
    workdir = Path(tempfile.mkdtemp(prefix="dynprov-trace-"))
    capture = workdir / "of.pcap"
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-U", "-w", str(capture),
                             f"tcp port {of_port}"], stderr=subprocess.DEVNULL)
    offset_ns = time.time_ns() - time.monotonic_ns()
    tag = os.getpid() % 1000
    bed = DynprovTestbed(f"mt{tag:03d}", (os.getpid() % 2048) << 24,
                         watch_ovsdb=(mode == "ovsdb"), of_port=of_port)
    records = []
    try:
        for _ in range(moves):
            record = migrate_once(bed, Case("dynprov", mode, shape), watch=True)
            records.append(record)
            time.sleep(0.5)
        dpids = {int(s.dpid, 16): short for short, s in bed.switches.items()}
    finally:
        bed.stop()
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    messages = of_messages(capture, of_port)
    names = bridges_of(messages, dpids)
    return [timeline_of(r, messages, names, offset_ns) for r in records]


def timeline_of(record: dict, messages: List[dict], names: Dict[int, str],
                offset_ns: int) -> dict:
    """One move's merged timeline, ms since the switchover."""
    line = record["timeline"]
    zero_mono = line["zero_ns"]
    events: List[Tuple[float, str]] = [
        (line["guest_up_ms"], "VM: new interface up (in the VM)"),
        *([(line["old_deleted_ms"], "VM: old interface deleted (its ip link del returned)")]
          if "old_deleted_ms" in line else []),
        (line["source_port_removed_ms"], "VM: source port deleted"),
        *[(t, "VM: announcement sent") for t in line["announcements_ms"]],
        *[(t, f"flows {bridge}: {kind}") for bridge, t, kind in line["flow_events"]],
    ]
    for message in messages:
        at_ms = (message["at_ns"] - offset_ns - zero_mono) / 1e6
        if -50 <= at_ms <= 1000 and message["type"] in OF_TYPES:
            arrow = "->ctl" if message["up"] else "ctl->"
            events.append((at_ms, f"OF {names.get(message['conn'], '?')} {arrow} "
                                  f"{describe(message)}"))
    for name, probes in line["probes"].items():
        lost = [sent for sent, answered in probes if not answered and sent > -50]
        if lost:
            first_lost = lost[0]
            back = next((sent for sent, answered in probes if answered and sent > first_lost),
                        None)
            events.append((first_lost, f"probe {name}: first lost"))
            if back is not None:
                events.append((back, f"probe {name}: first answered again"))
    worst = max(p["outage_ms"] for p in record["probers"].values())
    return {"shape": record["shape"], "mode": record["mode"], "source": record["source"],
            "destination": record["destination"], "worst_outage_ms": worst,
            "events": sorted(events)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("ovsdb", "notice", "packets"), required=True)
    parser.add_argument("--shape", choices=("qemu", "garp", "none"), required=True)
    parser.add_argument("--moves", type=int, default=4)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (Mininet, OVS, tcpdump)", file=sys.stderr)
        return 2
    timelines = trace(args.mode, args.shape, args.moves)
    for timeline in timelines:
        print(f"\n== {timeline['mode']}/{timeline['shape']} {timeline['source']}->"
              f"{timeline['destination']}: worst outage {timeline['worst_outage_ms']:.1f} ms")
        for at_ms, what in timeline["events"]:
            print(f"{at_ms:9.2f}  {what}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"migration-trace-{args.mode}-{args.shape}.json"
    out.write_text(json.dumps(timelines, indent=1))
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
