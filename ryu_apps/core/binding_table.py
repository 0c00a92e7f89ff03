"""The engine's bindings and every index over them, kept right in one place (pure).

Three tables by MAC: ``bindings`` (where each VM is now), ``incoming``
(pre-provisioned migration destinations) and ``outgoing`` (sources that wait
for :class:`~ryu_apps.core.device_messages.MigrationDone`). Their indexes (by
port, by bound IPv4 and IPv6 address, ids in use,
:class:`~ryu_apps.core.binding_index.BindingIndex`, the bindings whose
port-side rules moved, the last state of every VM) change only
through :meth:`BindingTable.add`, :meth:`~BindingTable.replace`,
:meth:`~BindingTable.remove`, :meth:`~BindingTable.hand_out` and
:meth:`~BindingTable.release`; no handler edits an index. A binding joining or
leaving its VLAN's forwarding members is reported to ``on_member``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ryu_apps.core.binding import Binding, VmState
from ryu_apps.core.binding_index import BindingIndex
from ryu_apps.core.pipeline import MAX_BINDING_ID

PortKey = Tuple[int, int]
#: Called with a binding and +1 (it joins its VLAN on its server) or -1 (it leaves).
MemberHook = Callable[[Binding, int], None]


def present(binding: Binding) -> bool:
    """Whether the VM needs its VLAN's way up (forwarding or pre-provisioned)."""
    return binding.state.forwards or binding.state is VmState.PRE_PROVISIONED


