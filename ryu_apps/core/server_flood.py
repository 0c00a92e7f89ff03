"""A VLAN's flooding to the VMs of one server bridge, in chunks of fixed size (pure).

A group-addressed frame of a VLAN reaches every forwarding VM of that VLAN on
a server through the VM's template's to-VM ACL: one ``set metadata <port|tag>,
resubmit TO_VM_ACL`` pair per member. Listing every pair in the VLAN's one
flood entry makes each new VM rewrite a flow that grows with the members
already there. Instead the pairs live in a tree of small flows in the
:attr:`~ryu_apps.core.pipeline.Table.FLOOD` table, keyed by metadata:

- a *chunk* flow per :data:`CHUNK_PORTS` consecutive port numbers holds the
  pairs of the members on those ports (``port // CHUNK_PORTS`` is the chunk);
- a *group* flow per :data:`GROUP_CHUNKS` consecutive chunks resubmits to the
  chunks that have members;
- the VLAN's flood entry in FORWARD resubmits to the groups that have members.

Which flow a member lands in depends only on its port, so the flows are a
function of the member set (the from-scratch reference and the incremental
engine agree), and a new VM rewrites its chunk (at most ``CHUNK_PORTS`` pairs),
plus its group when it opens a chunk, plus the flood entry when it opens a
group. Nothing a resubmitted table does changes the frame except the metadata,
which every pair sets before its resubmit, so no ``clone`` is needed.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Sequence, Set, Tuple

from ryu_apps.core.binding import Binding
from ryu_apps.core.cookies import vlan_owner
from ryu_apps.core.flow_plan import Entry
from ryu_apps.core.flowspec import FlowSpec, Resubmit, SetField, flow, make_match
from ryu_apps.core.pipeline import METADATA_PORT_MASK, Priority, Table, to_vm_metadata

#: Port numbers per chunk flow (a chunk flow's values: cookie, key, one per member,
#: so a full chunk stays within the pre-renderer's eight values per shape).
CHUNK_PORTS = 6
#: Chunks per group flow.
GROUP_CHUNKS = 6
#: FLOOD-table keys (the metadata a resubmit to FLOOD carries)::
#:
#:     63    48 47      36 35  32 31                 0
#:     +-------+----------+------+--------------------+
#:     | zero  |   VLAN   |level | chunk or group     |
#:     +-------+----------+------+--------------------+
_LEVEL_SHIFT = 32
_VLAN_SHIFT = 36
CHUNK_LEVEL, GROUP_LEVEL = 0, 1

_RESUBMIT_TO_VM_ACL = Resubmit(Table.TO_VM_ACL)
_RESUBMIT_FLOOD = Resubmit(Table.FLOOD)


@functools.lru_cache(maxsize=65536)
def set_metadata(value: int) -> SetField:
    """The (shared) action that writes ``value`` into the metadata."""
    return SetField("metadata", value)


def delivery(binding: Binding) -> int:
    """A member's delivery metadata: its port and its template tag."""
    return to_vm_metadata(binding.port, binding.template_id)


def flood_key(vlan: int, level: int, index: int) -> int:
    """The metadata that selects one chunk or group flow of a VLAN."""
    if not 0 <= index <= METADATA_PORT_MASK:
        raise ValueError(f"VLAN {vlan}: flood {('chunk', 'group')[level]} {index} "
                         f"outside 0..{METADATA_PORT_MASK}")
    return (vlan << _VLAN_SHIFT) | (level << _LEVEL_SHIFT) | index


def chunk_of(metadata: int) -> int:
    """The chunk a member's delivery metadata (port and template tag) belongs to."""
    return (metadata & METADATA_PORT_MASK) // CHUNK_PORTS


def group_of(chunk: int) -> int:
    """The group a chunk belongs to."""
    return chunk // GROUP_CHUNKS


def chunk_flow(dpid: int, vlan: int, chunk: int, members: Sequence[int]) -> FlowSpec:
    """A chunk's flow: one copy per member (sorted delivery metadata) through its ACL."""
    actions: List = []
    for metadata in members:
        actions += [set_metadata(metadata), _RESUBMIT_TO_VM_ACL]
    return _flood_flow(dpid, vlan, flood_key(vlan, CHUNK_LEVEL, chunk), actions)


def group_flow(dpid: int, vlan: int, group: int, chunks: Sequence[int]) -> FlowSpec:
    """A group's flow: a resubmit to each of its chunks with members (sorted)."""
    return _flood_flow(dpid, vlan, flood_key(vlan, GROUP_LEVEL, group),
                       to_groups_actions(vlan, chunks, CHUNK_LEVEL))


def to_groups_actions(vlan: int, indexes: Sequence[int], level: int = GROUP_LEVEL) -> List:
    """Resubmits to a VLAN's flood flows of one level (groups by default)."""
    actions: List = []
    for index in indexes:
        actions += [set_metadata(flood_key(vlan, level, index)), _RESUBMIT_FLOOD]
    return actions


def _flood_flow(dpid: int, vlan: int, key: int, actions: List) -> FlowSpec:
    return flow(dpid, Table.FLOOD, Priority.VLAN_FLOOD, make_match(metadata=key),
                vlan_owner(vlan).cookie, actions=tuple(actions))


