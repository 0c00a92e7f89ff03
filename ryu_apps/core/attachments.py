"""Which VMs the servers' OVSDB says are attached, and what changed.

The OVSDB watcher (``ryu_apps/app/ovsdb_watcher.py``) reads, for every Interface
row that carries ``external_ids:attached-mac``, a triple (bridge dpid, ofport,
MAC). This module turns such triples into a canonical snapshot and diffs two
snapshots into attach/detach events. It knows nothing about OVSDB itself.
"""

from __future__ import annotations

import enum
from typing import FrozenSet, Iterable, List, NamedTuple, Optional, Tuple

from ryu_apps.core.identifiers import IdentifierError, Mac, normalise_mac

#: OpenFlow 1.3 ports from here up are reserved (LOCAL is 0xfffffffe in
#: OpenFlow, 65534 in OVSDB); OVS numbers physical ports 1..0xfeff.
OFPORT_MAX = 0xFEFF
DPID_MAX = (1 << 64) - 1


class EventKind(enum.Enum):
    """What happened to an attachment."""

    DETACH = "detach"
    ATTACH = "attach"


class Attachment(NamedTuple):
    """VM ``mac`` (lowercase, colon form) on port ``ofport`` of bridge ``dpid``."""

    dpid: int
    ofport: int
    mac: str


class AttachmentEvent(NamedTuple):
    """One change of the attachment set."""

    kind: EventKind
    dpid: int
    ofport: int
    mac: str

    @property
    def attachment(self) -> Attachment:
        return Attachment(self.dpid, self.ofport, self.mac)


Snapshot = FrozenSet[Attachment]
Triple = Tuple[int, int, str]


def canonical_mac(text: object) -> Optional[Mac]:
    """The canonical MAC of an OVSDB value that is a MAC string, else None."""
    if not isinstance(text, str):
        return None
    try:
        return normalise_mac(text)
    except IdentifierError:
        return None


def parse_datapath_id(text: object) -> Optional[int]:
    """The dpid from OVSDB ``Bridge.datapath_id`` (16 hex digits), else None."""
    if not isinstance(text, str) or len(text) != 16:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value if 0 <= value <= DPID_MAX else None


def usable_ofport(value: object) -> Optional[int]:
    """An OVSDB ``Interface.ofport`` that names a real port, else None.

    None for a port not numbered yet (empty), a failed one (-1) and reserved
    numbers such as the bridge's LOCAL port (65534).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= OFPORT_MAX else None


def make_snapshot(triples: Iterable[Triple]) -> Snapshot:
    """The set of attachments named by (dpid, ofport, mac) triples.

    MACs are canonicalised, so the same VM written in different case or with
    '-' separators is one attachment; repeated triples collapse. Raises
    ValueError naming the first invalid triple.
    """
    snapshot = set()
    for triple in triples:
        snapshot.add(_attachment(triple))
    return frozenset(snapshot)


def diff_snapshots(previous: Iterable[Triple],
                   current: Iterable[Triple]) -> List[AttachmentEvent]:
    """Events that turn ``previous`` into ``current``: detaches, then attaches.

    Each group is sorted by (dpid, ofport, mac). Detaches come first so that a
    port whose MAC changed is released before the new VM is attached to it.
    """
    before, after = make_snapshot(previous), make_snapshot(current)
    return ([AttachmentEvent(EventKind.DETACH, *a) for a in sorted(before - after)]
            + [AttachmentEvent(EventKind.ATTACH, *a) for a in sorted(after - before)])


def _attachment(triple: Triple) -> Attachment:
    try:
        dpid, ofport, mac = triple
    except (TypeError, ValueError):
        raise ValueError(f"{triple!r} is not a (dpid, ofport, mac) triple") from None
    canonical = canonical_mac(mac)
    if canonical is None:
        raise ValueError(f"{triple!r}: {mac!r} is not a MAC address")
    if isinstance(dpid, bool) or not isinstance(dpid, int) or not 0 <= dpid <= DPID_MAX:
        raise ValueError(f"{triple!r}: {dpid!r} is not a datapath id")
    if usable_ofport(ofport) is None:
        raise ValueError(f"{triple!r}: {ofport!r} is not a usable port number")
    return Attachment(dpid, ofport, canonical)
