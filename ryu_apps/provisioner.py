"""The dynprov Ryu app (``ryu-manager ryu_apps.provisioner``; options: ryu_apps.app.options).

Each handler turns an event into a call on the pure engine and sends the plan
it returns. One closed loop: the engine changes only in this app's event loop
(timers, OVSDB, REST and SIGHUP post to it: ryu_apps.app.loop_events), and every
repair of a switch, whatever its cause, is :meth:`_reconcile_switch`: read the
switch back (ryu_apps.app.readback), diff, send the difference.
"""

from __future__ import annotations

import signal
import time
from typing import Any, Dict, Optional, Set

from ryu_apps.app.framework import app_manager, hub, ofproto_v1_3, set_ev_cls

from ryu_apps.app import audit as intent_audit
from ryu_apps.app import loop_events as loop
from ryu_apps.app.datapath_features import ConntrackProbes
from ryu_apps.app.device_bus import InProcessBus
from ryu_apps.app.options import CONF
from ryu_apps.app.metrics import (
    Metrics,
    MeteredTimes,
    plan_drift,
    reconciliation_reason,
    serve,
)
from ryu_apps.app.meter_writes import MeterRetries, desired_meter
from ryu_apps.app.ovsdb_watcher import ServerWatchers
from ryu_apps.app.plan_sender import Dispatcher, PlanSender
from ryu_apps.app.readback import AUDIT, ReadBack, ReadBacks
from ryu_apps.app.repairs import RepairSchedule, guarded
from ryu_apps.app.requests import Requests
from ryu_apps.app.state_changes import RESYNC, SWITCH, StateChanges
from ryu_apps.app.switch_events import SwitchEventHandlers
from ryu_apps.app.verdicts import VmLog
from ryu_apps.app.wiring import build_engine, build_link_discovery, settle_heap
from ryu_apps.core.shared_fabric import ANNOUNCE_ROUND_SECONDS
from ryu_apps.core.warm_start import WarmStart
from ryu_apps.loaders.library_check import LibraryChecker
from ryu_apps.rest import api as rest_api
from ryu_apps.rest import notify as rest_notify
from ryu_apps.store import hook as store_hook
from ryu_apps.store.sync import StoreSync
from ryu_apps.tls import ovsdb_ssl
from ryu_apps.tls.openflow_tls import listen_port

TICK_SECONDS = 1.0
#: Least seconds between two resynchronisations after handler failures, and between
#: two reconciliations of one switch after OpenFlow errors; one due sooner waits.
RESYNC_MIN_INTERVAL = 5.0
#: Seconds after the grace when its end is handled (a timer may wake a little early).
GRACE_MARGIN = 0.05


