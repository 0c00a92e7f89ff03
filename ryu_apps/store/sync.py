"""One controller process in step with the shared store.

:class:`StoreSync` sits beside the Ryu app (``[dynprov] store = ...``):

- **Library**: the ``Library``/``Template`` rows of every domain are this
  process's library; a change is validated again, put in force with
  ``engine.set_library`` (VMs re-provisioned in place) and acknowledged in the
  process's ``Process`` row (``library_generation``), the way OVN's chassis
  acknowledge ``nb_cfg``.
- **Bindings**: the process claims a ``Binding`` row for every VM it provisions
  and releases it when the VM goes (published from ``engine.bindings`` by a
  green thread, off the packet path). It monitors only rows it owns or that
  name it as ``requested_owner`` (conditional monitoring).
- **Hand-offs**: a migration notice for a server this process does not manage
  becomes a ``requested_owner`` write; the destination process sees it and
  provisions the VM's port if its server's OVSDB already lists it; the
  destination's claim takes the row over. The source, seeing its row claimed,
  keeps the VM's flows while its old port is still up and deprovisions once the
  port is gone (or at once if it already is).
- **Restart**: the process reads its rows back; after the reconcile grace
  period, rows for VMs the switches did not give back are released, VMs given
  back without a row are claimed.
"""

from __future__ import annotations

import time
from typing import Dict, Optional, Set

import eventlet
import eventlet.event
import ovs.db.idl

from ryu_apps.core.binding import Binding, Detection, VmState
from ryu_apps.core.lifecycle import Notice, NotificationError
from ryu_apps.core.notification_errors import NotApplicable, UnknownServer, UnknownVm
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.store.client import RowChange, StoreClient
from ryu_apps.store.library_rows import LibraryRows, library_from_rows
from ryu_apps.store.schema import BINDING, DEPLOYMENT, LIBRARY, PROCESS, TEMPLATE
from ryu_apps.store.writes import (
    BindingRecord,
    adopt_binding,
    claim_binding,
    find,
    release_binding,
    report_process,
    request_from_owner,
    request_owner,
    share_topology_secret,
    stored_rows,
    withdraw_request,
)

#: Seconds between two comparisons of the engine's bindings with the store's.
PUBLISH_INTERVAL = 0.1
SYNC_TIMEOUT = 15.0

_STATES = {VmState.PRE_PROVISIONED: "pre-provisioned", VmState.MIGRATING_OUT: "migrating",
           VmState.SUSPENDED: "suspended", VmState.RESTARTING: "suspended"}


def binding_record(engine, binding: Binding) -> BindingRecord:
    """What the store holds about a binding of this engine."""
    domain = engine.domain_of_server(binding.dpid)
    info = engine.fabric.switches.get(binding.dpid)
    return BindingRecord(binding.mac, binding.template_id,
                         "" if domain is None or domain.templates is None else domain.name,
                         info.name if info else f"{binding.dpid:016x}", binding.port,
                         binding.ip, _STATES.get(binding.state, "active"))


#: Seconds after start beyond which reconciliation stops waiting for servers.
RECONCILE_DEADLINE = 60.0


