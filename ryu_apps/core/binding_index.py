"""Indexes over the engine's bindings, so no event scans them all (pure).

The engine's bindings (where each VM is now) and incoming bindings (migration
destinations) are indexed here by binding id, by server and VLAN, by template
and by network device. Each index holds binding ids (small ints) except the
one by id, which holds the bindings themselves; the engine adds a binding when
it stores it and removes it when it drops or replaces it. A server's ids per
VLAN (a few dozen) are kept as dict keys: a small dict costs half a small
set's memory per member.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Set

from ryu_apps.core.binding import Binding


class BindingIndex:
    """Bindings (current and incoming) by id, server/VLAN, template and device."""

    def __init__(self) -> None:
        self.by_id: Dict[int, Binding] = {}
        self._on_server: Dict[int, Dict[int, Dict[int, None]]] = {}   # dpid -> vlan -> ids
        self._by_template: Dict[int, Set[int]] = {}
        self._by_device: Dict[Optional[int], Set[int]] = {}

    def add(self, binding: Binding) -> None:
        """Index a binding the engine just stored."""
        binding_id = binding.binding_id
        self.by_id[binding_id] = binding
        self._on_server.setdefault(binding.dpid, {}).setdefault(binding.vlan, {})[
            binding_id] = None
        self._by_template.setdefault(binding.template_id, set()).add(binding_id)
        self._by_device.setdefault(binding.device, set()).add(binding_id)

    def remove(self, binding: Binding) -> None:
        """Forget a binding the engine dropped or replaced."""
        binding_id = binding.binding_id
        if self.by_id.get(binding_id) is binding:
            del self.by_id[binding_id]
        vlans = self._on_server.get(binding.dpid, {})
        members = vlans.get(binding.vlan)
        if members is not None:
            members.pop(binding_id, None)
            if not members:
                del vlans[binding.vlan]
        if not vlans:
            self._on_server.pop(binding.dpid, None)
        _discard(self._by_template, binding.template_id, binding_id)
        _discard(self._by_device, binding.device, binding_id)

    def swap(self, old: Binding, new: Binding) -> bool:
        """Replace ``old`` by ``new`` in place when no index key differs; True if done."""
        if (old.binding_id != new.binding_id or old.dpid != new.dpid or old.vlan != new.vlan
                or old.template_id != new.template_id or old.device != new.device
                or self.by_id.get(old.binding_id) is not old):
            return False
        self.by_id[new.binding_id] = new
        return True

    def on_server(self, dpid: int, vlan: int | None = None) -> List[Binding]:
        """The bindings on one server (of one VLAN), by id."""
        vlans = self._on_server.get(dpid, {})
        if vlan is None:
            ids = [i for members in vlans.values() for i in members]
        else:
            ids = list(vlans.get(vlan, ()))
        return [self.by_id[i] for i in sorted(ids)]

    def iter_on_server(self, dpid: int, vlan: int) -> Iterator[Binding]:
        """The bindings of one VLAN on one server, unsorted (cheaper than on_server)."""
        by_id = self.by_id
        for binding_id in self._on_server.get(dpid, {}).get(vlan, ()):
            yield by_id[binding_id]

    def vlans_on(self, dpid: int) -> Set[int]:
        """VLANs of the bindings on one server."""
        return set(self._on_server.get(dpid, ()))

    def servers(self) -> Set[int]:
        """Servers holding at least one binding."""
        return set(self._on_server)

    def of_template(self, template_id: int) -> List[Binding]:
        """The bindings of one template."""
        return [self.by_id[i] for i in sorted(self._by_template.get(template_id, ()))]

    def of_device(self, device: Optional[int]) -> List[Binding]:
        """The bindings one network device holds."""
        return [self.by_id[i] for i in sorted(self._by_device.get(device, ()))]

    def __iter__(self) -> Iterator[Binding]:
        return iter(list(self.by_id.values()))

    def __len__(self) -> int:
        return len(self.by_id)


def _discard(index: Dict, key, binding_id: int) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(binding_id)
        if not members:
            del index[key]
