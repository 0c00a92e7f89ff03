"""The DHCPv4 parser (core/dhcp.py) on well-formed, truncated and random frames: it never
raises, and what it reads from a well-formed frame round-trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_apps.core import dhcp
from tests.support.dhcp_peer import dhcp_frame

_MACS = st.binary(min_size=6, max_size=6).map(lambda raw: raw.hex(":"))
_IPS = st.binary(min_size=4, max_size=4).map(lambda raw: ".".join(map(str, raw)))


@settings(max_examples=200, deadline=None)
@given(_MACS, _MACS, _IPS, st.integers(0, 255), st.integers(0, 2**32 - 1),
       st.one_of(st.none(), st.integers(0, 2**32 - 1)), st.booleans())
def test_a_well_formed_message_reads_back(src, chaddr, yiaddr, kind, xid, lease, reply):
    ports = (67, 68) if reply else (68, 67)
    frame = dhcp_frame(src, chaddr, "10.0.0.1", yiaddr, sport=ports[0], dport=ports[1],
                       op=2 if reply else 1, chaddr=chaddr, message_type=kind, xid=xid,
                       yiaddr=yiaddr, lease=lease, server_id="10.0.0.1")
    message = dhcp.parse_dhcp(frame)
    assert message is not None and dhcp.is_dhcp(frame)
    assert (message.eth_src, message.chaddr, message.yiaddr, message.xid,
            message.message_type, message.lease_time, message.server_id) == (
        src, chaddr, yiaddr, xid, kind, lease, "10.0.0.1")
    assert message.from_server is reply and message.from_client is not reply


_ACK = dhcp_frame("00:c1:00:00:00:01", "00:c0:00:00:00:01", "10.0.50.1", "10.0.50.100",
                  sport=67, dport=68, op=2, chaddr="00:c0:00:00:00:01", message_type=5,
                  yiaddr="10.0.50.100", lease=600, server_id="10.0.50.1")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_ACK)), st.binary(max_size=64))
def test_a_truncated_or_extended_frame_never_raises(cut, tail):
    found = dhcp.parse_dhcp(_ACK[:cut] + tail)
    assert found is None or found.chaddr == "00:c0:00:00:00:01"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.integers(0, len(_ACK) - 1))
def test_random_bytes_over_a_valid_frame_never_raise(junk, at):
    frame = _ACK[:at] + junk + _ACK[at + len(junk):]
    message = dhcp.parse_dhcp(frame)
    assert message is None or message.op in range(256)
    dhcp.is_dhcp(frame)
    dhcp.udp_payload(frame)


def test_options_that_overrun_or_fragments_are_not_read():
    overrun = _ACK[:-1] + bytes([51, 200])   # END replaced by an option longer than the frame
    assert dhcp.parse_dhcp(overrun) is None
    fragment = bytearray(_ACK)
    fragment[14 + 6] = 0x20                  # more fragments
    assert dhcp.parse_dhcp(bytes(fragment)) is None
    assert dhcp.parse_dhcp(_ACK[:14 + 20 + 8 + 100]) is None
