"""Where each VLAN's frames are flooded, kept up to date one member switch at a time (pure).

A switch floods a VLAN's group-addressed frames out of its tree ports that
lead toward other switches with forwarding VMs of that VLAN. Recomputing that
for every switch on every VM event costs O(switches x members); this keeps,
per VLAN and per switch of the rooted spanning tree, how many member switches
lie in its subtree. A switch's flood ports are then its children with members
below, plus its parent when members lie outside its subtree. When a switch
becomes (or stops being) a member, only the subtree counts along its way to
the root change, and only switches on that way or on the way of another member
can see their flood ports change (every switch of the component when the VLAN
gets its first member or loses its last).
"""

from __future__ import annotations

from typing import Dict, List, Set

from ryu_apps.core.rooted_tree import RootedTree


class VlanFlooding:
    """Member switches of each VLAN and every switch's flood ports for it."""

    def __init__(self, tree: RootedTree) -> None:
        self._tree = tree
        self._count: Dict[int, Dict[int, int]] = {}   # vlan -> switch -> forwarding VMs
        self._sub: Dict[int, Dict[int, int]] = {}     # vlan -> switch -> members in subtree

    def join(self, vlan: int, dpid: int) -> Set[int]:
        """One more forwarding VM of ``vlan`` on ``dpid``; switches whose flood ports may change."""
        counts = self._count.setdefault(vlan, {})
        before = counts.get(dpid, 0)
        counts[dpid] = before + 1
        return set() if before else self._member_changed(vlan, dpid, +1)

    def leave(self, vlan: int, dpid: int) -> Set[int]:
        """One forwarding VM of ``vlan`` on ``dpid`` fewer; the switches whose floods may change."""
        counts = self._count.get(vlan, {})
        before = counts.get(dpid, 0)
        if before == 0:
            raise ValueError(f"VLAN {vlan} has no forwarding VM on switch {dpid:016x}")
        if before > 1:
            counts[dpid] = before - 1
            return set()
        del counts[dpid]
        if not counts:
            del self._count[vlan]
        return self._member_changed(vlan, dpid, -1)

    def is_member(self, vlan: int, dpid: int) -> bool:
        """Whether ``dpid`` counts as a member switch of ``vlan``."""
        return dpid in self._count.get(vlan, ())

    def switch_count(self, vlan: int) -> int:
        """How many member switches ``vlan`` has."""
        return len(self._count.get(vlan, ()))

    def member_switches(self, vlan: int) -> Set[int]:
        """Switches with at least one forwarding VM of the VLAN."""
        return set(self._count.get(vlan, ()))

    def vlans(self) -> List[int]:
        """VLANs with at least one forwarding VM."""
        return sorted(self._count)

    def flood_ports(self, vlan: int, dpid: int) -> List[int]:
        """Tree ports of ``dpid`` toward other member switches of ``vlan``, sorted."""
        return _flood_ports(self._tree, self._sub.get(vlan), dpid)

    def rebuild(self, tree: RootedTree) -> Dict[int, Set[int]]:
        """Adopt a new spanning tree; per VLAN, the switches whose flood ports changed.

        Only switches whose tree links, or whose subtree counts (or their
        children's) changed, or whose "members outside my subtree" flipped, are
        compared: a server's uplink flapping costs integer work per switch,
        not a flood-port computation per switch.
        """
        old_tree, old_sub = self._tree, self._sub
        self._tree = tree
        self._sub = {}
        for vlan, counts in self._count.items():
            sub = self._sub.setdefault(vlan, {})
            for dpid in counts:
                if dpid in tree.root:
                    for node in tree.up_path(dpid):
                        sub[node] = sub.get(node, 0) + 1
        structural: Set[int] = set()
        for dpid in set(old_tree.parent) | set(tree.parent):
            if (old_tree.parent.get(dpid) != tree.parent.get(dpid)
                    or old_tree.down.get(dpid) != tree.down.get(dpid)):
                structural.add(dpid)
                for parent in (old_tree.parent.get(dpid), tree.parent.get(dpid)):
                    if parent is not None:
                        structural.add(parent[0])
        structural |= set(old_tree.root) ^ set(tree.root)
        changed: Dict[int, Set[int]] = {}
        for vlan in set(self._count) | set(old_sub):
            old, new = old_sub.get(vlan, {}), self._sub.get(vlan, {})
            candidates = set(structural)
            for dpid in set(old) | set(new):
                if old.get(dpid) != new.get(dpid):
                    candidates.add(dpid)
                    for t in (old_tree, tree):
                        if dpid in t.parent:
                            candidates.add(t.parent[dpid][0])
            candidates |= _outside_flipped(old_tree, old, tree, new)
            changed[vlan] = {d for d in candidates
                             if _flood_ports(old_tree, old, d) != _flood_ports(tree, new, d)}
        return changed

    def _member_changed(self, vlan: int, dpid: int, delta: int) -> Set[int]:
        tree = self._tree
        root = tree.root.get(dpid)
        if root is None:
            return {dpid}   # not on the tree: it floods nowhere, nobody floods to it
        sub = self._sub.setdefault(vlan, {})
        total_before = sub.get(root, 0)
        way = tree.up_path(dpid)
        for node in way:
            value = sub.get(node, 0) + delta
            if value:
                sub[node] = value
            else:
                sub.pop(node, None)
        if not sub:
            del self._sub[vlan]
        if total_before == 0 or total_before + delta == 0:
            return {d for d, r in tree.root.items() if r == root}
        candidates = set(way)
        for other in self._count.get(vlan, ()):
            if other != dpid and tree.root.get(other) == root:
                candidates.update(tree.up_path(other))
                break
        return candidates


def _flood_ports(tree: RootedTree, sub: Dict[int, int] | None, dpid: int) -> List[int]:
    """Ports of ``dpid`` toward member switches other than itself, given subtree counts."""
    root = tree.root.get(dpid)
    if not sub or root is None:
        return []
    ports = [port for child, port in tree.children.get(dpid, ()) if child in sub]
    if dpid in tree.parent and sub.get(root, 0) - sub.get(dpid, 0) > 0:
        ports.append(tree.parent[dpid][1])
    return sorted(ports)


def _outside_flipped(old_tree: RootedTree, old: Dict[int, int], tree: RootedTree,
                     new: Dict[int, int]) -> Set[int]:
    """Switches for which "members lie outside my subtree" changed between two states."""
    flipped: Set[int] = set()
    totals_changed = any(old.get(r, 0) != new.get(r, 0)
                         for r in set(old_tree.root.values()) | set(tree.root.values()))
    # A switch that changed components sees another total even when no total changed.
    candidates = tree.order if totals_changed else \
        [d for d in tree.order if old_tree.root.get(d) != tree.root.get(d)]
    for dpid in candidates:
        before = dpid in old_tree.parent and \
            old.get(old_tree.root[dpid], 0) - old.get(dpid, 0) > 0
        after = dpid in tree.parent and new.get(tree.root[dpid], 0) - new.get(dpid, 0) > 0
        if before != after:
            flipped.add(dpid)
    return flipped
