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

from ryu_apps.app.framework import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    app_manager,
    ofp_event,
    ofproto_v1_3,
    set_ev_cls,
)

from ryu_apps.app import loop_events as loop
from ryu_apps.app.device_bus import InProcessBus
from ryu_apps.app.options import CONF
from ryu_apps.app.ovsdb_watcher import ServerWatchers
from ryu_apps.app.plan_sender import Dispatcher, PlanSender
from ryu_apps.app.provisioning_times import ProvisioningTimes
from ryu_apps.app.readback import AUDIT, CONNECTED, ReadBack, ReadBacks
from ryu_apps.app.repairs import RepairSchedule, guarded
from ryu_apps.app.requests import Requests
from ryu_apps.app.verdicts import frame_in, log_verdict
from ryu_apps.app.wiring import build_engine, build_link_discovery
from ryu_apps.core import lldp
from ryu_apps.core.warm_start import WarmStart
from ryu_apps.loaders.library_check import LibraryChecker
from ryu_apps.rest import api as rest_api
from ryu_apps.rest import notify as rest_notify
from ryu_apps.store import hook as store_hook
from ryu_apps.store.sync import StoreSync
from ryu_apps.tls import ovsdb_ssl
from ryu_apps.tls.openflow_tls import listen_port

OFPP_MAX = ofproto_v1_3.OFPP_MAX
TICK_SECONDS = 1.0
#: Least seconds between two resynchronisations after handler failures, and between
#: two reconciliations of one switch after OpenFlow errors; one due sooner waits.
RESYNC_MIN_INTERVAL = 5.0
#: Seconds after the grace when its end is handled (a timer may wake a little early).
GRACE_MARGIN = 0.05


