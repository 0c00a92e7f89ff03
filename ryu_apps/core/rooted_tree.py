"""A spanning forest rooted per component: parents, children, subtrees and tree links."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple


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
    def of(cls, tree: Dict[int, Dict[int, int]]) -> "RootedTree":
        """Root each component of ``tree`` (dpid -> {neighbour: port}) at its lowest dpid."""
        parent: Dict[int, Tuple[int, int]] = {}
        children: Dict[int, List[Tuple[int, int]]] = {d: [] for d in tree}
        order: List[int] = []
        roots: Dict[int, int] = {}
        down: Dict[int, int] = {}
        seen: Set[int] = set()
        for root in sorted(tree):
            if root in seen:
                continue
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

    def changed_edges(self, other: "RootedTree") -> Tuple[Set, Set]:
        """Tree links of ``other`` that this tree lacks, and links of this tree ``other``
        lacks (each as in :meth:`edges`), found from the parent entries that differ."""
        moved = {d for d in set(self.parent) | set(other.parent)
                 if self.parent.get(d) != other.parent.get(d)
                 or self.down.get(d) != other.down.get(d)}
        mine = {self._edge(d) for d in moved if d in self.parent}
        theirs = {other._edge(d) for d in moved if d in other.parent}
        return theirs - mine, mine - theirs

    def _edge(self, child: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        up, port = self.parent[child]
        return _in_order((child, port), (up, self.down[child]))

    def edges(self) -> Set[Tuple[Tuple[int, int], Tuple[int, int]]]:
        """Every tree link once, as its two (dpid, port) ends in order."""
        return {_in_order((child, port), (up, self.down[child]))
                for child, (up, port) in self.parent.items()}

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


def _in_order(a: Tuple[int, int], b: Tuple[int, int]) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """A link's two (dpid, port) ends, the lesser first."""
    return (a, b) if a <= b else (b, a)
