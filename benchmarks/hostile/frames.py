"""Frames a VM or a host on a free port may send: every kind the controller must survive.

Pure bytes; every generator takes a ``random.Random`` so a run is reproducible
from its seed. LLDP forgeries name real switches and ports (the attacker knows
the topology), and are unsigned, signed with garbage, or mangled so the
parser's every bound is tried.
"""

from __future__ import annotations

import random
import struct
from typing import Sequence

from ryu_apps.core import lldp

BROADCAST = b"\xff" * 6
ETH_IPV4, ETH_ARP, ETH_8021Q, ETH_8021AD = 0x0800, 0x0806, 0x8100, 0x88A8
#: Templates of the default library (others are "unknown templates").
LIBRARY_TEMPLATES = (0x00F0, 0x00F2, 0x00FA, 0x00FC, 0x00FE)
#: Templates a well-behaved VM of the default library selects.
VM_TEMPLATES = (0x00FA, 0x00FC, 0x00FE)
_GATEWAY = bytes.fromhex("020000000001")


def _pad(frame: bytes) -> bytes:
    return frame + bytes(max(0, 60 - len(frame)))


def mac_bytes(text: str) -> bytes:
    """``aa:bb:..`` as 6 bytes."""
    return bytes.fromhex(text.replace(":", ""))


def vm_mac(rng: random.Random, templates: Sequence[int] = VM_TEMPLATES) -> bytes:
    """A unicast MAC selecting one of ``templates`` (prefix/16), random serial."""
    return rng.choice(templates).to_bytes(2, "big") + rng.getrandbits(32).to_bytes(4, "big")


def unknown_template_mac(rng: random.Random) -> bytes:
    """A unicast MAC whose template id is in no library."""
    while True:
        template = rng.getrandbits(16) & 0xFEFF   # group bit clear
        if template not in LIBRARY_TEMPLATES:
            return template.to_bytes(2, "big") + rng.getrandbits(32).to_bytes(4, "big")


def group_or_zero_mac(rng: random.Random) -> bytes:
    """A MAC no VM may have: multicast, broadcast or all-zero."""
    pick = rng.randrange(4)
    if pick == 0:
        return BROADCAST
    if pick == 1:
        return bytes(6)
    first = rng.getrandbits(8) | 0x01
    return bytes([first]) + rng.getrandbits(40).to_bytes(5, "big")


def payload(rng: random.Random, src: bytes) -> bytes:
    """The EtherType and body of a first frame: gratuitous ARP or IPv4/UDP to the gateway."""
    ip = bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])
    if rng.random() < 0.5:
        arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, 1, src, ip, BROADCAST, ip)
        return struct.pack("!H", ETH_ARP) + arp
    udp = struct.pack("!HHHH", 40000, 53, 12, 0) + b"fuzz"
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         ip, bytes([10, 255, 255, 254]))
    return struct.pack("!H", ETH_IPV4) + header + udp


def first_frame(rng: random.Random, src: bytes) -> bytes:
    """What a fresh VM with MAC ``src`` sends first."""
    dst = BROADCAST if rng.random() < 0.5 else _GATEWAY
    return _pad(dst + src + payload(rng, src))


def random_bytes(rng: random.Random) -> bytes:
    """0 to 300 random bytes."""
    return rng.randbytes(rng.randrange(301))


def truncated(rng: random.Random) -> bytes:
    """A VM's first frame cut short anywhere in its first 42 bytes."""
    return first_frame(rng, vm_mac(rng))[:rng.randrange(43)]


def tagged(rng: random.Random, src: bytes) -> bytes:
    """An 802.1Q-tagged first frame (any VLAN id, priority, DEI)."""
    tag = struct.pack("!HH", ETH_8021Q, rng.getrandbits(16))
    return _pad(BROADCAST + src + tag + payload(rng, src))


def qinq(rng: random.Random, src: bytes) -> bytes:
    """A double-tagged (802.1ad + 802.1Q, or Q-in-Q) frame, sometimes a deep stack
    of tags, sometimes a stack that runs off the end of the frame."""
    depth = rng.choice((2, 2, 2, 3, 8, 40))
    tags = b"".join(struct.pack("!HH", rng.choice((ETH_8021AD, ETH_8021Q)),
                                rng.getrandbits(16)) for _ in range(depth))
    frame = BROADCAST + src + tags + payload(rng, src)
    if rng.random() < 0.1:
        return frame[:14 + 4 * rng.randrange(depth)]   # the stack is all there is
    return _pad(frame)


# -- LLDP ---------------------------------------------------------------------------
def _tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!H", (tlv_type << 9) | (len(value) & 0x1FF)) + value


def _lldp(destination: bytes, src: bytes, body: bytes) -> bytes:
    return _pad(destination + src + struct.pack("!H", lldp.ETH_TYPE_LLDP) + body)


