"""The DHCPv6 parser (core/dhcpv6.py): a Reply's leases, a Release, frames; junk never
raises."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_apps.core import dhcpv6
from ryu_apps.core.dhcpv6 import Lease, Message

CLIENT_DUID = bytes.fromhex("00030001" "00b0000000 01".replace(" ", ""))
SERVER_DUID = bytes.fromhex("00030001" "00c0000000 09".replace(" ", ""))


def option(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def iaaddr(address: str, preferred: int = 3600, valid: int = 7200) -> bytes:
    return option(dhcpv6.OPTION_IAADDR, ipaddress.IPv6Address(address).packed
                  + struct.pack("!II", preferred, valid))


def ia_na(iaid: int, *addresses: bytes) -> bytes:
    return option(dhcpv6.OPTION_IA_NA, struct.pack("!III", iaid, 1800, 2880)
                  + b"".join(addresses))


def message(msg_type: int, *options: bytes, xid: int = 0xABCDEF) -> bytes:
    return bytes([msg_type]) + xid.to_bytes(3, "big") + b"".join(options)


def udp6_frame(payload: bytes, ports=(547, 546), src="fe80::c0:ff:fe00:9",
               dst="fe80::2b0:ff:fe00:1", dst_mac="00:b0:00:00:00:01",
               src_mac="00:c0:00:00:00:09") -> bytes:
    udp = struct.pack("!HHHH", ports[0], ports[1], 8 + len(payload), 0) + payload
    header = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) \
        + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    return bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) \
        + struct.pack("!H", 0x86DD) + header + udp


def test_a_reply_gives_its_transaction_duids_and_leases():
    reply = message(dhcpv6.REPLY, option(dhcpv6.OPTION_SERVERID, SERVER_DUID),
                    option(dhcpv6.OPTION_CLIENTID, CLIENT_DUID),
                    ia_na(7, iaaddr("2001:db8::10"), iaaddr("2001:db8::11", 0, 0),
                          option(dhcpv6.OPTION_STATUS_CODE, b"\x00\x00ok")),
                    ia_na(8, iaaddr("2001:db8::12")))
    parsed = dhcpv6.parse(reply)
    assert parsed == Message(dhcpv6.REPLY, 0xABCDEF, CLIENT_DUID, SERVER_DUID, (
        Lease(7, "2001:db8::10", 3600, 7200), Lease(7, "2001:db8::11", 0, 0),
        Lease(8, "2001:db8::12", 3600, 7200)))
    # an address with a valid lifetime of 0 is withdrawn, not leased
    assert parsed.addresses == ("2001:db8::10", "2001:db8::12")


def test_a_release_names_the_addresses_it_gives_back():
    release = dhcpv6.parse(message(dhcpv6.RELEASE, option(dhcpv6.OPTION_CLIENTID, CLIENT_DUID),
                                   ia_na(7, iaaddr("2001:db8::10"))))
    assert release.msg_type == dhcpv6.RELEASE and release.addresses == ("2001:db8::10",)


def test_short_relay_and_truncated_messages():
    assert dhcpv6.parse(b"\x07\x00\x00") is None
    assert dhcpv6.parse(message(12)) is None and dhcpv6.parse(message(13)) is None
    whole = message(dhcpv6.REPLY, ia_na(1, iaaddr("2001:db8::1")), ia_na(2, iaaddr("2001:db8::2")))
    cut = dhcpv6.parse(whole[:-3])            # the second IA_NA runs past the end
    assert cut.addresses == ("2001:db8::1",)
    short_addr = option(dhcpv6.OPTION_IAADDR, bytes(20))   # an IAADDR without lifetimes
    assert dhcpv6.parse(message(dhcpv6.REPLY, ia_na(1, short_addr))).leases == ()
    assert dhcpv6.parse(message(dhcpv6.REPLY, option(dhcpv6.OPTION_IA_NA, b"\x00" * 5))) \
        .leases == ()


def test_a_frame_s_dhcpv6_message_and_its_direction():
    reply = message(dhcpv6.REPLY, ia_na(1, iaaddr("2001:db8::1")))
    snooped = dhcpv6.from_frame(udp6_frame(reply))
    assert snooped.to_client and not snooped.to_server
    assert snooped.message.addresses == ("2001:db8::1",)
    assert snooped.ipv6.src == "fe80::c0:ff:fe00:9"
    assert dhcpv6.from_frame(udp6_frame(reply, ports=(546, 547))).to_server
    assert dhcpv6.from_frame(udp6_frame(reply, ports=(53, 546))) is None
    assert dhcpv6.from_frame(udp6_frame(reply)[:60]) is None    # UDP header cut


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_junk_payloads_never_raise(payload):
    parsed = dhcpv6.parse(payload)
    assert parsed is None or 0 < parsed.msg_type < 256


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.binary(max_size=40)), max_size=12),
       st.integers(0, 255), st.integers(0, 60))
def test_mutated_messages_and_frames_never_raise(options, msg_type, cut):
    body = message(msg_type, *(option(code, value) for code, value in options),
                   ia_na(3, iaaddr("2001:db8::3")))
    for data in (body, body[:len(body) - cut]):
        dhcpv6.parse(data)
        frame = udp6_frame(data)
        dhcpv6.from_frame(frame)
        dhcpv6.from_frame(frame[:len(frame) - cut])
