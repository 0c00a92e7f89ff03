"""Desired flows per owner, and the changes that bring a switch to them (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Set

from ryu_apps.core.cookies import Owner, decode_cookie
from ryu_apps.core.flowspec import FlowSpec


@dataclass
class SwitchChanges:
    """Flow changes for one switch: deletes are sent first, then adds."""

    deletes: List[FlowSpec] = field(default_factory=list)
    adds: List[FlowSpec] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.deletes or self.adds)


@dataclass(frozen=True)
class PacketOut:
    """Re-inject a packet into a switch's pipeline once its flows are confirmed."""

    dpid: int
    in_port: int
    data: bytes


@dataclass
class Plan:
    """What one event asks of the switches, in order: changes, then packet-outs."""

    changes: Dict[int, SwitchChanges] = field(default_factory=dict)
    packet_outs: List[PacketOut] = field(default_factory=list)
    #: What the engine decided, in words, for the controller's log.
    notes: List[str] = field(default_factory=list)

    def for_switch(self, dpid: int) -> SwitchChanges:
        """The (possibly new) change list of one switch."""
        return self.changes.setdefault(dpid, SwitchChanges())

    def is_empty(self) -> bool:
        """True when nothing is to be sent."""
        return not any(self.changes.values()) and not self.packet_outs

    def flow_count(self) -> int:
        """Number of flow-mods in the plan."""
        return sum(len(c.deletes) + len(c.adds) for c in self.changes.values())


def diff_flows(old: Iterable[FlowSpec], new: Iterable[FlowSpec], plan: Plan) -> None:
    """Add to ``plan`` what turns flow set ``old`` into ``new``.

    Entries are identified by (switch, table, priority, match); an entry whose
    actions or cookie changed is re-added in place (OpenFlow ADD replaces it),
    so traffic never sees a gap between delete and add.
    """
    old_by_key = {f.key: f for f in old}
    new_by_key = {f.key: f for f in new}
    for key, spec in old_by_key.items():
        if key not in new_by_key:
            plan.for_switch(spec.dpid).deletes.append(spec)
    for key, spec in new_by_key.items():
        if old_by_key.get(key) != spec:
            plan.for_switch(spec.dpid).adds.append(spec)


class DesiredFlows:
    """The flows each owner should have installed, across all switches."""

    def __init__(self) -> None:
        self._by_owner: Dict[Owner, Set[FlowSpec]] = {}

    def replace(self, owner: Owner, flows: Set[FlowSpec], plan: Plan,
                dpid: int | None = None) -> None:
        """Set the owner's flows (only on ``dpid`` if given); record the diff."""
        old = self._by_owner.get(owner, set())
        if dpid is not None:
            kept = {f for f in old if f.dpid != dpid}
            old = {f for f in old if f.dpid == dpid}
            flows = {f for f in flows if f.dpid == dpid}
            merged = kept | flows
        else:
            merged = set(flows)
        diff_flows(old, flows, plan)
        if merged:
            self._by_owner[owner] = merged
        else:
            self._by_owner.pop(owner, None)

    def owners(self) -> List[Owner]:
        """Every owner with flows."""
        return sorted(self._by_owner)

    def flows_of(self, owner: Owner) -> Set[FlowSpec]:
        """The owner's desired flows."""
        return set(self._by_owner.get(owner, ()))

    def on_switch(self, dpid: int) -> Set[FlowSpec]:
        """Every desired flow on one switch."""
        return {f for flows in self._by_owner.values() for f in flows if f.dpid == dpid}

    def reconcile(self, dpid: int, observed: Iterable[FlowSpec], plan: Plan) -> None:
        """Record what brings a switch's observed dynprov flows to the desired ones.

        ``observed`` holds the flows read back from the switch; flows whose
        cookie is not dynprov's are ignored and so never deleted.
        """
        ours = [f for f in observed if decode_cookie(f.cookie) is not None]
        diff_flows(ours, self.on_switch(dpid), plan)