def chunked(dpid: int, vlan: int, members: Iterable[int]) -> Tuple[List[int], Set[FlowSpec]]:
    """From scratch: a VLAN's groups with members on a server (sorted) and its FLOOD
    flows there, from its members' delivery metadata."""
    chunks: Dict[int, List[int]] = {}
    for metadata in sorted(set(members)):
        chunks.setdefault(chunk_of(metadata), []).append(metadata)
    groups: Dict[int, List[int]] = {}
    flows: Set[FlowSpec] = set()
    for chunk, held in sorted(chunks.items()):
        groups.setdefault(group_of(chunk), []).append(chunk)
        flows.add(chunk_flow(dpid, vlan, chunk, held))
    for group, held in groups.items():
        flows.add(group_flow(dpid, vlan, group, held))
    return sorted(groups), flows


Place = Tuple[int, int]   # (vlan, server)
#: A flow's key -> its new spec, or None when it goes.
Changes = Dict[tuple, Optional[Entry]]


class ServerFloods:
    """Each VLAN's members on each server by chunk, and their FLOOD flows, kept
    current one member at a time (only the chunk and group a member is in are
    recompiled), and what changed in them since it was last asked, so the
    engine's desired flows are patched in O(changed flows), not rebuilt."""

    def __init__(self) -> None:
        #: (vlan, server) -> chunk -> delivery metadata -> forwarding VMs with it
        self._members: Dict[Place, Dict[int, Dict[int, int]]] = {}
        self._pending: Dict[Place, Set[int]] = {}          # chunks to recompile
        self._chunks: Dict[Place, Dict[int, FlowSpec]] = {}
        self._groups: Dict[Place, Dict[int, Tuple[Set[int], FlowSpec]]] = {}
        self._changed: Dict[Place, Changes] = {}   # since the last take()
        self._heads: Dict[Place, Tuple[Hashable, Dict[tuple, Entry]]] = {}   # see swap_head()

    def change(self, vlan: int, dpid: int, metadata: int, delta: int) -> None:
        """A forwarding VM with this delivery metadata joins (+1) or leaves (-1)."""
        place, chunk = (vlan, dpid), chunk_of(metadata)
        held = self._members.setdefault(place, {}).setdefault(chunk, {})
        count = held.get(metadata, 0) + delta
        if count < 0:
            raise ValueError(f"VLAN {vlan} on switch {dpid:016x}: no member with "
                             f"metadata {metadata:#x} to leave")
        if count:
            held[metadata] = count
        else:
            held.pop(metadata, None)
        self._pending.setdefault(place, set()).add(chunk)

    def has_members(self, vlan: int, dpid: int) -> bool:
        """Whether the VLAN has a forwarding VM on the server."""
        return any(self._members.get((vlan, dpid), {}).values())

    def take(self, vlan: int, dpid: int) -> Tuple[List[int], Changes]:
        """The VLAN's groups with members on the server (sorted) and the FLOOD flows
        that changed since the last call for it (each change once)."""
        place = (vlan, dpid)
        for chunk in sorted(self._pending.pop(place, ())):
            self._recompile(place, chunk)
        return sorted(self._groups.get(place, {})), self._changed.pop(place, {})

    def swap_head(self, vlan: int, dpid: int, inputs: Hashable,
                  build: Callable[[], Iterable[Entry]]) -> Changes:
        """Keep ``build()`` as the VLAN's flows on the server outside FLOOD (its flood
        entry, admission and default up), compiled from ``inputs``; the changes from
        the ones kept before (none, without building, when ``inputs`` are the same)."""
        place = (vlan, dpid)
        kept = self._heads.get(place)
        if kept is not None and kept[0] == inputs:
            return {}
        old = kept[1] if kept is not None else {}
        new = {spec.key: spec for spec in build()}
        self._heads[place] = (inputs, new)
        changes: Changes = {key: None for key in old if key not in new}
        changes.update((key, spec) for key, spec in new.items() if old.get(key) != spec)
        return changes

    def forget(self, vlan: int, dpid: int) -> None:
        """The VLAN's flows on the server were set without this (emptied, or the switch
        hosts no VMs now): the next :meth:`take` and :meth:`swap_head` report all."""
        place = (vlan, dpid)
        self._heads.pop(place, None)
        changed = self._changed.setdefault(place, {})
        changed.update((spec.key, spec) for spec in self._chunks.get(place, {}).values())
        changed.update((spec.key, spec) for _, spec in self._groups.get(place, {}).values())
        if not changed:
            self._changed.pop(place, None)

    def _recompile(self, place: Place, chunk: int) -> None:
        vlan, dpid = place
        members = self._members.get(place, {})
        held = sorted(members.get(chunk, ()))
        chunks = self._chunks.setdefault(place, {})
        opened = chunk not in chunks
        if held:
            chunks[chunk] = spec = chunk_flow(dpid, vlan, chunk, held)
            self._note(place, spec.key, spec)
        else:
            members.pop(chunk, None)
            gone = chunks.pop(chunk, None)
            if gone is not None:
                self._note(place, gone.key, None)
        if opened == bool(held):   # the chunk opened or closed: its group changes
            self._regroup(place, group_of(chunk), chunk, bool(held))
        for table in (self._members, self._chunks, self._groups):
            if not table.get(place):
                table.pop(place, None)

    def _regroup(self, place: Place, group: int, chunk: int, opened: bool) -> None:
        vlan, dpid = place
        groups = self._groups.setdefault(place, {})
        held = set(groups[group][0]) if group in groups else set()
        (held.add if opened else held.discard)(chunk)
        if held:
            spec = group_flow(dpid, vlan, group, sorted(held))
            groups[group] = (held, spec)
            self._note(place, spec.key, spec)
        else:
            gone = groups.pop(group, None)
            if gone is not None:
                self._note(place, gone[1].key, None)

    def _note(self, place: Place, key: tuple, spec: Optional[FlowSpec]) -> None:
        self._changed.setdefault(place, {})[key] = spec
