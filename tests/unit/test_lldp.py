"""LLDP probes carry (dpid, port) and nothing else is mistaken for one."""

from hypothesis import given
from hypothesis import strategies as st

from ryu_apps.core import lldp

SRC = bytes.fromhex("0e00d9000001")


@given(dpid=st.integers(0, 2**64 - 1), port=st.integers(1, 0xFFFFFF00))
def test_probe_round_trip(dpid, port):
    assert lldp.parse_probe(lldp.build_probe(dpid, port, SRC)) == (dpid, port)


def test_probe_is_an_lldp_frame_to_the_nearest_bridge_group():
    frame = lldp.build_probe(0x1101, 3, SRC)
    assert frame[:6] == bytes.fromhex("0180c200000e")
    assert frame[12:14] == b"\x88\xcc"


def test_other_frames_are_not_probes():
    assert lldp.parse_probe(b"") is None
    assert lldp.parse_probe(bytes(12) + b"\x08\x00" + bytes(40)) is None
    # An LLDP frame from another speaker (MAC-address chassis id, subtype 4).
    foreign = (bytes.fromhex("0180c200000e") + SRC + b"\x88\xcc"
               + bytes([0x02, 0x07, 0x04]) + SRC + bytes([0x04, 0x02, 0x07, 0x31])
               + bytes([0x06, 0x02, 0x00, 0x78, 0x00, 0x00]))
    assert lldp.parse_probe(foreign) is None


def test_truncated_probe_is_rejected():
    frame = lldp.build_probe(5, 2, SRC)
    assert lldp.parse_probe(frame[:20]) is None


def test_a_beacon_is_a_probe_to_a_group_address_learning_bridges_flood():
    beacon = lldp.build_beacon(0x201, 1, SRC)
    assert lldp.parse_probe(beacon) == (0x201, 1)
    assert lldp.is_beacon(beacon) and not lldp.is_beacon(lldp.build_probe(0x201, 1, SRC))
    assert beacon[0] & 0x01, "a group address"
    assert beacon[:5] != bytes.fromhex("0180c20000"), "not a reserved address bridges drop"