class DynprovProvisioner(app_manager.RyuApp, SwitchEventHandlers):
    """Detects VMs from their packets and provisions them from templates."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": rest_api.RestApplication}   # served by rest_server, not Ryu

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.options = options = CONF.dynprov
        self.library_checker = LibraryChecker.from_options(options)  # validates off-process
        self.engine, self.library_keeper, self.domain_keepers = build_engine(
            options, self.library_checker)
        self.repairs = RepairSchedule(RESYNC_MIN_INTERVAL)
        self.datapaths: Dict[int, Any] = {}
        #: Switches that connected and are being read back for the first time.
        self._connecting: Dict[int, Any] = {}
        self.ports: Dict[int, Set[int]] = {}
        # Plans of one event-loop turn share one write and one barrier per switch
        # (1.28x the VMs/s); a plan with nothing else queued behind it is written at
        # once (no added latency). Off from session 8 to 10 after a cross-process
        # move in tests/integration/test_distributed.py lost 2.3 s of probes in 1 of
        # 22 runs; on again after clean runs: docs/benchmarks.md.
        self.sender = PlanSender(self.datapaths, self.logger, schedule=self._schedule_flush)
        self.bus = InProcessBus(self.engine)
        self.vm_log = VmLog(self.logger)   # each VM at DEBUG, a summary each tick
        self.metrics = Metrics(self)   # served from start(): ryu_apps.app.metrics
        self.provisioning_times = MeteredTimes(self.metrics, lambda: self.engine)
        self.store_sync: Optional[StoreSync] = None   # attached below; claims new VMs
        #: What the engine's state did, as it happens (the live view's feed observes it).
        self.state_changes = StateChanges()
        self.dispatcher = Dispatcher(self.sender, self.engine, self.bus, self.provisioning_times,
                                     lambda: self.store_sync, self.state_changes)
        self.readbacks = ReadBacks(self.logger)
        self.ct_probes = ConntrackProbes(self.conntrack_found)
        self.meter_retries = MeterRetries(
            lambda dpid, meter_id: desired_meter(self.engine, dpid, meter_id),
            self.sender.send, self.logger)
        self.warm = WarmStart(grace=options.reconcile_grace)
        self.audit = intent_audit.IntentAudit(options.audit_interval,
                                              options.audit_report_only, self.logger,
                                              recorder=self.metrics)
        self.warm.begin(time.time())
        self.timers = loop.Timers(self, self.logger)
        self.requests = Requests(self)
        #: What the REST API calls (from its green threads): ryu_apps.app.requests.
        self.notify, self.reload_library = self.requests.notify, self.requests.reload_library
        self._fault_mac = (options.fault_injection_mac or "").lower()
        self.logger.info("dynprov: %d templates from %s, identifier scheme %s",
                         len(self.library_keeper.current), options.templates,
                         options.identifier_scheme)
        self._attach_edges(options, kwargs["wsgi"])
        settle_heap()   # the library and the app's parts are long-lived

    def _attach_edges(self, options, wsgi) -> None:
        """The REST API, the store (issue 6: library and bindings shared by several
        processes), the servers' OVSDB (their threads post each change to the event
        loop), link discovery and SIGHUP (it only wakes the reloader)."""
        rest_notify.register(self, wsgi)   # before the API's catch-all route
        rest_api.register(self, wsgi)
        try:
            self.store_sync = store_hook.attach(self, options, listen_port(CONF))
            if self.store_sync is not None:   # its engine work runs in this loop too
                self.store_sync.in_loop = self._store_in_loop
            self.servers = ServerWatchers(
                options.ovsdb, lambda *change: loop.post(self, loop.OvsdbChange(*change),
                                                         self.logger), self.logger)
        except ovsdb_ssl.SslConfigError as error:
            raise SystemExit(f"dynprov: cannot start: {error}") from None
        self.discovery = build_link_discovery(options, self.store_sync, self.logger,
                                              listen_port(CONF))
        signal.signal(signal.SIGHUP, lambda *_: self.requests.reload_wanted.set())

    def _schedule_flush(self, flush) -> None:
        """Write the turn's plans now when no other event waits in the app's queue
        (a lone VM pays no delay), else once the loop has handled what is queued."""
        if self.events.empty():
            flush()
        else:
            hub.spawn(flush)

    def start(self):
        """Start the event loop, then what posts to it (Ryu calls this once every app is
        registered: nothing may be posted before)."""
        thread = super().start()
        self.timers.every(self.options.lldp_interval, loop.ProbeRound)
        self.timers.every(TICK_SECONDS, loop.Tick)
        self.timers.every(ANNOUNCE_ROUND_SECONDS, loop.AnnounceRound)
        if self.audit.step > 0:
            self.timers.every(self.audit.step, loop.Audit)
        self.timers.once(self.warm.grace + GRACE_MARGIN, loop.GraceOver(self.warm.started))
        self.requests.start()
        self.servers.start()
        if self.options.metrics_port:
            serve(self.metrics, self.options.metrics_host, self.options.metrics_port,
                  hub.spawn)
        return thread

    def close(self) -> None:
        """Stop what start() started and the store (Ryu calls this at shutdown)."""
        self.servers.stop()
        self.timers.stop()
        self.requests.stop()
        if self.store_sync is not None:
            self.store_sync.stop()
        self.library_checker.close()

    # -- the servers' OVSDB ----------------------------------------------------------------
    @set_ev_cls(loop.OvsdbChange)
    @guarded
    def _ovsdb_change(self, ev: loop.OvsdbChange) -> None:
        if ev.attached:
            self._attached(ev.dpid, ev.port, ev.mac, ev.iface_id)
        else:
            self.send_plan(self.engine.vm_detached(ev.dpid, ev.port, ev.mac, now=time.time()))

    def _attached(self, dpid: int, port: int, mac: str, iface_id: Optional[str]) -> None:
        received_ns = time.monotonic_ns()
        if self.store_sync is not None and not self.store_sync.accepts_attachment(dpid, mac):
            return  # another process's server (one OVSDB shared by several processes)
        verdict = self.engine.vm_attached(dpid, port, mac, now=time.time(), iface_id=iface_id)
        if verdict.provisioned is not None:
            self.provisioning_times.detected(verdict.provisioned.mac, received_ns)
        self.vm_log.verdict(verdict, dpid, port)
        self.send_plan(verdict.plan)
        expected = self.engine.incoming.get(mac.lower())
        if self.store_sync is not None and expected is not None and \
                (expected.dpid, expected.port) == (dpid, port):
            self.store_sync.expecting(mac, dpid, port)

    # -- failures: resynchronise from the switches -------------------------------------
    def handler_failed(self, where: str) -> None:
        """A handler raised: the engine may be half-changed. Log the traceback (once a
        minute per handler), then rebuild the engine from what the switches hold."""
        if self.repairs.first_failure(where, time.time()):
            self.logger.exception("dynprov: %s raised; resynchronising with the switches",
                                  where)
        else:
            self.logger.error("dynprov: %s raised again; resynchronising", where)
        self.resync(f"{where} raised")

    def resync(self, why: str) -> None:
        """Forget everything but the libraries and relearn it from the switches (their
        flows, read back), the links (LLDP) and the servers' OVSDB: the restart path.
        Within RESYNC_MIN_INTERVAL of the last one it waits for the tick after."""
        now = time.time()
        if not self.repairs.resync_now(why, now):
            return
        self.logger.warning("dynprov: resynchronising every switch (%s): the engine is rebuilt "
                            "from the flows they hold; deletes wait %.0f s", why,
                            self.warm.grace)
        self.engine.reset()
        self.state_changes.publish((RESYNC,))
        self.warm.begin(now)
        for attachment, iface_id in self.servers.attachments():
            try:
                self._attached(attachment.dpid, attachment.ofport, attachment.mac, iface_id)
            except Exception:  # noqa: BLE001 - go on; resynchronise again on a later tick
                self.logger.exception("dynprov: replaying OVSDB attachment %s", attachment)
                self.repairs.resync_now(f"replaying {attachment} raised", now)
        for dpid in sorted(set(self.datapaths) | set(self._connecting)):
            self._reconcile_switch(dpid, f"resync: {why}")
        self.timers.once(self.warm.grace + GRACE_MARGIN, loop.GraceOver(self.warm.started))

    # -- plans out -----------------------------------------------------------------------
    def send_plan(self, plan, on_confirmed=None) -> None:
        """Send a plan (ryu_apps.app.plan_sender.Dispatcher); ``on_confirmed`` runs once
        every switch has applied it."""
        self.dispatcher.send(plan, time.time(), on_confirmed)
        if plan.urgent:
            # A moved VM's traffic waits for these writes: let the switches' send loops
            # write them now, not after the events queued behind this one.
            hub.sleep(0)

    # -- REST and SIGHUP: callers in other green threads, work in the event loop ---------
    @set_ev_cls(loop.ApplyNotice)
    def _apply_notice(self, request: loop.ApplyNotice) -> None:
        self.requests.apply_notice(request)

    @set_ev_cls(loop.PutLibraries)
    def _put_libraries(self, request: loop.PutLibraries) -> None:
        """Every library in force at once; then the switches whose flows changed are
        read back, so a change a switch refused is repaired."""
        for dpid in self.requests.put_libraries(request):
            self._reconcile_switch(dpid, "library reload")

    # -- reconciliation: the one repair path ----------------------------------------------
    def _reconcile_switch(self, dpid: int, why: str) -> None:
        """Read the switch's dynprov flows and meters back, diff them against what the
        engine wants and send the difference (deletes only after the warm start).
        Connect, reconnect, restart, library reload, OpenFlow error, handler
        exception (resync), the end of the warm start and the audit all come here."""
        datapath = self._connecting.get(dpid) or self.datapaths.get(dpid)
        if datapath is None:
            return   # not connected: reconciled when it connects
        log = self.logger.debug if why == AUDIT else self.logger.info
        log("reconciling switch %016x (%s): reading it back", dpid, why)
        # the read-back sees every message sent before it (unless a flush is still
        # writing: then it may miss that flush's last writes and only sends them again)
        self.sender.flush()
        self.readbacks.start(dpid, datapath, why)

    def _reconciled(self, readback: ReadBack) -> None:
        """The switch was read back: diff, log, send, then ask for its ports."""
        datapath, dpid, now = readback.datapath, readback.datapath.id, time.time()
        if self._connecting.get(dpid) is datapath:
            del self._connecting[dpid]
        if self.datapaths.get(dpid) is not datapath:
            self.datapaths[dpid] = datapath
            self.state_changes.publish((SWITCH,))
        if self.audit.read_back(self.engine, dpid, readback.name, readback.why,
                                readback.observed, now):   # not in report-only audits
            plan = self.readbacks.diff(self.engine, readback, self.warm.adds_only(now), now)
            self.metrics.reconciled(reconciliation_reason(readback.why), *plan_drift(plan))
            self.send_plan(plan)
        datapath.send_msg(datapath.ofproto_parser.OFPPortDescStatsRequest(datapath, 0))

    # -- connection lifecycle ----------------------------------------------
    def _store_in_loop(self, work) -> None:
        loop.post(self, loop.StoreWork(work), self.logger)

    @set_ev_cls(loop.StoreWork)
    @guarded
    def _store_work(self, ev) -> None:
        ev.work()

    def _reconcile_refused(self, now: float) -> None:
        for dpid, why in self.repairs.reconciles_due(now):
            self._reconcile_switch(dpid, why)

    # -- periodic work -----------------------------------------------------
    @set_ev_cls(loop.ProbeRound)
    @guarded
    def _probe_round(self, ev) -> None:
        """Age out links whose probes stopped, then probe every port without a VM."""
        self.timers.handled(loop.ProbeRound)
        self.send_plan(self.engine.probe_round(time.time()))
        for dpid in list(self.ports):
            self._probe_switch_ports(dpid)

    def _probe_switch_ports(self, dpid: int) -> None:
        if dpid in self.datapaths:
            self.discovery.probe_free_ports(self.datapaths[dpid], self.ports.get(dpid, ()),
                                            self.engine, time.time())

    @set_ev_cls(loop.GraceOver)
    @guarded
    def _grace_over(self, ev: loop.GraceOver) -> None:
        """The warm start is over (unless a resync began another): reconcile in full."""
        if ev.started == self.warm.started:
            settle_heap()   # what the warm start restored is long-lived
            for dpid in sorted(self.datapaths):
                self._reconcile_switch(dpid, "warm start over")

    @set_ev_cls(loop.Audit)
    @guarded
    def _audit(self, ev) -> None:
        """Check (and reconcile) the switches whose turn it is (ryu_apps.app.audit)."""
        self.timers.handled(loop.Audit)
        now = time.time()
        self.audit.prune(self.datapaths)
        if not self.warm.adds_only(now):
            idle = [d for d in self.datapaths if self.readbacks.running(d) is None]
            if self.audit.round_over(now):
                settle_heap()
            for dpid in self.audit.due(idle, now):
                self._reconcile_switch(dpid, AUDIT)

    @set_ev_cls(intent_audit.AuditNow)
    @guarded
    def _audit_now(self, ev: intent_audit.AuditNow) -> None:
        """A check asked for over REST: read back the switches not being read already;
        every finished read-back of a switch answers it."""
        self.audit.started(ev.ticket)
        self.audit.prune(self.datapaths)
        for dpid in sorted(ev.ticket.pending):
            if self.readbacks.running(dpid) is None:
                self._reconcile_switch(dpid, AUDIT)

    @set_ev_cls(loop.AnnounceRound)
    @guarded
    def _announce_round(self, ev) -> None:
        self.timers.handled(loop.AnnounceRound)
        plan = self.engine.announce_rounds()
        if plan is not None:
            self.send_plan(plan)

    @set_ev_cls(loop.Tick)
    @guarded
    def _tick(self, ev) -> None:
        self.timers.handled(loop.Tick)
        self.vm_log.summary()
        now = time.time()
        postponed = self.repairs.resync_due(now)
        if postponed is not None:
            self.resync(postponed)
        self._reconcile_refused(now)
        self.send_plan(self.engine.tick(now))
