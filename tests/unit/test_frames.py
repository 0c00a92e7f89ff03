"""parse_frame reads what a reference parser (struct, ipaddress) reads, for any bytes."""

import ipaddress
import random
import struct

from ryu_apps.core.frames import FrameInfo, parse_frame


def _reference(data: bytes):
    if len(data) < 14:
        return None
    ethertype = struct.unpack("!H", data[12:14])[0]
    offset, tagged = 14, False
    while ethertype in (0x8100, 0x88A8) and len(data) >= offset + 4:
        ethertype = struct.unpack("!H", data[offset + 2:offset + 4])[0]
        offset, tagged = offset + 4, True
    sender = None
    if ethertype == 0x0806 and len(data) >= offset + 18:
        sender = data[offset + 14:offset + 18]
    elif ethertype == 0x0800 and len(data) >= offset + 16:
        sender = data[offset + 12:offset + 16]
    ip = str(ipaddress.IPv4Address(sender)) if sender is not None and any(sender) else None
    mac = lambda raw: ":".join(f"{b:02x}" for b in raw)   # noqa: E731
    return FrameInfo(mac(data[0:6]), mac(data[6:12]), ethertype, tagged, ip)


def _frames(rng):
    for _ in range(3000):
        head = bytes(rng.randrange(256) for _ in range(12))
        tags = b"".join(struct.pack("!HH", rng.choice((0x8100, 0x88A8)), rng.randrange(4096))
                        for _ in range(rng.choice((0, 0, 1, 2))))
        ethertype = struct.pack("!H", rng.choice((0x0800, 0x0806, 0x86DD, 0x88CC,
                                                  rng.randrange(0x10000))))
        body = bytes(rng.choice((0, 255, rng.randrange(256))) for _ in range(rng.randrange(40)))
        frame = head + tags + ethertype + body
        yield frame[:rng.randrange(len(frame) + 1)] if rng.random() < 0.2 else frame


def test_parse_frame_agrees_with_a_reference_parser_on_random_frames():
    rng = random.Random(5)
    parsed = 0
    for frame in _frames(rng):
        for data in (frame, bytearray(frame)):   # Ryu hands over a bytearray
            assert parse_frame(data) == _reference(bytes(data)), frame.hex()
        parsed += parse_frame(frame) is not None
    assert parsed > 2000


def test_a_sender_address_is_dotted_decimal_and_all_zero_is_none():
    arp = bytes.fromhex("ffffffffffff00fa00000001") + b"\x08\x06" + bytes(14) \
        + bytes([192, 0, 2, 7]) + bytes(10)
    assert parse_frame(arp).sender_ip == "192.0.2.7"
    assert parse_frame(arp[:28] + bytes(4) + arp[32:]).sender_ip is None
    assert parse_frame(arp).eth_src == "00:fa:00:00:00:01"
