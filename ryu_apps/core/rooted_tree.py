"""A spanning forest rooted per component: parents, children, subtrees and tree links.

The root of a component is the switch the caller ranks first (the fabric
chooses it, see :meth:`~ryu_apps.core.fabric.Fabric.rooted_tree`); the tree is the
breadth-first walk from it, so every switch hangs as close to the root as the
links allow.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple


@dataclass
class RootedTree:
    """A spanning forest as parent and child ports, for subtree counting.

    ``parent[d]`` is (parent dpid, d's port toward it), absent for a root;
    ``children[d]`` lists (child dpid, d's port toward it).
    """

    parent: Dict[int, Tuple[int, int]]
    children: Dict[int, List[Tuple[int, int]]]
    order: List[int]   # every switch, parents before children
    root: Dict[int, int]          # the root of each switch's component
    down: Dict[int, int]          # the parent's port toward each non-root switch

    @classmethod
    def of(cls, tree: Dict[int, Dict[int, int]],
           rank: Optional[Callable[[int], Tuple]] = None) -> "RootedTree":
        """Root each component of ``tree`` (dpid -> {neighbour: port}) at the switch of
        least ``rank`` (default: the lowest dpid) and walk it breadth-first from there."""
        parent: Dict[int, Tuple[int, int]] = {}
        children: Dict[int, List[Tuple[int, int]]] = {d: [] for d in tree}
        order: List[int] = []
        roots: Dict[int, int] = {}
        down: Dict[int, int] = {}
        seen: Set[int] = set()
        for start in sorted(tree):
            if start in seen:
                continue
            root = start if rank is None else min(_component(tree, start), key=rank)
            seen.add(root)
            queue = deque([root])
            while queue:
                node = queue.popleft()
                order.append(node)
                roots[node] = root
                for neighbour in sorted(tree[node]):
                    if neighbour in seen:
                        continue
                    seen.add(neighbour)
                    parent[neighbour] = (node, tree[neighbour][node])
                    down[neighbour] = tree[node][neighbour]
                    children[node].append((neighbour, tree[node][neighbour]))
                    queue.append(neighbour)
        return cls(parent, children, order, roots, down)

    def changed_parents(self, other: "RootedTree") -> Set[int]:
        """Switches whose parent, or either port of the link to it, differs in ``other``
        (a new root, the old root, and every switch that hangs elsewhere)."""
        return {d for d in set(self.parent) | set(other.parent)
                if self.parent.get(d) != other.parent.get(d)
                or self.down.get(d) != other.down.get(d)}

    def subtree(self, dpid: int) -> List[int]:
        """``dpid`` and every switch below it."""
        found, stack = [], [dpid]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(child for child, _ in self.children.get(node, ()))
        return found

    def up_path(self, dpid: int) -> List[int]:
        """``dpid`` and its ancestors up to the root."""
        path = [dpid]
        while dpid in self.parent:
            dpid = self.parent[dpid][0]
            path.append(dpid)
        return path


def _component(tree: Dict[int, Dict[int, int]], start: int) -> List[int]:
    """Every switch connected to ``start``."""
    found, stack, seen = [], [start], {start}
    while stack:
        node = stack.pop()
        found.append(node)
        for neighbour in tree[node]:
            if neighbour not in seen:
                seen.add(neighbour)
                stack.append(neighbour)
    return found
