"""Attachment snapshots from the servers' OVSDB, and the events between two."""

import pytest

from ryu_apps.core.attachments import (
    Attachment,
    AttachmentEvent,
    EventKind,
    canonical_mac,
    diff_snapshots,
    make_snapshot,
    parse_datapath_id,
    usable_ofport,
)

WEB = "00:fa:00:00:00:01"
DB = "00:fc:00:00:00:02"
ATTACH, DETACH = EventKind.ATTACH, EventKind.DETACH


def test_initial_load_attaches_everything_sorted():
    events = diff_snapshots([], [(2, 1, DB), (1, 7, WEB), (1, 3, DB)])
    assert events == [AttachmentEvent(ATTACH, 1, 3, DB),
                      AttachmentEvent(ATTACH, 1, 7, WEB),
                      AttachmentEvent(ATTACH, 2, 1, DB)]


def test_unchanged_snapshot_reports_nothing():
    snapshot = [(1, 3, WEB), (1, 4, DB)]
    assert diff_snapshots(snapshot, list(reversed(snapshot))) == []


def test_removed_row_detaches():
    assert diff_snapshots([(1, 3, WEB), (1, 4, DB)], [(1, 4, DB)]) == [
        AttachmentEvent(DETACH, 1, 3, WEB)]


def test_mac_change_on_a_port_detaches_old_before_attaching_new():
    assert diff_snapshots([(1, 3, WEB)], [(1, 3, DB)]) == [
        AttachmentEvent(DETACH, 1, 3, WEB), AttachmentEvent(ATTACH, 1, 3, DB)]


def test_ofport_reassigned_moves_the_vm():
    assert diff_snapshots([(1, 3, WEB)], [(1, 9, WEB)]) == [
        AttachmentEvent(DETACH, 1, 3, WEB), AttachmentEvent(ATTACH, 1, 9, WEB)]


def test_bridge_dpid_change_moves_every_vm_of_the_bridge():
    events = diff_snapshots([(0xA1, 1, WEB), (0xA1, 2, DB)], [(0xB2, 1, WEB), (0xB2, 2, DB)])
    assert [(e.kind, e.dpid) for e in events] == [
        (DETACH, 0xA1), (DETACH, 0xA1), (ATTACH, 0xB2), (ATTACH, 0xB2)]


def test_detaches_all_come_before_attaches():
    events = diff_snapshots([(9, 9, WEB)], [(1, 1, DB)])
    assert [e.kind for e in events] == [DETACH, ATTACH]


def test_duplicate_triples_collapse():
    assert diff_snapshots([], [(1, 3, WEB), (1, 3, WEB)]) == [AttachmentEvent(ATTACH, 1, 3, WEB)]


def test_mac_spelling_does_not_make_a_change():
    assert diff_snapshots([(1, 3, "00:FA:00:00:00:01")], [(1, 3, "00-fa-00-00-00-01")]) == []
    assert make_snapshot([(1, 3, "00:FA:0:0:0:1")]) == {Attachment(1, 3, WEB)}


def test_same_mac_on_two_ports_is_two_attachments():
    assert len(diff_snapshots([], [(1, 3, WEB), (1, 4, WEB)])) == 2


def test_event_names_its_attachment():
    event = diff_snapshots([], [(1, 3, WEB)])[0]
    assert event.attachment == Attachment(1, 3, WEB)


def test_empty_snapshots_report_nothing():
    assert diff_snapshots([], []) == []
    assert diff_snapshots(frozenset(), set()) == []


@pytest.mark.parametrize("triple, message", [
    ((1, 3, "not-a-mac"), "is not a MAC address"),
    ((1, 0, WEB), "is not a usable port number"),
    ((1, 65534, WEB), "is not a usable port number"),
    ((-1, 3, WEB), "is not a datapath id"),
    ((1, 3), "is not a \\(dpid, ofport, mac\\) triple"),
])
def test_invalid_triple_is_named(triple, message):
    with pytest.raises(ValueError, match=message):
        make_snapshot([triple])


@pytest.mark.parametrize("text, expected", [
    ("00:FA:83:91:DE:1B", "00:fa:83:91:de:1b"),
    ("00-fa-83-91-de-1b", "00:fa:83:91:de:1b"),
    ("00:fa:83:91:de", None),
    ("", None),
    (None, None),
])
def test_canonical_mac(text, expected):
    assert canonical_mac(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("00000000000a0001", 0xA0001),
    ("ffffffffffffffff", (1 << 64) - 1),
    ("a0001", None),
    ("zz000000000a0001", None),
    (None, None),
])
def test_parse_datapath_id(text, expected):
    assert parse_datapath_id(text) == expected


@pytest.mark.parametrize("value, expected", [
    (1, 1), (0xFEFF, 0xFEFF), (None, None), (-1, None), (0, None),
    (65534, None), (True, None), ("3", None),
])
def test_usable_ofport(value, expected):
    assert usable_ofport(value) == expected
