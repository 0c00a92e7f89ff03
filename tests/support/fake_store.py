"""The store's Binding and Process rows in memory, written by the real ``writes.py``.

:class:`FakeStore` plays ovsdb-server and the IDL for the hand-off's unit
tests: the write intents of ``ryu_apps.core.handoff`` are mapped to the real
transactions (``ryu_apps.store.writes.write_of``), run against an in-memory
replica with the IDL's row interface, and every process is told the row
changes its condition covers (rows it owns, rows naming it as
``requested_owner``, rows of the MACs it watches), as conditional monitoring
does. Writes wait in a queue until :meth:`FakeStore.commit` runs them, so a
test decides when (and whether) they commit.
"""

from __future__ import annotations

import itertools
from typing import Callable, Dict, List, Optional, Tuple

from ryu_apps.core.handoff_values import BindingRow, RowChanged, Write, WriteDone
from ryu_apps.store.schema import BINDING, PROCESS
from ryu_apps.store.writes import binding_row, write_of

_DEFAULTS = {
    BINDING: {"mac": "", "template_id": 0, "domain": "", "server": "", "port": 0, "ip": [],
              "ipv6": [], "ip_source": [], "lease_end": [], "lease6_ends": {},
              "state": "active", "owner": "",
              "requested_owner": [], "requested_server": [], "requested_port": [],
              "since": 0.0, "version": 0},
    PROCESS: {"name": "", "devices": [], "library_generation": 0, "library_applied": 0.0,
              "started": 0.0, "heartbeat": 0.0},
}


class FakeRow:
    """A replica row: columns as attributes (optional ones as lists, like the IDL's)."""

    def __init__(self, table: "FakeTable", uuid: int) -> None:
        self.__dict__.update(_DEFAULTS[table.name])
        self._table, self._uuid = table, uuid

    def verify(self, column: str) -> None:
        """The IDL's optimistic check: always passes here (one writer at a time)."""

    def delete(self) -> None:
        del self._table.rows[self._uuid]


class FakeTable:
    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: Dict[int, FakeRow] = {}


class FakeIdl:
    """The part of ``ovs.db.idl.Idl`` and its transaction that ``writes.py`` uses."""

    def __init__(self) -> None:
        self.tables = {name: FakeTable(name) for name in _DEFAULTS}
        self._uuids = itertools.count(1)

    def insert(self, table: FakeTable) -> FakeRow:
        row = FakeRow(table, next(self._uuids))
        table.rows[row._uuid] = row
        return row


Member = Callable[[object], None]   # feeds one reducer input to a process


class FakeStore:
    """Rows shared by every process; writes queued until committed."""

    def __init__(self) -> None:
        self.idl = FakeIdl()
        self.members: Dict[str, Tuple[Member, Callable[[], frozenset]]] = {}
        self.seen: Dict[str, Dict[str, BindingRow]] = {}
        self.queue: List[Tuple[str, Write]] = []

    def join(self, name: str, feed: Member, watching: Callable[[], frozenset]) -> None:
        """Process ``name`` replicates its rows from now on (its first snapshot now)."""
        self.members[name] = (feed, watching)
        self.seen[name] = {}
        self.sync(name)

    def sync(self, name: str) -> None:
        """Tell process ``name`` how the rows its condition covers changed since last time
        (after a write, or after it changed which MACs it watches)."""
        if name not in self.members:
            return
        seen, now = self.seen[name], self._visible(name)
        self.seen[name] = now
        for mac in sorted(set(seen) | set(now)):
            if seen.get(mac) != now.get(mac):
                self._tell(name, RowChanged(mac, now.get(mac)))

    def leave(self, name: str) -> None:
        """Process ``name`` is gone (killed): it hears nothing more."""
        self.members.pop(name, None)
        self.seen.pop(name, None)

    def submit(self, name: str, write: Write) -> None:
        self.queue.append((name, write))

    def commit(self, fail: Optional[Callable[[Write], bool]] = None) -> int:
        """Run every queued write (and those their results queue); how many ran.
        ``fail(write)``: the writes that end in an error instead."""
        count = 0
        while self.queue:
            name, write = self.queue.pop(0)
            count += 1
            if fail is not None and fail(write):
                self._tell(name, WriteDone(write, False, None, "injected failure"))
                continue
            value = write_of(write, name)(self.idl, self.idl)
            for member in list(self.members):
                self.sync(member)
            self._tell(name, WriteDone(write, True, value))
        return count

    def drop_queued(self, name: str) -> None:
        """Forget the writes of a process that died before they committed."""
        self.queue = [(n, w) for n, w in self.queue if n != name]

    def rows(self) -> Dict[str, dict]:
        """Every Binding row, by MAC: the columns a test asserts on."""
        return {row.mac: {"owner": row.owner, "server": row.server, "port": row.port,
                          "state": row.state,
                          "requested_owner": (row.requested_owner or [None])[0]}
                for row in self.idl.tables[BINDING].rows.values()}

    def _tell(self, name: str, event) -> None:
        if name in self.members:
            self.members[name][0](event)

    def _visible(self, name: str) -> Dict[str, BindingRow]:
        """The Binding rows process ``name``'s condition covers."""
        watching = self.members[name][1]() if name in self.members else frozenset()
        return {row.mac: binding_row(_values(row))
                for row in self.idl.tables[BINDING].rows.values()
                if row.owner == name or name in row.requested_owner or row.mac in watching}


def _values(row: FakeRow) -> dict:
    """A row's values as ``replica.row_values`` gives them (optional columns unwrapped)."""
    return {"mac": row.mac, "owner": row.owner, "server": row.server,
            "requested_owner": (row.requested_owner or [None])[0],
            "requested_server": (row.requested_server or [None])[0],
            "ip": (row.ip or [None])[0], "ipv6": list(row.ipv6),
            "ip_source": (row.ip_source or [None])[0],
            "lease_end": (row.lease_end or [None])[0], "lease6_ends": dict(row.lease6_ends)}