def lldp_unsigned(rng: random.Random, src: bytes, dpid: int, port: int,
                  beacon: bool = False) -> bytes:
    """A probe (or beacon) naming ``port`` of switch ``dpid``, with no signature."""
    destination = lldp.BEACON_MULTICAST if beacon else lldp.LLDP_MULTICAST
    return lldp.build_probe(dpid, port, src, destination=destination)


def lldp_garbage_signature(rng: random.Random, src: bytes, dpid: int, port: int,
                           now: float) -> bytes:
    """A fresh-looking probe naming a real port whose signature TLV is garbage: a
    random HMAC with a well-formed head, or a random blob of any length."""
    beacon = rng.random() < 0.2
    destination = lldp.BEACON_MULTICAST if beacon else lldp.LLDP_MULTICAST
    if rng.random() < 0.7:
        process = rng.choice((b"dynprov", b"host:6653", rng.randbytes(8).hex().encode()))
        head = lldp.auth_head(beacon, int(now * 1000) + rng.randrange(-2000, 2000),
                              rng.randbytes(lldp.NONCE_BYTES), process)
        return lldp.build_probe(dpid, port, src, destination=destination,
                                auth=(head, process, rng.randbytes(lldp.SIGNATURE_BYTES)))
    chassis, port_id = lldp.identity_tlvs(dpid, port)
    blob = lldp.AUTH_OUI + bytes([lldp.AUTH_SUBTYPE]) + rng.randbytes(rng.randrange(0, 120))
    body = (_tlv(1, chassis) + _tlv(2, port_id) + _tlv(3, b"\x00\x78") + _tlv(127, blob)
            + _tlv(0, b""))
    return _lldp(destination, src, body)


def lldp_mangled(rng: random.Random, src: bytes, dpid: int, port: int) -> bytes:
    """A probe-looking frame that breaks one of the parser's rules: negative, zero,
    huge or zero-padded ports, non-hex or short chassis ids, TLV lengths past the
    end, repeated or missing TLVs, random TLV soup."""
    chassis, port_id = lldp.identity_tlvs(dpid, port)
    kind = rng.randrange(9)
    if kind == 0:
        port_id = bytes([7]) + rng.choice((b"-5", b"0", b"-20380", b"4294967295",
                                           b"99999999999999", b"007", b"1e3", b" 1", b""))
    elif kind == 1:
        chassis = bytes([7]) + b"dpid:" + rng.choice((b"%015x" % dpid, b"%017x" % dpid,
                                                      b"%016X" % dpid, b"-" * 16,
                                                      b"0x" + b"%014x" % dpid))
    elif kind == 2:
        chassis, port_id = bytes([4]) + rng.randbytes(6), bytes([3]) + rng.randbytes(6)
    elif kind == 3:   # a TLV length that runs past the end of the frame
        body = _tlv(1, chassis) + struct.pack("!H", (2 << 9) | 0x1FF) + port_id
        return _lldp(lldp.LLDP_MULTICAST, src, body)
    elif kind == 4:   # two chassis and two port TLVs naming different switches
        other_chassis, other_port = lldp.identity_tlvs(rng.getrandbits(64), rng.randrange(1, 64))
        body = (_tlv(1, chassis) + _tlv(1, other_chassis) + _tlv(2, port_id)
                + _tlv(2, other_port) + _tlv(0, b""))
        return _lldp(lldp.LLDP_MULTICAST, src, body)
    elif kind == 5:   # no end TLV, no TTL
        return _lldp(lldp.LLDP_MULTICAST, src, _tlv(1, chassis) + _tlv(2, port_id))
    elif kind == 6:   # random TLV soup
        body = b"".join(_tlv(rng.randrange(128), rng.randbytes(rng.randrange(40)))
                        for _ in range(rng.randrange(1, 12)))
        return _lldp(rng.choice((lldp.LLDP_MULTICAST, lldp.BEACON_MULTICAST)), src, body)
    elif kind == 7:   # an LLDP EtherType and nothing after it
        return rng.choice((lldp.LLDP_MULTICAST, BROADCAST)) + src + b"\x88\xcc"
    else:             # a real probe's bytes cut anywhere
        probe = lldp.build_probe(dpid, port, src)
        return probe[:rng.randrange(14, len(probe))]
    body = _tlv(1, chassis) + _tlv(2, port_id) + _tlv(3, b"\x00\x78") + _tlv(0, b"")
    return _lldp(lldp.LLDP_MULTICAST, src, body)


def as_beacon(probe: bytes) -> bytes:
    """A captured probe re-addressed to the beacon group (its signature no longer fits)."""
    return lldp.BEACON_MULTICAST + probe[6:]
