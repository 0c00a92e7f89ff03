"""One controller process in step with the shared store (I/O only).

:class:`StoreSync` sits beside the Ryu app (``[dynprov] store = ...``):

- **Library**: the ``Library``/``Template`` rows of every domain are this
  process's library; a change is validated again, put in force with
  ``engine.set_library`` (VMs re-provisioned in place) and acknowledged in the
  process's ``Process`` row (``library_generation``), the way OVN's chassis
  acknowledge ``nb_cfg``.
- **Bindings and hand-offs**: decided by the pure reducer
  :mod:`ryu_apps.core.handoff`. This module turns the IDL's ``Binding`` row
  changes, the results of writes and the engine's bindings into its inputs,
  carries its write intents out with the store client
  (:func:`ryu_apps.store.writes.write_of`) and hands its engine commands
  (:func:`ryu_apps.core.handoff_engine.run_command`) to the app as plans. The
  engine's bindings are read when the app says they changed
  (:meth:`StoreSync.bindings_changed`, after a plan), when the reducer asks for
  time (the warm-start grace), and once every ``AUDIT_INTERVAL`` seconds.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Set, Tuple

import eventlet
import eventlet.event
import ovs.db.idl

from ryu_apps.core import handoff
from ryu_apps.core.handoff_engine import EngineViewer, run_command
from ryu_apps.core.handoff_values import (
    BindingsChanged,
    Command,
    Expecting,
    HandOffAsked,
    Input,
    Note,
    RequestOwner,
    RowChanged,
    Step,
    Write,
    WriteDone,
)
from ryu_apps.core.notification_errors import NotApplicable
from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.store.client import StoreClient
from ryu_apps.store.library_rows import LibraryRows, library_from_rows
from ryu_apps.store.pending_writes import WriteFuture, WriteResult
from ryu_apps.store.replica import RowChange
from ryu_apps.store.schema import BINDING, DEPLOYMENT, LIBRARY, PROCESS, TEMPLATE
from ryu_apps.store.writes import (
    binding_row,
    report_process,
    share_topology_secret,
    stored_rows,
    write_of,
)

#: Longest seconds between two readings of the engine's bindings (a safety net: the
#: app says when they changed).
AUDIT_INTERVAL = 1.0
SYNC_TIMEOUT = 15.0
#: Seconds a migration notice waits for its hand-off to be committed in the store.
HAND_OFF_TIMEOUT = 10.0


class StoreSync:
    """Keeps one controller process's library and bindings in the store."""

    def __init__(self, app, remote: str, process_name: str, logger,
                 reconcile_grace: float = 5.0) -> None:
        self.app = app
        self.engine = app.engine
        self.name = process_name
        self.logger = logger
        self.started = time.time()
        self.library_generation = 0
        self.state = handoff.start(process_name, reconcile_grace, self.started)
        self.client = StoreClient(remote, self._on_changes, logger=logger, conditions={
            BINDING: self._binding_condition(), PROCESS: [True], DEPLOYMENT: [True]})
        self._threads: List[eventlet.greenthread.GreenThread] = []
        self._kicked = eventlet.event.Event()   # the engine's bindings changed
        self._wake_at: Optional[float] = None
        self._viewer = EngineViewer()
        #: Runs engine work (the reducer's commands, libraries); at once by default. An app whose
        #: engine is changed by one thread only replaces it with a post to its loop.
        self.in_loop: Callable[[Callable[[], None]], None] = lambda work: work()

    def _binding_condition(self) -> list:
        """Rows we own, rows handed to us, and rows of VMs we are taking over."""
        return ([["owner", "==", self.name], ["requested_owner", "includes", self.name]]
                + [["mac", "==", mac] for mac in sorted(self.state.taking)])

    # -- start -------------------------------------------------------------------
    def start(self) -> None:
        """Connect, wait for the first snapshot, put the store's library in force."""
        self.client.start()
        if not _wait(self.client.synced, SYNC_TIMEOUT):
            raise SystemExit(f"dynprov: cannot start: store {self.client.remote} not "
                             f"reachable after {SYNC_TIMEOUT:.0f} s")
        self._apply_libraries(set(self._domains()) or {""})
        self.client.submit(report_process(self.name, self.library_generation,
                                          started=self.started))
        self._threads = [eventlet.spawn(self._publish_loop)]
        ours = sum(1 for mac in self.state.rows if self.state.ours(mac))
        self.logger.info("store %s: process %s, library generation %d, %d bindings of "
                         "ours in the store", self.client.remote, self.name,
                         self.library_generation, ours)

    def stop(self) -> None:
        for thread in self._threads:
            thread.kill()
        self.client.stop()

    def topology_secret(self, candidate: bytes, timeout: float = SYNC_TIMEOUT) -> bytes:
        """The deployment's LLDP signing secret, shared by every process through the
        store (``candidate`` becomes it if the store has none yet)."""
        result = self.client.submit(share_topology_secret(candidate.hex())).wait(timeout)
        if result is None or not result.ok:
            raise SystemExit(f"dynprov: cannot start: store {self.client.remote}: the "
                             "topology secret could not be read or written "
                             f"({result.error if result else 'timeout'})")
        return bytes.fromhex(str(result.value))

    def is_registered(self, process: str) -> bool:
        """Whether ``process`` is a controller process registered in the store (not us)."""
        if process == self.name:
            return False
        return any(row.name == process
                   for row in self.client.idl.tables[PROCESS].rows.values())

    def library_in_force(self) -> dict:
        """Where this process's library comes from: the store, this process, its generation."""
        return {"store": self.client.remote, "process": self.name,
                "library_generation": self.library_generation}

    # -- the reducer: inputs in, writes and engine commands out ----------------------------
    def _feed(self, event: Input,
              now: Optional[float] = None) -> Tuple[Step, Dict[Write, WriteFuture]]:
        """Apply one input; carry out what the reducer decided; it, and the writes
        submitted."""
        now = time.time() if now is None else now
        step = handoff.reduce(self.state, event, now)
        return step, self._carry_out(step, now)

    def _carry_out(self, step: Step, now: float) -> Dict[Write, WriteFuture]:
        self._log(step.notes)
        self._wake_at = step.wake_at
        if step.watch is not None:
            self.client.set_condition(BINDING, self._binding_condition())
        if step.commands:
            commands = list(step.commands)
            self.in_loop(lambda: self._run_all(commands, now))
        return {write: self._submit(write) for write in step.writes}

    def _submit(self, write: Write) -> WriteFuture:
        def done(result: WriteResult) -> None:
            self._feed(WriteDone(write, result.ok, result.value, result.error))
        return self.client.submit(write_of(write, self.name), on_done=done)

    def _run_all(self, commands: List[Command], now: float) -> None:
        """Run the reducer's engine commands, send their plans, publish again."""
        for command in commands:
            plans, notes = run_command(self.engine, command, now)
            self._log(notes)
            for plan in plans:
                self.app.send_plan(plan)
        self.kick()   # the engine changed: read its bindings again

    def _log(self, notes: List[Note]) -> None:
        for note in notes:
            (self.logger.warning if note.level == "warning" else self.logger.info)(note.text)

    # -- changes from the store -----------------------------------------------------
    def _on_changes(self, changes: List[RowChange]) -> None:
        domains: Set[str] = set()
        for change in changes:
            if change.table in (LIBRARY, TEMPLATE):
                domains.add(str(change.values.get("domain") or ""))
            elif change.table == BINDING:
                mac = str(change.values.get("mac"))
                deleted = change.event == ovs.db.idl.ROW_DELETE
                self._feed(RowChanged(mac, None if deleted else binding_row(change.values)))
        if domains and self.client.synced.ready():
            self._apply_libraries(domains)

    def _domains(self) -> Set[str]:
        return {row.domain for row in self.client.idl.tables[LIBRARY].rows.values()}

    def _apply_libraries(self, domains: Set[str]) -> None:
        """Read and validate the store's library of each domain (main domain: ``""``);
        put those the validator accepts in force."""
        idl = self.client.idl
        libraries = []
        for domain in sorted(domains):
            rows: Optional[LibraryRows] = stored_rows(idl, domain)
            if rows is None:
                continue
            try:
                library = library_from_rows(rows, origin=f"store {self.client.remote}")
            except TemplateValidationError as error:
                self.logger.error("store library of domain %r refused, previous library "
                                  "stays:\n%s", domain or "main", error)
                continue
            generation = next(row.generation for row in idl.tables[LIBRARY].rows.values()
                              if row.domain == domain)
            libraries.append((domain, library, generation))
        self.in_loop(lambda: self._put_libraries(libraries))

    def _put_libraries(self, libraries: List[Tuple[str, TemplateLibrary, int]]) -> None:
        """Engine work: the libraries in force (VMs re-provisioned in place), acknowledged
        in our ``Process`` row."""
        for domain, library, generation in libraries:
            plan = self.engine.set_library(library, domain=domain or None)
            if domain == "":
                self.library_generation = generation
            self.logger.info("store library generation %d of domain %s in force: %d "
                             "templates, %d flow changes", generation, domain or "main",
                             len(library), plan.flow_count())
            self.app.send_plan(plan)
        self.client.submit(report_process(self.name, self.library_generation))

    # -- what the app tells -----------------------------------------------------------
    def accepts_attachment(self, dpid: int, mac: str) -> bool:
        """Whether an OVSDB attachment is for this process.

        An attachment on a switch this process does not manage, of a VM it
        holds, is the VM arriving at another process's server: that process
        provisions it; here it must not look like a local pre-provisioning.
        """
        return dpid in self.engine.fabric.switches or mac.lower() not in self.engine.bindings

    def expecting(self, mac: str, dpid: int, port: int) -> None:
        """A VM unknown here is expected on one of our servers (its port appeared with
        its link down): if another process owns it, ask for it on its binding, so the
        owner delivers its frames toward the shared fabric before the VM moves.

        The row is outside our condition: the MAC is added to it, and the request
        is written when the row arrives (a new VM has none: nothing is written).
        """
        info = self.engine.fabric.switches.get(dpid)
        self._feed(Expecting(mac.lower(), info.name if info else f"{dpid:016x}", port))

    def manages_server(self, server: str) -> bool:
        return any(server in (info.name, f"{dpid:016x}", f"{dpid:x}", str(dpid))
                   for dpid, info in self.engine.fabric.switches.items())

    def hand_off(self, mac: str, server: str) -> str:
        """A migration to a server of another process: name it on the binding.

        Raises NotificationError when the server or the VM is unknown, or the
        store did not record the hand-off.
        """
        destination = self._process_of_server(server)
        submitted = time.time()
        step, futures = self._feed(HandOffAsked(mac.lower(), server, destination), submitted)
        if step.refused is not None:
            raise step.refused
        if step.answer is not None:
            return step.answer
        future = next(f for w, f in futures.items() if isinstance(w, RequestOwner))
        result = future.wait(HAND_OFF_TIMEOUT)
        if result is None or not result.ok or result.value is not True:
            raise NotApplicable(f"VM {mac}: hand-off to {destination} not recorded: "
                                f"{result.error if result else 'store timeout'}")
        self.logger.info("store: VM %s handed over to process %s (server %s): request "
                         "committed in %.2f ms (submitted at %.6f)", mac.lower(),
                         destination, server, (result.committed_at - submitted) * 1000,
                         submitted)
        return f"process {destination} asked to pre-provision {server} (through the store)"

    def _process_of_server(self, server: str) -> Optional[str]:
        for row in self.client.idl.tables[PROCESS].rows.values():
            if row.name != self.name and server in row.devices:
                return row.name
        return None

    # -- reading the engine's bindings ----------------------------------------------------
    def bindings_changed(self) -> None:
        """The engine's bindings may have changed (the app sent a plan): publish them
        soon, off the packet path (a VM provisioned or activated is claimed at once,
        so a source process that hands it over learns it at once)."""
        if not self._kicked.ready():
            self._kicked.send()

    #: The name the app calls today (after a plan that provisioned VMs).
    kick = bindings_changed

    def _publish_loop(self) -> None:
        while True:
            try:
                self._feed(BindingsChanged(self._viewer.view(self.engine, self.app.ports)))
            except Exception:  # noqa: BLE001 - keep publishing
                self.logger.exception("store: publishing bindings failed")
            wait = AUDIT_INTERVAL
            if self._wake_at is not None:
                wait = max(0.01, min(wait, self._wake_at - time.time()))
            with eventlet.Timeout(wait, False):
                self._kicked.wait()
            self._kicked = eventlet.event.Event()


def _wait(event, timeout: float) -> bool:
    with eventlet.Timeout(timeout, False):
        event.wait()
        return True
    return False