class StoreSync:
    """Keeps one controller process's library and bindings in the store."""

    def __init__(self, app, remote: str, process_name: str, logger,
                 reconcile_grace: float = 5.0) -> None:
        self.app = app
        self.engine = app.engine
        self.name = process_name
        self.logger = logger
        self.reconcile_grace = reconcile_grace
        self.started = time.time()
        self.library_generation = 0
        self._published: Dict[str, Binding] = {}   # mac -> binding this process claimed
        self._stored: Dict[str, dict] = {}         # mac -> our rows as the store has them
        self._ceded: Dict[str, int] = {}           # mac -> binding id another process claimed
        self._releasing: Set[str] = set()
        self._reconciled = False
        self._taking: Set[str] = set()             # macs we claim and may not see yet
        self._expected: Dict[str, tuple] = {}      # mac -> (server, port) to ask its owner for
        self._awaiting: Set[str] = set()           # handed to us, pre-provisioned, not here yet
        self._handing: Set[str] = set()            # ours, named for another process
        self.client = StoreClient(remote, self._on_changes, logger=logger, conditions={
            BINDING: self._binding_condition(), PROCESS: [True], DEPLOYMENT: [True]})
        self._threads = []
        self._kicked = eventlet.event.Event()   # a VM was provisioned: publish now

    def _binding_condition(self) -> list:
        """Rows we own, rows handed to us, and rows of VMs we are taking over."""
        return ([["owner", "==", self.name], ["requested_owner", "includes", self.name]]
                + [["mac", "==", mac] for mac in sorted(self._taking)])

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
        self.logger.info("store %s: process %s, library generation %d, %d bindings of "
                         "ours in the store", self.client.remote, self.name,
                         self.library_generation, len(self._stored))

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

    # -- changes from the store -----------------------------------------------------
    def _on_changes(self, changes) -> None:
        domains: Set[str] = set()
        for change in changes:
            if change.table in (LIBRARY, TEMPLATE):
                domains.add(change.values.get("domain") or "")
            elif change.table == BINDING:
                self._binding_changed(change)
        if domains and self.client.synced.ready():
            self._apply_libraries(domains)

    def _domains(self):
        return {row.domain for row in self.client.idl.tables[LIBRARY].rows.values()}

    def _apply_libraries(self, domains: Set[str]) -> None:
        """Put the store's library of each domain in force (main domain: ``""``)."""
        idl = self.client.idl
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
            plan = self.engine.set_library(library, domain=domain or None)
            generation = next(row.generation for row in idl.tables[LIBRARY].rows.values()
                              if row.domain == domain)
            if domain == "":
                self.library_generation = generation
            self.logger.info("store library generation %d of domain %s in force: %d "
                             "templates, %d flow changes", generation, domain or "main",
                             len(library), plan.flow_count())
            self.app.send_plan(plan)
        self.client.submit(report_process(self.name, self.library_generation))

    def _binding_changed(self, change: RowChange) -> None:
        values, mac = change.values, change.values.get("mac")
        if change.event == ovs.db.idl.ROW_DELETE:
            was_ours = self._stored.pop(mac, None) is not None
            if mac in self._releasing:
                self._releasing.discard(mac)
            elif was_ours and mac in self._published and mac not in self._taking:
                self._claimed_elsewhere(mac)
            return
        if values["owner"] == self.name:
            self._stored[mac] = values
        elif self._stored.pop(mac, None) is not None and mac in self._published:
            self._claimed_elsewhere(mac)  # it was ours; another process took it
        if mac in self._expected:
            self._ask_owner(mac, values["owner"], [values["requested_owner"]]
                            if values.get("requested_owner") else [])
        if values.get("requested_owner") == self.name and values["owner"] != self.name:
            self._hand_off_to_us(values)
        elif values["owner"] == self.name and values.get("requested_owner") \
                and mac in self._published:
            # another process asked for our VM (its port appeared there)
            self._handing.add(mac)
            self.app.send_plan(self.engine.handing_over(mac))
        elif values["owner"] == self.name and mac in self._handing:
            self._handing.discard(mac)   # the request was withdrawn: the VM stays here
            self.logger.info("store: hand-off of VM %s withdrawn by its destination", mac)
            self.app.send_plan(self.engine.stop_handing_over(mac))

    def _claimed_elsewhere(self, mac: str) -> None:
        """Another process claimed a VM of ours: clean up once its port here is gone."""
        binding = self._published.pop(mac)
        self._ceded[mac] = binding.binding_id
        self._handing.discard(mac)
        self.logger.info("store: VM %s claimed by another process; released here once "
                         "its port is gone", mac)
        self.app.send_plan(self.engine.handing_over(mac))

    def _hand_off_to_us(self, values: dict) -> None:
        """A source process names us as the VM's next owner: pre-provision it."""
        mac, server = values["mac"], values.get("requested_server")
        received = time.time()
        self.app.send_plan(self.engine.expect_ip(mac, values.get("ip") or None))
        try:
            ack = self.engine.notify(Notice.STARTED, mac, server, now=time.time())
        except NotificationError as error:
            self.logger.warning("store: hand-off of VM %s to server %s: %s", mac, server,
                                error)
            return
        self.logger.info("store: hand-off of VM %s to server %s: %s (received at %.6f)", mac,
                         server, ack.message, received)
        self.app.send_plan(ack.plan)
        if mac.lower() in self.engine.incoming:
            self._awaiting.add(mac.lower())

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
        mac = mac.lower()
        info = self.engine.fabric.switches.get(dpid)
        self._expected[mac] = (info.name if info else f"{dpid:016x}", port)
        if mac not in self._taking:
            self._taking.add(mac)
            self.client.set_condition(BINDING, self._binding_condition())
        row = find(self.client.idl, BINDING, mac=mac)
        if row is not None:
            self._ask_owner(mac, row.owner, list(row.requested_owner))

    def _ask_owner(self, mac: str, owner: str, requested: list) -> None:
        if owner == self.name or mac not in self._expected or requested == [self.name]:
            return
        server, port = self._expected.pop(mac)
        self.logger.info("store: VM %s expected on %s port %d: asking its owner %s for it",
                         mac, server, port, owner)

        def done(result) -> None:   # the row names us now: our condition covers it
            if mac in self._taking and mac not in self._published:
                self._taking.discard(mac)
                self.client.set_condition(BINDING, self._binding_condition())

        self.client.submit(request_from_owner(mac, self.name, server, port), on_done=done)
        self._awaiting.add(mac)

    # -- hand-offs we start -----------------------------------------------------------
    def manages_server(self, server: str) -> bool:
        return any(server in (info.name, f"{dpid:016x}", f"{dpid:x}", str(dpid))
                   for dpid, info in self.engine.fabric.switches.items())

    def hand_off(self, mac: str, server: str) -> str:
        """A migration to a server of another process: name it on the binding."""
        mac = mac.lower()
        destination = self._process_of_server(server)
        if destination is None:
            raise UnknownServer(f"unknown server {server!r}: neither this process nor "
                                    "any process in the store manages it")
        binding = self._published.get(mac)
        if binding is None and mac in self._ceded:
            return ("already taken over by another process (it saw the VM's port on its "
                    "server); this side is released once the VM's old port is gone")
        if binding is None:
            raise UnknownVm(f"unknown VM {mac}: this process holds no binding of it")
        submitted = time.time()
        result = self.client.submit(request_owner(mac, self.name, destination, server,
                                                  0)).wait(10)
        if result is None or not result.ok or result.value is not True:
            raise NotApplicable(f"VM {mac}: hand-off to {destination} not recorded: "
                                    f"{result.error if result else 'store timeout'}")
        self.logger.info("store: VM %s handed over to process %s (server %s): request "
                         "committed in %.2f ms (submitted at %.6f)", mac, destination, server,
                         (result.committed_at - submitted) * 1000, submitted)
        self._handing.add(mac)
        self.app.send_plan(self.engine.handing_over(mac))
        return f"process {destination} asked to pre-provision {server} (through the store)"

    def _process_of_server(self, server: str) -> Optional[str]:
        for row in self.client.idl.tables[PROCESS].rows.values():
            if row.name != self.name and server in row.devices:
                return row.name
        return None

    # -- publishing our bindings ---------------------------------------------------------
    def kick(self) -> None:
        """A VM was provisioned or activated: publish (claim) without waiting for the
        next tick, so a source process that hands it over learns it at once."""
        if not self._kicked.ready():
            self._kicked.send()

    def _publish_loop(self) -> None:
        while True:
            with eventlet.Timeout(PUBLISH_INTERVAL, False):
                self._kicked.wait()
            self._kicked = eventlet.event.Event()
            try:
                self._publish()
            except Exception:  # noqa: BLE001 - keep publishing
                self.logger.exception("store: publishing bindings failed")

    def _withdraw_abandoned(self) -> None:
        """Hand-offs to us whose VM never arrived (its pre-provisioned port is gone):
        clear the request, so the owner stops handing the VM over."""
        for mac in list(self._awaiting):
            if mac in self.engine.bindings:
                self._awaiting.discard(mac)   # arrived: our claim ends the hand-off
            elif mac not in self.engine.incoming:
                self._awaiting.discard(mac)
                self.logger.info("store: VM %s did not arrive here; hand-off withdrawn", mac)
                self.client.submit(withdraw_request(mac, self.name))

    def _publish(self) -> None:
        self._withdraw_abandoned()
        engine = self.engine
        current = engine.bindings
        for mac, binding in list(current.items()):
            if self._ceded.get(mac) == binding.binding_id:
                continue
            if self._published.get(mac) is binding:
                continue
            if binding.detected_by is Detection.RESTORED and mac not in self._stored \
                    and mac not in self._published:
                if self._reconciled:
                    self._adopt(mac, binding)
                continue  # read back from a switch: ours only if the store agrees
            self._published[mac] = binding
            self._ceded.pop(mac, None)
            self._expected.pop(mac, None)
            self._claim(mac, binding_record(engine, binding))
        for mac in [m for m in self._published if m not in current]:
            del self._published[mac]
            self._releasing.add(mac)
            self.client.submit(release_binding(mac, self.name))
        self._finish_ceded(current)
        self._report_devices()
        if not self._reconciled and self._ready_to_reconcile(time.time()):
            self._reconcile(current)

    def _ready_to_reconcile(self, now: float) -> bool:
        """After the grace, once every server our rows name has given its flows back.

        A slow switch must not make its VMs look gone (their rows would be
        released); after RECONCILE_DEADLINE the missing switches count as gone.
        """
        if now <= self.started + self.reconcile_grace:
            return False
        back = {info.name for info in self.engine.fabric.switches.values()}
        waiting = {row.get("server") for row in self._stored.values()} - back
        if waiting and now <= self.started + RECONCILE_DEADLINE:
            return False
        if waiting:
            self.logger.warning("store reconcile: servers %s did not come back within %g s; "
                                "their VMs' rows are released", sorted(waiting),
                                RECONCILE_DEADLINE)
        return True

    def _claim(self, mac: str, record: BindingRecord) -> None:
        """Claim a VM's row; one we do not own yet is fetched first (conditional monitoring).

        A row owned by another process is outside this process's condition: the
        insert would collide with it on the unique MAC index, so the MAC is added
        to the condition and the claim, retried, takes the row over.
        """
        if mac not in self._stored and mac not in self._taking:
            self._taking.add(mac)
            self.client.set_condition(BINDING, self._binding_condition())

        def done(result) -> None:
            if mac in self._taking:
                self._taking.discard(mac)
                self.client.set_condition(BINDING, self._binding_condition())

        self.client.submit(claim_binding(record, self.name), on_done=done)

    def _adopt(self, mac: str, binding: Binding) -> None:
        """A VM the switches gave back that the store does not list as ours.

        Claimed if nobody owns it (we crashed before publishing it);
        deprovisioned here if another process took it over while we were away.
        """
        self._published[mac] = binding
        if mac not in self._taking:
            self._taking.add(mac)
            self.client.set_condition(BINDING, self._binding_condition())

        def done(result) -> None:
            self._taking.discard(mac)
            self.client.set_condition(BINDING, self._binding_condition())
            if result.ok and result.value is False:
                self._published.pop(mac, None)
                current = self.engine.bindings.get(mac)
                if current is not None and current.binding_id == binding.binding_id:
                    self.logger.info("store reconcile: VM %s is another process's now; "
                                     "deprovisioned here", mac)
                    self.app.send_plan(engine_shutdown(self.engine, mac))

        self.client.submit(adopt_binding(binding_record(self.engine, binding), self.name),
                           on_done=done)

    def _finish_ceded(self, current: Dict[str, Binding]) -> None:
        for mac, binding_id in list(self._ceded.items()):
            binding = current.get(mac)
            if binding is None or binding.binding_id != binding_id:
                del self._ceded[mac]
                continue
            if binding.port in self.app.ports.get(binding.dpid, ()):
                continue  # the VM may still be here (make before break)
            try:
                self.app.send_plan(engine_shutdown(self.engine, mac))
            finally:
                del self._ceded[mac]

    def _reconcile(self, current: Dict[str, Binding]) -> None:
        """After a restart: release our rows for VMs the switches did not give back."""
        self._reconciled = True
        stale = [mac for mac in self._stored if mac not in current]
        for mac in stale:
            self._releasing.add(mac)
            self.client.submit(release_binding(mac, self.name))
        unlisted = [mac for mac, b in current.items()
                    if b.detected_by is Detection.RESTORED and mac not in self._stored]
        self.logger.info("store reconcile: %d bindings restored, %d stale rows released, "
                         "%d restored VMs not listed as ours checked", len(current),
                         len(stale), len(unlisted))

    def _report_devices(self) -> None:
        names = sorted(info.name for info in self.engine.fabric.switches.values())
        if names != getattr(self, "_reported_devices", None):
            self._reported_devices = names
            self.client.submit(report_process(self.name, devices=names))


def engine_shutdown(engine, mac: str):
    """The plan that deprovisions a VM another process took over."""
    return engine.notify(Notice.SHUTDOWN, mac, now=time.time()).plan


def _wait(event, timeout: float) -> bool:
    with eventlet.Timeout(timeout, False):
        event.wait()
        return True
    return False

