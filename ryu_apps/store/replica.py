"""The store client's IDL replica: row changes as events, reading and applying in slices.

The IDL yields to the hub every ``SLICE_BYTES`` it reads from the server and
every ``slice_rows`` rows (or ``SLICE_SECONDS``) it applies or reports, so a
big snapshot never holds the hub for long.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List

import eventlet
import ovs.db.idl

#: Longest the client works on a snapshot before yielding to the hub.
SLICE_SECONDS = 0.01
#: Bytes of a server message parsed between two yields to the hub.
SLICE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RowChange:
    """One row created, updated or deleted, with its values after (before, if deleted)."""

    table: str
    event: str  # ovs.db.idl.ROW_CREATE / ROW_UPDATE / ROW_DELETE
    uuid: str
    values: Dict[str, object]


class ReplicaIdl(ovs.db.idl.Idl):
    """An IDL that records row changes and yields to the hub while parsing."""

    def __init__(self, remote, helper, leader_only, slice_rows: int) -> None:
        super().__init__(remote, helper, leader_only=leader_only)
        self.changes: List[RowChange] = []
        self._slice_rows = slice_rows
        self._start_slice()

    def notify(self, event, row, updates=None):
        self.changes.append(RowChange(row._table.name, event, str(row.uuid), row_values(row)))
        self.cooperative_yield()

    def cooperative_yield(self):
        self._parsed += 1
        if self._parsed >= self._slice_rows or \
                time.monotonic() - self._slice_start > SLICE_SECONDS:
            eventlet.sleep(0)
            self._start_slice()

    def _start_slice(self) -> None:
        self._parsed = 0
        self._slice_start = time.monotonic()

    def run(self):
        # A slice starts with the work: a client woken after being idle must
        # not yield at its first row (one more trip through the hub, where
        # every other ready green thread runs first, on each small update).
        self._start_slice()
        self._slice_reads()
        return super().run()

    def _slice_reads(self) -> None:
        """Yield to the hub every SLICE_BYTES read from the server.

        The IDL parses a whole message (a first snapshot can be tens of MB)
        inside one ``run()``; wrapping the stream's ``recv`` lets other green
        threads run between chunks. Only this client's thread touches the IDL,
        so pausing it mid-message is safe.
        """
        rpc = self._session.rpc
        stream = getattr(rpc, "stream", None) if rpc is not None else None
        if stream is None or getattr(stream, "_dynprov_sliced", False):
            return
        plain_recv = stream.recv
        received = [0]

        def recv(n):
            error, data = plain_recv(n)
            received[0] += len(data or b"")
            if received[0] >= SLICE_BYTES:
                received[0] = 0
                eventlet.sleep(0)
                self._start_slice()
            return error, data

        stream.recv = recv
        stream._dynprov_sliced = True


def row_values(row) -> Dict[str, object]:
    """A row's columns as plain Python values (0..1 columns become a value or None)."""
    values: Dict[str, object] = {}
    for name, column in row._table.columns.items():
        value = getattr(row, name)
        if column.type.is_optional() and not column.type.is_map():
            value = value[0] if value else None
        values[name] = value
    return values