class DynprovProvisioner(app_manager.RyuApp):
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
        self.sender = PlanSender(self.datapaths, self.logger)
        self.bus = InProcessBus(self.engine)
        self.provisioning_times = ProvisioningTimes()
        self.store_sync: Optional[StoreSync] = None   # attached below; claims new VMs
        self.dispatcher = Dispatcher(self.sender, self.engine, self.bus, self.provisioning_times,
                                     lambda: self.store_sync)
        self.readbacks = ReadBacks(self.logger)
        self.warm = WarmStart(grace=options.reconcile_grace)
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

    def start(self):
        """Start the event loop, then what posts to it (Ryu calls this once every app is
        registered: nothing may be posted before)."""
        thread = super().start()
        self.timers.every(self.options.lldp_interval, loop.ProbeRound)
        self.timers.every(TICK_SECONDS, loop.Tick)
        if self.options.audit_interval > 0:
            self.timers.every(self.options.audit_interval, loop.Audit)
        self.timers.once(self.warm.grace + GRACE_MARGIN, loop.GraceOver(self.warm.started))
        self.requests.start()
        self.servers.start()
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
        log_verdict(self.logger, verdict, dpid, port)
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
        self.readbacks.start(dpid, datapath, why)

    def _reconciled(self, readback: ReadBack) -> None:
        """The switch was read back: diff, log, send, then ask for its ports."""
        datapath, dpid, now = readback.datapath, readback.datapath.id, time.time()
        if self._connecting.get(dpid) is datapath:
            del self._connecting[dpid]
        self.datapaths[dpid] = datapath
        self.send_plan(self.readbacks.diff(self.engine, readback, self.warm.adds_only(now), now))
        datapath.send_msg(datapath.ofproto_parser.OFPPortDescStatsRequest(datapath, 0))

    # -- connection lifecycle ----------------------------------------------
    def _store_in_loop(self, work) -> None:
        loop.post(self, loop.StoreWork(work), self.logger)

    @set_ev_cls(loop.StoreWork)
    @guarded
    def _store_work(self, ev) -> None:
        ev.work()

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _state_change(self, ev) -> None:
        datapath, dpid = ev.datapath, ev.datapath.id
        if ev.state == MAIN_DISPATCHER:
            self._connecting[dpid] = datapath
            self._reconcile_switch(dpid, CONNECTED[dpid in self.engine.fabric.switches])
            return
        if self._connecting.get(dpid) is datapath:   # gone before it was read back
            del self._connecting[dpid]
            self.readbacks.forget(dpid)
        if dpid is not None and self.datapaths.get(dpid) is datapath:
            self.logger.warning("switch %016x disconnected; its flows stay in place", dpid)
            del self.datapaths[dpid]
            self.readbacks.forget(dpid)
            self.repairs.forget(dpid)
            self.sender.forget(dpid)
            self.send_plan(self.engine.switch_down(dpid))

    @set_ev_cls(ofp_event.EventOFPDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _desc_reply(self, ev) -> None:
        self.readbacks.described(ev.msg)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def _flow_stats_reply(self, ev) -> None:
        self.readbacks.flows(ev.msg)

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    @guarded
    def _meter_stats_reply(self, ev) -> None:
        readback = self.readbacks.meters(ev.msg)
        if readback is not None:
            self._reconciled(readback)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def _port_desc_reply(self, ev) -> None:
        dpid = ev.msg.datapath.id
        self.ports[dpid] = {p.port_no for p in ev.msg.body if p.port_no < OFPP_MAX}
        self._probe_switch_ports(dpid)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _port_status(self, ev) -> None:
        msg = ev.msg
        dpid, port = msg.datapath.id, msg.desc.port_no
        ofp = msg.datapath.ofproto
        if dpid not in self.datapaths or port >= OFPP_MAX:
            return
        if msg.reason == ofp.OFPPR_DELETE or msg.desc.state & ofp.OFPPS_LINK_DOWN:
            self.ports.get(dpid, set()).discard(port)
            self.send_plan(self.engine.port_down(dpid, port,
                                                 deleted=msg.reason == ofp.OFPPR_DELETE,
                                                 now=time.time()))
        else:
            self.ports.setdefault(dpid, set()).add(port)
            self._send_urgent(self.engine.arrival(dpid, port))
            self.send_plan(self.engine.port_up(dpid, port))
            self.discovery.send_probes(msg.datapath, [port], self.engine.fabric, time.time())

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @guarded
    def _flow_removed(self, ev) -> None:
        msg = ev.msg
        idle = msg.reason == msg.datapath.ofproto.OFPRR_IDLE_TIMEOUT
        self.send_plan(self.engine.flow_removed(msg.datapath.id, msg.cookie, idle))

    # -- packets -----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _packet_in(self, ev) -> None:
        received_ns = time.monotonic_ns()
        msg = ev.msg
        dpid = msg.datapath.id
        if dpid not in self.datapaths:
            return
        found = frame_in(msg)
        if found is None:
            self.malformed(dpid, "packet-in without a frame or a valid in_port")
            return
        frame, in_port = found
        if frame.ethertype == lldp.ETH_TYPE_LLDP:
            self.send_plan(self.discovery.received(self.engine, dpid, in_port, msg.data,
                                                   time.time()))
            return
        self._send_urgent(self.engine.arrival(dpid, in_port))
        verdict = self.engine.packet_in(dpid, in_port, frame.eth_src, msg.data,
                                        now=time.time(), sender_ip=frame.sender_ip,
                                        tagged=frame.tagged, eth_dst=frame.eth_dst)
        if verdict.provisioned is not None:
            self.provisioning_times.detected(verdict.provisioned.mac, received_ns)
        log_verdict(self.logger, verdict, dpid, in_port)
        if self._fault_mac and frame.eth_src == self._fault_mac:
            self._fault_mac = ""   # once: the engine changed, its plan is never sent
            raise RuntimeError(f"fault injected for VM {frame.eth_src} (fault_injection_mac)")
        self.send_plan(verdict.plan)

    def malformed(self, dpid: int, what: str) -> None:
        """A message a switch should never send: logged once per switch and kind."""
        if self.repairs.first_failure(f"malformed {dpid:x} {what}", 0.0, quiet=-1.0):
            self.logger.warning("switch %016x: %s; ignored", dpid, what)

    def _send_urgent(self, plan) -> None:
        """Send what must not wait for the engine's next, longer computation."""
        if not plan.is_empty():
            self.send_plan(plan)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def _barrier_reply(self, ev) -> None:
        self.sender.barrier_reply(ev.msg.datapath.id, ev.msg.xid)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _error(self, ev) -> None:
        """A switch refused a message: what it holds may differ from what the engine
        believes, so it is reconciled (ryu_apps.app.repairs says when)."""
        msg = ev.msg
        dpid = msg.datapath.id
        self.logger.error("switch %016x refused message xid %d: type %d code %d: %s",
                          dpid or 0, msg.xid, msg.type, msg.code,
                          bytes(msg.data or b"")[:64].hex())
        if dpid in self.datapaths:
            self.repairs.switch_refused(dpid, f"OpenFlow error type {msg.type} code {msg.code}")
            self._reconcile_refused(time.time())

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
            for dpid in sorted(self.datapaths):
                self._reconcile_switch(dpid, "warm start over")

    @set_ev_cls(loop.Audit)
    @guarded
    def _audit(self, ev) -> None:
        """Reconcile every connected switch not being read back already."""
        self.timers.handled(loop.Audit)
        if not self.warm.adds_only(time.time()):
            for dpid in sorted(d for d in self.datapaths if self.readbacks.running(d) is None):
                self._reconcile_switch(dpid, AUDIT)

    @set_ev_cls(loop.Tick)
    @guarded
    def _tick(self, ev) -> None:
        self.timers.handled(loop.Tick)
        now = time.time()
        postponed = self.repairs.resync_due(now)
        if postponed is not None:
            self.resync(postponed)
        self._reconcile_refused(now)
        self.send_plan(self.engine.tick(now))
