"""The migration trace's capture reader: OpenFlow messages cut out of a loopback pcap."""

import struct

from benchmarks.migration_trace import bridges_of, describe, of_messages

OF_PORT = 6653


def _segment(at_us: int, source: int, destination: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", source, destination, 0, 0, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     bytes(4), bytes(4))
    frame = bytes(12) + b"\x08\x00" + ip + tcp + payload
    return struct.pack("<IIII", at_us // 1_000_000, at_us % 1_000_000, len(frame),
                       len(frame)) + frame


def _pcap(tmp_path, segments) -> object:
    path = tmp_path / "of.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(segments))
    return path


def _of(kind: int, body: bytes = b"") -> bytes:
    return struct.pack("!BBHI", 4, kind, 8 + len(body), 7) + body


def test_messages_split_across_segments_are_joined_and_stamped_when_complete(tmp_path):
    features = _of(6, struct.pack("!Q", 0x2A) + bytes(16))
    status = _of(12, bytes([1]) + bytes(7) + struct.pack("!I", 3) + bytes(60))
    barrier = _of(21)
    path = _pcap(tmp_path, [
        _segment(1_000_000, 40000, OF_PORT, features + status[:10]),
        _segment(1_000_500, 40000, OF_PORT, status[10:] + barrier),
        _segment(1_000_700, OF_PORT, 40000, _of(20)),
        _segment(1_000_900, 41000, 9999, _of(10)),          # another controller's port
    ])
    messages = of_messages(path, OF_PORT)
    assert [(m["type"], m["up"], m["at_ns"]) for m in messages] == [
        (6, True, 1_000_000_000), (12, True, 1_000_500_000),
        (21, True, 1_000_500_000), (20, False, 1_000_700_000)]
    assert bridges_of(messages, {0x2A: "s11"}) == {40000: "s11"}
    assert describe(messages[1]) == "PORT_STATUS delete port 3"
    assert describe(messages[3]) == "BARRIER_REQUEST"
