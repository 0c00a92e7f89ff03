"""IPv6 in the packet-in parser (core/ipv6_frames.py): addresses, extension headers,
ICMPv6 and ND, junk."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_apps.core.frames import parse_frame
from ryu_apps.core.ipv6_frames import MAX_EXTENSION_HEADERS, Ipv6Info, parse_ipv6

MAC = "00:fa:00:00:00:01"
LL = "fe80::2fa:ff:fe00:1"


def ethernet(payload: bytes, ethertype: int = 0x86DD, tags: int = 0) -> bytes:
    head = bytes.fromhex("333300000001") + bytes.fromhex(MAC.replace(":", ""))
    for _ in range(tags):
        head += struct.pack("!HH", 0x8100, 100)
    return head + struct.pack("!H", ethertype) + payload


def ipv6(next_header: int, payload: bytes, src: str = LL, dst: str = "ff02::1") -> bytes:
    return (struct.pack("!IHBB", 6 << 28, len(payload), next_header, 255)
            + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
            + payload)


def nd(kind: int, target: str, option: int | None = None, mac: str = MAC) -> bytes:
    body = struct.pack("!BBHI", kind, 0, 0, 0) + ipaddress.IPv6Address(target).packed
    if option is not None:
        body += bytes([option, 1]) + bytes.fromhex(mac.replace(":", ""))
    return body


def extension(next_header: int, length_units: int = 0) -> bytes:
    return bytes([next_header, length_units]) + bytes(6 + 8 * length_units)


def test_a_neighbour_solicitation_gives_addresses_target_and_source_mac():
    frame = ethernet(ipv6(58, nd(135, "fe80::99", option=1), dst="ff02::1:ff00:99"))
    assert parse_ipv6(frame) == Ipv6Info(LL, "ff02::1:ff00:99", 58, 135, "fe80::99", MAC)
    assert parse_frame(frame).ethertype == 0x86DD
    assert parse_frame(frame).sender_ip is None   # IPv4 binding never sees IPv6


def test_a_neighbour_advertisement_gives_its_target_link_layer_option():
    other = "00:fa:00:00:00:02"
    frame = ethernet(ipv6(58, nd(136, "2001:db8::5", option=2, mac=other)), tags=1)
    info = parse_ipv6(frame)
    assert (info.icmp_type, info.nd_target, info.nd_lladdr) == (136, "2001:db8::5", other)
    # A source link-layer option in an NA is not a target one.
    info = parse_ipv6(ethernet(ipv6(58, nd(136, "2001:db8::5", option=1))))
    assert (info.nd_target, info.nd_lladdr) == ("2001:db8::5", None)


def test_extension_headers_are_skipped_to_the_upper_layer():
    # hop-by-hop (MLD's router alert) -> destination options (16 octets) -> ICMPv6
    payload = extension(60) + extension(58, 1) + nd(143, "::")
    info = parse_ipv6(ethernet(ipv6(0, payload, src="::")))
    assert (info.src, info.protocol, info.icmp_type) == ("::", 58, 143)
    # a first fragment still shows its upper layer; a later one does not
    first = struct.pack("!BBHI", 17, 0, 0x0001, 7) + bytes(8)
    assert parse_ipv6(ethernet(ipv6(44, first))).protocol == 17
    later = struct.pack("!BBHI", 17, 0, 0x0100, 7) + bytes(8)
    assert parse_ipv6(ethernet(ipv6(44, later))).protocol is None


def test_a_chain_longer_than_the_limit_or_truncated_leaves_the_upper_layer_unknown():
    chain = b"".join(extension(60) for _ in range(MAX_EXTENSION_HEADERS + 1)) + bytes(8)
    assert parse_ipv6(ethernet(ipv6(60, chain))).protocol is None
    assert parse_ipv6(ethernet(ipv6(0, bytes([58, 200])))).protocol is None
    assert parse_ipv6(ethernet(ipv6(58, bytes([135, 0])))).icmp_type is None
    assert parse_ipv6(ethernet(ipv6(59, b""))).protocol is None   # no next header
    no_option = parse_ipv6(ethernet(ipv6(58, nd(135, "fe80::1") + bytes([1, 0]) + bytes(6))))
    assert (no_option.nd_target, no_option.nd_lladdr) == ("fe80::1", None)  # length 0


def test_non_ipv6_and_short_frames_are_none():
    assert parse_ipv6(b"") is None
    assert parse_ipv6(ethernet(b"\x45" + bytes(30), ethertype=0x0800)) is None
    assert parse_ipv6(ethernet(ipv6(58, b"")[:39])) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_junk_after_an_ipv6_ethertype_never_raises(junk):
    for frame in (ethernet(junk), ethernet(junk, tags=2), junk):
        info = parse_ipv6(frame)
        assert info is None or isinstance(info, Ipv6Info)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=120), st.integers(0, 140))
def test_a_valid_header_with_any_chain_never_raises(next_header, rest, cut):
    frame = ethernet(ipv6(next_header, rest))
    info = parse_ipv6(frame[:len(frame) - cut] if cut < len(frame) else frame)
    assert info is None or info.protocol is None or 0 <= info.protocol <= 255