class BindingTable:
    """Bindings, incoming and outgoing bindings, and their indexes."""

    def __init__(self, on_member: MemberHook) -> None:
        self.bindings: Dict[str, Binding] = {}
        self.incoming: Dict[str, Binding] = {}
        self.outgoing: Dict[str, Binding] = {}
        #: The last state of every VM ever seen.
        self.history: Dict[str, VmState] = {}
        #: Bindings and incoming by id, server and VLAN, template and device.
        self.index = BindingIndex()
        #: Ids of bindings whose port-side rules sit on their virtual-switch port.
        self.moved: Set[int] = set()
        #: Ids that joined or left their VLAN's members since their access-port group
        #: last looked (their ``moved`` flag may be stale; :mod:`access_groups` settles it).
        self.fresh: Set[int] = set()
        #: (server, VLAN) -> template id -> present bindings of it (incoming ones too)
        self.present_templates: Dict[PortKey, Dict[int, int]] = {}
        self._by_port: Dict[PortKey, Binding] = {}
        self._by_ip: Dict[str, Set[str]] = {}   # bound IPv4 -> MACs of current bindings
        self._by_ipv6: Dict[str, Set[str]] = {}   # bound global IPv6 -> MACs, the same
        self._next_id = 1
        self._on_member = on_member

    # -- mutators ----------------------------------------------------------------
    def add(self, binding: Binding) -> None:
        """Store a binding in its table (replacing that table's binding of its MAC)."""
        table = self._table_of(binding)
        previous = table.get(binding.mac)
        table[binding.mac] = binding
        if table is self.bindings:
            if previous is None or previous.ip != binding.ip:
                self._hold_ip(previous, binding)
            if previous is None or previous.ipv6 != binding.ipv6:
                self._hold_ipv6(previous, binding)
        if previous is None or not self.index.swap(previous, binding):
            if previous is not None:
                self._unindex(previous)
            self.index.add(binding)
            self._member(binding, +1)
        elif previous.state.forwards != binding.state.forwards or \
                present(previous) != present(binding) or previous.port != binding.port:
            self._member(previous, -1)
            self._member(binding, +1)
        self._by_port[(binding.dpid, binding.port)] = binding
        self.history[binding.mac] = binding.state

    def remove(self, binding: Binding, final_state: Optional[VmState] = None) -> None:
        """Forget a binding (what its table and its port hold, if it is still that one);
        ``final_state``: the VM's state for the history."""
        table = self._table_of(binding)
        stored = table.get(binding.mac)
        if stored is not None and _same(stored, binding):
            del table[binding.mac]
            self._unindex(stored)
            if table is self.bindings:
                if stored.ip is not None:
                    self._hold_ip(stored, None)
                if stored.ipv6:
                    self._hold_ipv6(stored, None)
        self._release_port(binding)
        if final_state is not None:
            self.history[binding.mac] = final_state

    def replace(self, old: Binding, new: Binding) -> None:
        """``new`` instead of ``old`` (its table, port and indexes follow)."""
        self.remove(old)
        self.add(new)

    def hand_out(self, source: Binding) -> None:
        """The VM left ``source`` for a destination here: keep the source, as outgoing,
        until :meth:`release` (its port stays taken)."""
        self.outgoing[source.mac] = replace(source, state=VmState.MIGRATING_OUT)
        self.fresh.add(source.binding_id)

    def release(self, mac: str) -> Optional[Binding]:
        """The outgoing binding of ``mac`` is gone: forget it and free its port."""
        source = self.outgoing.pop(mac, None)
        if source is not None:
            self._release_port(source)
        return source

    def set_moved(self, binding_id: int, moved: bool) -> bool:
        """Whether the binding carries its template's port-side rules on its own port
        (the template merge of its access-port group); True when that changed."""
        if (binding_id in self.moved) == moved:
            return False
        (self.moved.add if moved else self.moved.discard)(binding_id)
        return True

    def allocate_id(self) -> int:
        """A binding id no binding holds."""
        candidate = self._next_id
        while self.id_in_use(candidate):
            candidate = candidate % MAX_BINDING_ID + 1
        self._next_id = candidate % MAX_BINDING_ID + 1
        return candidate

    # -- queries -------------------------------------------------------------------
    def at_port(self, dpid: int, port: int) -> Optional[Binding]:
        """The binding (current, incoming or outgoing) that holds this port."""
        return self._by_port.get((dpid, port))

    def ip_holder(self, ip: str, mac: str) -> Optional[Binding]:
        """Another VM's current binding that holds IPv4 ``ip``, if any."""
        for holder in self._by_ip.get(ip, ()):
            if holder != mac:
                return self.bindings[holder]
        return None

    def ipv6_holder(self, address: str, mac: Optional[str] = None) -> Optional[Binding]:
        """A current binding that holds global IPv6 ``address``, another VM's than
        ``mac`` (any VM's when None); of several, the lowest MAC's."""
        holders = self._by_ipv6.get(address)
        if not holders:
            return None
        found = min((h for h in holders if h != mac), default=None)
        return None if found is None else self.bindings[found]

    def id_in_use(self, binding_id: int) -> bool:
        """Whether a binding of any table holds this id (outgoing ones are few: the
        VMs migrating out right now)."""
        return self._held(binding_id)

    def __iter__(self) -> Iterator[Binding]:
        """Current and incoming bindings."""
        yield from list(self.bindings.values())
        yield from list(self.incoming.values())

    def of_templates(self, template_ids: Iterable[int]) -> List[Binding]:
        """Current and incoming bindings of these templates, by template and id."""
        found: List[Binding] = []
        for template_id in sorted(set(template_ids)):
            found += self.index.of_template(template_id)
        return found

    def of_device(self, device: int) -> List[Binding]:
        """Every binding of one network device (outgoing too), by MAC."""
        held = self.index.of_device(device)
        held += [b for b in self.outgoing.values() if b.device == device]
        return sorted(held, key=lambda b: b.mac)

    # -- internals -------------------------------------------------------------------
    def _table_of(self, binding: Binding) -> Dict[str, Binding]:
        return self.incoming if binding.state is VmState.PRE_PROVISIONED else self.bindings

    def _unindex(self, binding: Binding) -> None:
        self.index.remove(binding)
        self.moved.discard(binding.binding_id)
        self._member(binding, -1)

    def _member(self, binding: Binding, delta: int) -> None:
        """Count a present binding's template on its server and VLAN; tell the hook."""
        self.fresh.add(binding.binding_id)
        if present(binding):
            key = (binding.dpid, binding.vlan)
            counts = self.present_templates.setdefault(key, {})
            left = counts.get(binding.template_id, 0) + delta
            if left:
                counts[binding.template_id] = left
            else:
                counts.pop(binding.template_id, None)
                if not counts:
                    del self.present_templates[key]
        self._on_member(binding, delta)

    def _hold_ip(self, old: Optional[Binding], new: Optional[Binding]) -> None:
        """A current binding's IPv4 changed from ``old``'s to ``new``'s."""
        if old is not None and old.ip is not None:
            holders = self._by_ip.get(old.ip, set())
            holders.discard(old.mac)
            if not holders:
                self._by_ip.pop(old.ip, None)
        if new is not None and new.ip is not None:
            self._by_ip.setdefault(new.ip, set()).add(new.mac)

    def _hold_ipv6(self, old: Optional[Binding], new: Optional[Binding]) -> None:
        """A current binding's global IPv6 addresses changed from ``old``'s to ``new``'s."""
        if old is not None:
            for address in old.ipv6:
                holders = self._by_ipv6.get(address, set())
                holders.discard(old.mac)
                if not holders:
                    self._by_ipv6.pop(address, None)
        if new is not None:
            for address in new.ipv6:
                self._by_ipv6.setdefault(address, set()).add(new.mac)

    def _release_port(self, binding: Binding) -> None:
        key = (binding.dpid, binding.port)
        if _same(self._by_port.get(key), binding):
            del self._by_port[key]

    def _held(self, binding_id: int) -> bool:
        if binding_id in self.index.by_id:
            return True
        return any(b.binding_id == binding_id for b in self.outgoing.values())


def _same(stored: Optional[Binding], binding: Binding) -> bool:
    return stored is not None and stored.binding_id == binding.binding_id
