"""The store client inside an eventlet process (a Ryu app, a benchmark).

One green thread owns the :class:`ovs.db.idl.Idl`: it runs the protocol,
commits transactions and turns row changes into :class:`RowChange` events.
Nothing else touches the IDL. Other green threads call :meth:`StoreClient.submit`
with a *write*, a function ``write(idl, txn) -> value`` that builds a
transaction against the replica, and get a :class:`WriteResult` back through a
callback and an event.

Rules that keep it safe and the hub responsive:

- **Writes are re-evaluated, never replayed.** A write that comes back as
  "try again" or as an error (a conflict, a follower with no leader during a
  failover, a lost connection) is run again from scratch against the replica
  once it has been refreshed, after a back-off, in a later loop iteration:
  never re-queued inside the loop that drains the queue. Each write states a
  wanted end state (keyed by MAC, checked with ``verify`` on a version column),
  so a retry of a write that did land changes nothing. A write is reported
  successful only once the server committed it (in a cluster, Raft-committed).
- **Waiting** is on a green event, set by :meth:`StoreClient.submit` and by a
  second green thread that waits for the IDL's socket to become readable
  (``trampoline``, one reader, re-armed on every new socket). No
  ``ovs.poller``, no wake-up pipe: under monkey-patching a green ``os.read`` on
  an empty non-blocking pipe waits instead of raising; and no green ``select``
  over several descriptors, which eventlet reported as a second reader of a
  descriptor the IDL had closed and reopened. An idle client costs ~0.5% CPU
  (a 5 ms poll cost 5%).
- **Big snapshots** are read in slices: the client yields to the hub every
  64 KiB the IDL reads from the server and every ``slice_rows`` rows it
  applies or reports (the IDL's ``cooperative_yield`` hook), and change events
  are delivered to handlers in slices too.
- **Failover**: every member is listed in the remote; follower connections are
  allowed (``leader_only=False``, writes are forwarded to the leader) and the
  reconnect back-off starts at ``min_backoff_ms`` instead of 1 s.

The replica IDL is in ``replica`` and the write records in ``pending_writes``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence

import eventlet
from eventlet.hubs import IOClosed, trampoline
from ovs.db.idl import Transaction

from ryu_apps.store.pending_writes import PendingWrite, Write, WriteFuture, WriteResult
from ryu_apps.store.replica import ReplicaIdl, RowChange
from ryu_apps.store.schema import TABLES, schema_helper
from ryu_apps.tls import ovsdb_ssl

#: Statuses that end a write.
_DONE = (Transaction.SUCCESS, Transaction.UNCHANGED)
#: Most writes committed in one transaction.
BATCH = 64
#: Seconds between looks at a connection being (re)established.
RECONNECT_POLL = 0.02
#: Longest wait on the socket before looking again (a replaced socket is picked up).
SOCKET_WAIT = 0.25


class _Wakeup:
    """A resettable green flag: ``set`` wakes one ``wait(timeout)``."""

    def __init__(self) -> None:
        self._event = eventlet.event.Event()

    def set(self) -> None:
        if not self._event.ready():
            self._event.send(True)

    def wait(self, timeout: float) -> None:
        with eventlet.Timeout(timeout, False):
            self._event.wait()

    def clear(self) -> None:
        if self._event.ready():
            self._event = eventlet.event.Event()


class StoreClient:
    """Owns one IDL connection to the store in a green thread.

    ``ssl``: the files for ``ssl:`` members (default: ``[dynprov] ovsdb_ssl_*``
    of the Ryu process); raises ovsdb_ssl.SslConfigError if they are missing.
    """

    def __init__(self, remote: str, on_changes: Callable[[List[RowChange]], None],
                 tables: Sequence[str] = TABLES, conditions: Optional[Dict[str, list]] = None,
                 logger: Optional[logging.Logger] = None, leader_only: bool = False,
                 min_backoff_ms: int = 100, max_backoff_ms: int = 1000,
                 write_timeout: float = 30.0, slice_rows: int = 100,
                 on_synced: Optional[Callable[[], None]] = None,
                 poll_interval: float = 0.1,
                 ssl: Optional[ovsdb_ssl.SslFiles] = None) -> None:
        ovsdb_ssl.configure(remote, ssl, "store")
        self.remote = remote
        self.logger = logger or logging.getLogger("dynprov.store")
        self.write_timeout = write_timeout
        self._on_changes, self._on_synced = on_changes, on_synced
        self._slice_rows = slice_rows
        self.idl = ReplicaIdl(remote, schema_helper(tables), leader_only, slice_rows)
        reconnect = self.idl._session.reconnect  # no public accessor for the back-off
        reconnect.min_backoff, reconnect.max_backoff = min_backoff_ms, max_backoff_ms
        for table, condition in (conditions or {}).items():
            self.idl.cond_change(table, condition)
        self._queue: Deque[PendingWrite] = deque()
        self._retry_at = 0.0
        self._in_flight: Optional[tuple] = None  # (txn, [pending writes in it])
        self._conditions: Deque[tuple] = deque()
        self.poll_interval = poll_interval
        self._wakeup = _Wakeup()
        self._stepped = _Wakeup()
        self._thread = None
        self._running = False
        self.synced = eventlet.event.Event()
        self._was_connected = False
        #: Reconnections after a lost connection (failovers), for the metrics.
        self.reconnections = 0

    # -- the public side -------------------------------------------------------
    def start(self) -> "StoreClient":
        """Connect and run the client's green threads (the loop, the socket watcher)."""
        if self._thread is None:
            self._running = True
            self._thread = eventlet.spawn(self._loop)
            self._watcher = eventlet.spawn(self._watch_socket)
        return self

    def stop(self) -> None:
        """Stop the green threads and close the connection (queued writes are dropped)."""
        self._running = False
        thread, self._thread = self._thread, None
        if thread is not None and thread is not eventlet.getcurrent():
            thread.kill()
            self._watcher.kill()
        self.idl.close()

    def submit(self, write: Write, on_done: Optional[Callable[[WriteResult], None]] = None,
               timeout: Optional[float] = None) -> WriteFuture:
        """Queue a write; ``on_done(result)`` runs in the client's thread when it ends."""
        deadline = time.monotonic() + (timeout or self.write_timeout)
        pending = PendingWrite(write, on_done, deadline, submitted=time.monotonic())
        self._queue.append(pending)
        self._wake()
        return WriteFuture(pending)

    def set_condition(self, table: str, condition: list) -> None:
        """Change which rows of ``table`` this client replicates (OVSDB condition)."""
        self._conditions.append((table, condition))
        self._wake()

    def queued(self) -> List[PendingWrite]:
        """Writes queued or in flight, not yet committed."""
        flying = list(self._in_flight[1]) if self._in_flight is not None else []
        return flying + list(self._queue)

    def oldest_queued_age(self) -> float:
        """Seconds the oldest write not yet committed has waited (0.0 if none)."""
        waiting = [p.submitted for p in self.queued()]
        return max(0.0, time.monotonic() - min(waiting)) if waiting else 0.0

    def connected(self) -> bool:
        """Whether the client is connected and replicating (writes can be committed)."""
        return self.idl._session.is_connected() and \
            self.idl.state == self.idl.IDL_S_MONITORING

    # -- the loop ---------------------------------------------------------------
    def _wake(self) -> None:
        self._wakeup.set()

    def _loop(self) -> None:
        while self._running:
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the client must survive anything
                self.logger.exception("store %s: client error; reconnecting", self.remote)
                self._abandon_in_flight("client error")
                self.idl.force_reconnect()
                eventlet.sleep(0.1)
                continue
            self._wait()

    def _step(self) -> None:
        while self._conditions:
            self.idl.cond_change(*self._conditions.popleft())
        self.idl.run()
        self._note_connection()
        changes, self.idl.changes = self.idl.changes, []
        if changes:
            self._deliver(changes)
        if not self.synced.ready() and self.connected():
            self.synced.send(True)
            if self._on_synced is not None:
                self._on_synced()
        self._progress_in_flight()
        if self._in_flight is None:
            self._start_batch()

    def _note_connection(self) -> None:
        connected = self.connected()
        if connected != self._was_connected:
            self._was_connected = connected
            if connected and self.synced.ready():
                self.reconnections += 1
            self.logger.info("store %s: %s %s", self.remote,
                             "connected to" if connected else "disconnected from",
                             self.idl._session.get_name())

    def _deliver(self, changes: List[RowChange]) -> None:
        for start in range(0, len(changes), self._slice_rows):
            try:
                self._on_changes(changes[start:start + self._slice_rows])
            except Exception:  # noqa: BLE001 - a bad handler must not stop the client
                self.logger.exception("store %s: change handler failed", self.remote)
            if start + self._slice_rows < len(changes):
                eventlet.sleep(0)

    def _progress_in_flight(self) -> None:
        if self._in_flight is None:
            return
        txn, batch = self._in_flight
        status = txn.commit()
        if status == Transaction.INCOMPLETE:
            return
        self._in_flight = None
        if status in _DONE:
            now = time.time()
            for pending in batch:
                self._finish(pending, WriteResult(True, pending.value, pending.attempts,
                                                  committed_at=now))
            return
        error = txn.get_error()
        self._retry(batch, f"{status}: {error}" if status != error else status)

    def _retry(self, batch: List[PendingWrite], error: str) -> None:
        """Put a failed batch back at the head of the queue, to be re-run later."""
        now = time.monotonic()
        for pending in reversed(batch):
            pending.last_error = error
            if now > pending.deadline:
                self._finish(pending, WriteResult(False, None, pending.attempts, error))
            else:
                self._queue.appendleft(pending)
        # Back off: never re-run in this iteration (a failover can answer at once).
        attempts = max((p.attempts for p in batch), default=1)
        self._retry_at = now + min(0.02 * (2 ** min(attempts - 1, 5)), 0.5)

    def _start_batch(self) -> None:
        if not self._queue or not self.connected() or time.monotonic() < self._retry_at:
            return
        batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
        txn = Transaction(self.idl)
        kept: List[PendingWrite] = []
        for pending in batch:
            pending.attempts += 1
            try:
                pending.value = pending.write(self.idl, txn)
            except Exception as error:  # noqa: BLE001 - the caller learns why
                self._finish(pending, WriteResult(False, None, pending.attempts,
                                                  f"{type(error).__name__}: {error}"))
                continue
            kept.append(pending)
        if not kept:
            txn.abort()
            return
        self._in_flight = (txn, kept)
        self._progress_in_flight()

    def _abandon_in_flight(self, why: str) -> None:
        if self._in_flight is not None:
            txn, batch = self._in_flight
            self._in_flight = None
            try:
                txn.abort()
            except Exception:  # noqa: BLE001
                pass
            self._retry(batch, why)

    def _finish(self, pending: PendingWrite, result: WriteResult) -> None:
        if not result.ok:
            self.logger.error("store %s: write failed after %d attempts: %s", self.remote,
                              result.attempts, result.error)
        if pending.on_done is not None:
            try:
                pending.on_done(result)
            except Exception:  # noqa: BLE001
                self.logger.exception("store %s: write callback failed", self.remote)
        pending.event.send(result)

    def _wait(self) -> None:
        """Sleep until the server sent something, a write is queued, or a timer runs out.

        The socket watcher (:meth:`_watch_socket`) and :meth:`submit` set the
        wake-up flag; ``poll_interval`` bounds the sleep (reconnection timers,
        and a safety net should a wake-up be missed).
        """
        if self._queue and self._in_flight is None and self.connected():
            timeout = max(0.0, self._retry_at - time.monotonic())
        else:
            timeout = self.poll_interval if self.connected() else RECONNECT_POLL
        if timeout <= 0:
            eventlet.sleep(0)
        else:
            self._wakeup.wait(timeout)
        self._wakeup.clear()
        self._stepped.set()

    def _watch_socket(self) -> None:
        """Wake the loop when the IDL's socket is readable.

        One green thread waits on the socket with ``trampoline`` (the IDL itself
        only ever does non-blocking reads, so there is a single reader). A
        socket the IDL closes meanwhile ends the wait with an error or at the
        timeout; the next round waits on the new one. After each wake-up it
        waits until the loop has run, so unread data cannot make it spin.
        """
        while self._running:
            sock = self._socket()
            if sock is None:
                eventlet.sleep(RECONNECT_POLL)
                continue
            # An IDL run handles at most 50 messages: over SSL the rest may already be
            # decrypted inside the SSL object, and the socket would not signal them.
            if _tls_pending(sock):
                self._stepped.clear()
                self._wake()
                self._stepped.wait(SOCKET_WAIT)
                continue
            try:
                trampoline(sock, read=True, timeout=SOCKET_WAIT)
            except eventlet.Timeout:
                continue
            except (OSError, ValueError, IOClosed):
                eventlet.sleep(RECONNECT_POLL)
                continue
            self._stepped.clear()
            self._wake()
            self._stepped.wait(SOCKET_WAIT)

    def _socket(self):
        rpc = self.idl._session.rpc
        stream = getattr(rpc, "stream", None) if rpc is not None else None
        sock = getattr(stream, "socket", None)
        if sock is None or sock.fileno() < 0:
            return None
        return sock


def _tls_pending(sock) -> bool:
    """Whether an SSL socket holds decrypted bytes not read yet (False for plain sockets)."""
    pending = getattr(sock, "pending", None)
    try:
        return bool(pending and pending() > 0)
    except (OSError, ValueError):
        return False
