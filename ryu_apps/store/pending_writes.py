"""Writes submitted to the store client: what a write is, how it ended, how a caller waits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import eventlet
import ovs.db.idl
from ovs.db.idl import Transaction

#: A write: builds a transaction against the replica; its value is reported back.
Write = Callable[[ovs.db.idl.Idl, Transaction], object]


@dataclass
class WriteResult:
    """How a write ended: ``ok``, the write's return value, tries, error text."""

    ok: bool
    value: object = None
    attempts: int = 0
    error: str = ""
    committed_at: float = 0.0


@dataclass
class PendingWrite:
    """A queued write, its caller's callback and event, and how its tries went."""

    write: Write
    on_done: Optional[Callable[[WriteResult], None]]
    deadline: float
    event: eventlet.event.Event = field(default_factory=eventlet.event.Event)
    attempts: int = 0
    value: object = None
    last_error: str = ""
    #: time.monotonic() when it was queued (the metrics' replication lag).
    submitted: float = 0.0


class WriteFuture:
    """Wait for a submitted write: ``future.wait(timeout) -> WriteResult | None``."""

    def __init__(self, pending: PendingWrite) -> None:
        self._pending = pending

    def wait(self, timeout: Optional[float] = None) -> Optional[WriteResult]:
        with eventlet.Timeout(timeout, False):
            return self._pending.event.wait()
        return None
