"""Desired flows per owner, and the changes that bring a switch to them (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Protocol, Set, Union

from ryu_apps.core.cookies import Owner, decode_cookie
from ryu_apps.core.flowspec import FlowSpec, Meter, MeterSpec
from ryu_apps.core.pipeline import is_dynprov_meter

#: What a switch holds for dynprov: flows and meters.
Entry = Union[FlowSpec, MeterSpec]
#: One owner's entries on one switch, by key.
Keyed = Dict[tuple, Entry]


def _ours(observed: Iterable[Entry]) -> List[Entry]:
    """The entries read back from a switch that are provably dynprov's.

    A flow is ours when its cookie is; a meter when its id lies in dynprov's
    block, or when one of our flows uses it (an id given by an earlier version).
    Any other meter, whatever its bands, belongs to someone else.
    """
    observed = list(observed)
    flows = [e for e in observed
             if isinstance(e, FlowSpec) and decode_cookie(e.cookie) is not None]
    used = {i.meter_id for f in flows for i in f.instructions if isinstance(i, Meter)}
    meters = [e for e in observed if isinstance(e, MeterSpec)
              and (is_dynprov_meter(e.meter_id) or e.meter_id in used)]
    return [*flows, *meters]


def dynprov_entries(observed: Iterable[Entry]) -> List[Entry]:
    """The entries read back from a switch that are provably dynprov's (the intent
    check compares these, as :meth:`DesiredFlows.reconcile` does)."""
    return _ours(observed)


class SwitchChanges:
    """Flow and meter changes for one switch, at most one change per entry.

    A later change of an entry overrides an earlier one in the same plan: an add
    after a delete of the same entry is just the add (ADD replaces in place),
    and a delete after an add is just the delete.
    """

    def __init__(self) -> None:
        self._adds: Dict[tuple, Entry] = {}
        self._deletes: Dict[tuple, Entry] = {}
        self._replacing: Set[tuple] = set()

    def add(self, spec: Entry, replacing: bool = False) -> None:
        """Install ``spec``; ``replacing`` when the switch already has its key."""
        key = spec.key   # a property that builds a tuple: once per call
        if self._deletes and self._deletes.pop(key, None) is not None:
            replacing = True  # the switch holds the entry this plan was deleting
        self._adds[key] = spec
        if replacing:
            self._replacing.add(key)

    def delete(self, spec: Entry) -> None:
        """Remove ``spec`` (exactly: by its key and cookie)."""
        key = spec.key
        pending = self._adds.get(key)
        if pending is not None and pending.cookie != spec.cookie:
            return  # another owner's add of this entry replaces it anyway
        if self._adds.pop(key, None) is not None and key not in self._replacing:
            return  # added earlier in this plan only: nothing to remove on the switch
        self._replacing.discard(key)
        self._deletes[key] = spec

    @property
    def adds(self) -> List[Entry]:
        """Entries to install, in the order they were planned."""
        return list(self._adds.values())

    @property
    def deletes(self) -> List[Entry]:
        """Entries to remove."""
        return list(self._deletes.values())

    def replaces(self, spec: Entry) -> bool:
        """True when the add replaces an entry the switch already holds."""
        return spec.key in self._replacing

    def __bool__(self) -> bool:
        return bool(self._adds or self._deletes)


@dataclass(frozen=True)
class PacketOut:
    """Re-inject a packet into a switch's pipeline once its flows are confirmed, as if
    it came in by ``in_port``; or, with ``out_port``, send it out of that port
    (``at_once``: without waiting for the plan's flows)."""

    dpid: int
    in_port: int
    data: bytes
    out_port: int | None = None
    at_once: bool = False


@dataclass
class Plan:
    """What one event asks of the switches, in order: changes, then packet-outs."""

    changes: Dict[int, SwitchChanges] = field(default_factory=dict)
    packet_outs: List[PacketOut] = field(default_factory=list)
    #: What the engine decided, in words, for the controller's log.
    notes: List[str] = field(default_factory=list)
    #: Routine per-VM details (logged at DEBUG: too many for INFO at thousands of VMs/s).
    details: List[str] = field(default_factory=list)
    #: What an operator should look at: refused links, spoofing, flapping (logged as warnings).
    warnings: List[str] = field(default_factory=list)
    #: VMs (MACs) to mark active once every switch has applied the plan.
    confirms: List[str] = field(default_factory=list)
    #: Messages for other network devices (ryu_apps.core.device_messages).
    messages: List[object] = field(default_factory=list)
    #: A VM moved and its traffic waits for this plan: write it before handling the
    #: next queued event (the app yields to its send loops).
    urgent: bool = False

    def extend(self, other: "Plan") -> "Plan":
        """Append another plan's changes, packet-outs, notes and messages."""
        for dpid, changes in other.changes.items():
            mine = self.for_switch(dpid)
            for spec in changes.deletes:
                mine.delete(spec)
            for spec in changes.adds:
                mine.add(spec, replacing=changes.replaces(spec))
        self.packet_outs += other.packet_outs
        self.notes += other.notes
        self.details += other.details
        self.warnings += other.warnings
        self.confirms += other.confirms
        self.messages += other.messages
        self.urgent = self.urgent or other.urgent
        return self

    def for_switch(self, dpid: int) -> SwitchChanges:
        """The (possibly new) change list of one switch."""
        changes = self.changes.get(dpid)
        if changes is None:   # not setdefault: it would build a throwaway list each call
            changes = self.changes[dpid] = SwitchChanges()
        return changes

    def without_deletes(self) -> "Plan":
        """A new plan: this one minus every delete (a warm start must not remove yet).

        This plan is left as it was.
        """
        copy = Plan(packet_outs=list(self.packet_outs), notes=list(self.notes),
                    details=list(self.details), warnings=list(self.warnings),
                    confirms=list(self.confirms), messages=list(self.messages))
        for dpid, changes in self.changes.items():
            mine = copy.for_switch(dpid)
            for spec in changes.adds:
                mine.add(spec, replacing=changes.replaces(spec))
        return copy

    def is_empty(self) -> bool:
        """True when nothing is to be sent."""
        return (not any(self.changes.values()) and not self.packet_outs
                and not self.messages)

    def flow_count(self) -> int:
        """Number of flow-mods in the plan."""
        return sum(len(c.deletes) + len(c.adds) for c in self.changes.values())


def diff_flows(old: Iterable[Entry], new: Iterable[Entry], plan: Plan) -> None:
    """Add to ``plan`` what turns flow set ``old`` into ``new``.

    Entries are identified by (switch, table, priority, match); an entry whose
    actions or cookie changed is re-added in place (OpenFlow ADD replaces it),
    so traffic never sees a gap between delete and add.
    """
    old_by_key = {f.key: f for f in old}
    if not old_by_key:   # a new owner (a new VM): every entry is an add
        dpid, changes = None, None
        for spec in new:
            if spec.dpid != dpid:   # a VM's entries are mostly on its server
                dpid, changes = spec.dpid, plan.for_switch(spec.dpid)
            assert changes is not None
            changes.add(spec)
        return
    new_by_key = {f.key: f for f in new}
    for key, spec in old_by_key.items():
        if key not in new_by_key:
            plan.for_switch(spec.dpid).delete(spec)
    for key, spec in new_by_key.items():
        if old_by_key.get(key) != spec:
            plan.for_switch(spec.dpid).add(spec, replacing=key in old_by_key)


class Recipe(Protocol):
    """What an owner's flows are compiled from (kept instead of the flows).

    Equal recipes compile to equal flows, so a recipe that did not change costs
    nothing; ``same_home`` says two recipes differ only in their flows away
    from ``home`` (the switch the owner lives on), which ``away`` compiles.
    """

    home: int

    def flows(self) -> Set[Entry]: ...

    def flows_on(self, dpid: int) -> Set[Entry]: ...

    def away(self) -> Set[Entry]: ...

    def same_home(self, other: "Recipe") -> bool: ...


class DesiredFlows:
    """The flows each owner should have installed, across all switches.

    Two kinds of owner: one whose flows are stored (a VLAN, an access port's
    group, a switch's infrastructure, a port's quarantine: few, shared by many
    VMs), kept per switch so one switch's share is replaced without touching
    the rest; and one whose flows are compiled on demand from a
    :class:`Recipe` (a VM binding: the binding, its template and its path
    already live in the engine, so keeping only the recipe costs a few dozen
    bytes instead of a few kilobytes of flow specs). Owners are keyed by cookie.
    """

    def __init__(self) -> None:
        self._stored: Dict[int, Dict[int, Keyed]] = {}   # cookie -> dpid -> key -> flow
        self._recipes: Dict[int, Recipe] = {}                  # cookie -> recipe

    def replace(self, owner: Owner, flows: Iterable[Entry], plan: Plan,
                dpid: int | None = None) -> None:
        """Set the owner's flows (only on ``dpid`` if given); record the diff."""
        cookie = owner.cookie
        recipe = self._recipes.pop(cookie, None)
        if recipe is not None:
            self._stored[cookie] = _by_switch(recipe.flows())
        per_switch = self._stored.get(cookie, {})
        new = _by_switch(flows)
        switches = {dpid} if dpid is not None else set(per_switch) | set(new)
        for switch in switches:
            old_flows = per_switch.get(switch, {})
            new_flows = new.get(switch, {})
            if old_flows != new_flows:
                diff_flows(old_flows.values(), new_flows.values(), plan)
            if new_flows:
                per_switch[switch] = new_flows
            else:
                per_switch.pop(switch, None)
        if per_switch:
            self._stored[cookie] = per_switch
        else:
            self._stored.pop(cookie, None)

    def patch(self, owner: Owner, dpid: int, changes: Mapping[tuple, Optional[Entry]],
              plan: Plan) -> None:
        """Change single entries of a stored owner on one switch (key -> new entry, or
        None to remove it); record the diff. O(changes), whatever the owner holds."""
        cookie = owner.cookie
        if cookie in self._recipes:
            raise ValueError(f"owner {owner}: compiled from a recipe, not patchable")
        per_switch = self._stored.setdefault(cookie, {})
        held = per_switch.setdefault(dpid, {})
        changes_here = plan.for_switch(dpid)
        for key, spec in changes.items():
            old = held.get(key)
            if spec is None:
                if old is not None:
                    changes_here.delete(held.pop(key))
            elif old != spec:
                held[key] = spec
                changes_here.add(spec, replacing=old is not None)
        if not held:
            per_switch.pop(dpid)
            if not per_switch:
                self._stored.pop(cookie)

    def place(self, owner: Owner, recipe: Recipe, plan: Plan) -> None:
        """Set the owner's flows to what ``recipe`` compiles to; record the diff."""
        cookie = owner.cookie
        old = self._recipes.get(cookie)
        if old is not None:
            if old == recipe:
                self._recipes[cookie] = recipe
                return
            if old.same_home(recipe):
                diff_flows(old.away(), recipe.away(), plan)
            else:
                diff_flows(old.flows(), recipe.flows(), plan)
        else:
            stored = self._stored.pop(cookie, {})
            diff_flows([f for flows in stored.values() for f in flows.values()],
                       recipe.flows(), plan)
        self._recipes[cookie] = recipe

    def retarget(self, owner: Owner, recipe: Recipe) -> None:
        """Keep ``recipe`` instead of the owner's current one, which compiles to the same
        flows (the caller knows; e.g. only a state that changes no flow changed)."""
        if owner.cookie in self._recipes:
            self._recipes[owner.cookie] = recipe

    def owners(self) -> List[Owner]:
        """Every owner with flows."""
        cookies = set(self._stored) | set(self._recipes)
        return sorted(o for o in map(decode_cookie, cookies) if o is not None)

    def flows_of(self, owner: Owner) -> Set[Entry]:
        """The owner's desired flows."""
        recipe = self._recipes.get(owner.cookie)
        if recipe is not None:
            return set(recipe.flows())
        return {f for flows in self._stored.get(owner.cookie, {}).values()
                for f in flows.values()}

    def on_switch(self, dpid: int) -> Set[Entry]:
        """Every desired flow on one switch."""
        found = {f for per_switch in self._stored.values()
                 for f in per_switch.get(dpid, {}).values()}
        for recipe in self._recipes.values():
            found |= recipe.flows_on(dpid)
        return found

    def reconcile(self, dpid: int, observed: Iterable[Entry], plan: Plan) -> None:
        """Record what brings a switch's observed dynprov entries to the desired ones.

        ``observed`` holds the flows and meters read back from the switch; those
        not provably dynprov's (another cookie; a meter outside dynprov's block
        that none of its flows uses) are ignored and so never deleted.
        """
        diff_flows(_ours(observed), self.on_switch(dpid), plan)


def _by_switch(flows: Iterable[Entry]) -> Dict[int, Keyed]:
    grouped: Dict[int, Keyed] = {}
    for spec in flows:
        grouped.setdefault(spec.dpid, {})[spec.key] = spec
    return grouped
