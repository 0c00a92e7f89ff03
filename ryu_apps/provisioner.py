"""The dynprov Ryu app: a thin shell around the pure provisioning engine.

Launch: ``ryu-manager ryu_apps.provisioner`` (options in a ``[dynprov]``
section of ``--config-file``). Each handler turns an OpenFlow event into a
call on :class:`~ryu_apps.core.engine.ProvisioningEngine` and hands the plan it
returns to :class:`~ryu_apps.app.plan_sender.PlanSender`.
"""

from __future__ import annotations

import functools
import secrets
import signal
import time
from typing import Callable, Dict, Set

from ryu_apps.app.framework import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    app_manager,
    cfg,
    event,
    hub,
    ofp_event,
    ofproto_v1_3,
    set_ev_cls,
)

from ryu_apps.app import openflow
from ryu_apps.tls import ovsdb_ssl
from ryu_apps.rest import api as rest_api
from ryu_apps.rest import notify as rest_notify
from ryu_apps.app.device_bus import InProcessBus
from ryu_apps.core import lldp
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.identity import IdentityPolicy
from ryu_apps.core.fabric import PortRef, RoleError, parse_description
from ryu_apps.core.frames import parse_frame
from ryu_apps.core.identifiers import IdentifierError
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.core.domains import DomainError
from ryu_apps.loaders.domain_files import load_domains
from ryu_apps.core.binding import VmState
from ryu_apps.loaders.library_check import LibraryChecker
from ryu_apps.loaders.library_files import LibraryKeeper
from ryu_apps.app.link_discovery import LinkDiscovery, SecretError, load_or_create_secret
from ryu_apps.app.ovsdb_watcher import OvsdbWatcher
from ryu_apps.tls.openflow_tls import listen_port
from ryu_apps.app.plan_sender import PlanSender, next_xid
from ryu_apps.app.provisioning_times import ProvisioningTimes
from ryu_apps.loaders.scheme_config import load_scheme
from ryu_apps.store import hook as store_hook

CONF = cfg.CONF
CONF.register_opts([
    cfg.StrOpt("templates", default="templates",
               help="Template library: a directory of YAML files, or one file."),
    cfg.StrOpt("identifier_scheme", default="prefix/16",
               help="How a VM MAC selects a template: prefix/16, prefix/12, "
                    "interleave, or table:PATH."),
    cfg.FloatOpt("lldp_interval", default=2.0,
                 help="Seconds between LLDP probes on every port (link discovery)."),
    cfg.ListOpt("ovsdb", default=[],
                help="OVSDB remotes of servers to watch for VMs by "
                     "external_ids:attached-mac (e.g. unix:/var/run/openvswitch/db.sock, "
                     "tcp:IP:6640); empty: detect VMs from their packets only."),
    cfg.StrOpt("domains", default="",
               help="Mobility domains file (YAML); empty: one domain, the main library."),
    cfg.FloatOpt("reconcile_grace", default=5.0,
                 help="Seconds after start-up during which reconciliation only adds "
                      "flows; then every switch is reconciled in full."),
    cfg.StrOpt("store", default="",
               help="Shared store (OVSDB remotes, comma-separated, e.g. "
                    "tcp:127.0.0.1:6641,tcp:127.0.0.1:6642): library and bindings shared "
                    "by several controller processes; empty: embedded YAML mode."),
    cfg.StrOpt("process_name", default="",
               help="This process's name in the store (default host:OpenFlow port)."),
    cfg.StrOpt("identity_policy", default="auto",
               help="Whom to believe about which VM is on which port, where the mobility "
                    "domain does not say: ovsdb (the hypervisor only), packets (guarded "
                    "moves), auto (the hypervisor where its OVSDB names a VM, packets rules "
                    "elsewhere). See docs/security.md."),
    cfg.FloatOpt("move_hold", default=1.0,
                 help="Seconds a VM must stay silent at its bound port to the liveness "
                      "probe before its MAC seen elsewhere moves it (packets rules)."),
    cfg.StrOpt("topology_secret_file", default="",
               help="File holding the secret LLDP probes are signed with (hex; created, "
                    "mode 0600, if missing). Empty: a random secret per process (store "
                    "mode: the store's)."),
    cfg.FloatOpt("probe_max_age", default=10.0,
                 help="Seconds a signed LLDP probe stays believable (clock skew included)."),
    cfg.FloatOpt("audit_interval", default=60.0,
                 help="Seconds between two audits: every switch's dynprov flows and meters "
                      "are read back and reconciled, so one changed behind dynprov's back is "
                      "repaired; 0: no audit."),
    cfg.StrOpt("fault_injection_mac", default="",
               help="Testing only: packet-in handling raises, after the engine handled it, "
                    "for frames from this MAC (proves the resynchronisation)."),
], group="dynprov")

OFPP_MAX = ofproto_v1_3.OFPP_MAX
OFPP_CONTROLLER = ofproto_v1_3.OFPP_CONTROLLER
TICK_SECONDS = 1.0
#: Seconds a notification waits for the switches to confirm its changes.
NOTIFY_CONFIRM_SECONDS = 5.0
#: Least seconds between two resynchronisations after handler failures.
RESYNC_MIN_INTERVAL = 5.0


class _ProbeRound(event.EventBase):
    """Time for a round of LLDP probes (posted to the app's own event queue)."""


class _Tick(event.EventBase):
    """A second passed (posted to the app's own event queue)."""


class _Audit(event.EventBase):
    """Time to read every switch back and reconcile it (the app's own event queue)."""


class _PutLibraries(event.EventRequestBase):
    """Put validated libraries in force, in the app's event loop."""

    def __init__(self, dst: str, library, domain_libraries: dict) -> None:
        super().__init__()
        self.dst = dst
        self.library, self.domain_libraries = library, domain_libraries


class _LibrariesPut(event.EventReplyBase):
    """(ok, message) of a _PutLibraries."""

    def __init__(self, dst: str, result: tuple) -> None:
        super().__init__(dst)
        self.result = result


def _guarded(handler: Callable) -> Callable:
    """Run an event handler; if it raises, log it and resynchronise from the switches
    instead of running on whatever the failed event left behind. An OpenFlow message
    of another version than the connection's (Ryu parses each message by the version
    in its own header: an OpenFlow 1.0 PACKET_IN on a 1.3 connection has no match)
    is logged once per switch and ignored."""
    @functools.wraps(handler)
    def run(self, ev) -> None:
        msg = getattr(ev, "msg", None)
        if msg is not None and msg.version != msg.datapath.ofproto.OFP_VERSION:
            self._malformed(msg.datapath.id or 0, f"OpenFlow version {msg.version} message "
                                                  "on an OpenFlow 1.3 connection")
            return
        try:
            handler(self, ev)
        except Exception:  # noqa: BLE001 - no event may leave the engine half-changed
            self._handler_failed(handler.__name__)
    return run


class _SwitchSync:
    """What a connecting switch reported so far: its flows, then its meters."""

    def __init__(self, role, name, flows_xid: int) -> None:
        self.role, self.name = role, name
        self.flows_xid = flows_xid
        self.meters_xid = None
        self.observed: list = []


class DynprovProvisioner(app_manager.RyuApp):
    """Detects VMs from their packets and provisions them from templates."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": rest_api.RestApplication}   # served by rest_server, not Ryu

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        options = CONF.dynprov
        self.library_checker = LibraryChecker.from_options(options)  # validates off-process
        try:
            self.library_keeper = LibraryKeeper(options.templates, self.library_checker)
            scheme = load_scheme(options.identifier_scheme)
            domains, self.domain_keepers = load_domains(options.domains, self.library_checker)
        except (TemplateValidationError, IdentifierError, DomainError) as error:
            raise SystemExit(f"dynprov: cannot start: {error}") from None
        try:
            identity = IdentityPolicy.parse(options.identity_policy,
                                            "[dynprov] identity_policy")
        except ValueError as error:
            raise SystemExit(f"dynprov: cannot start: {error}") from None
        self.engine = ProvisioningEngine(
            self.library_keeper.current, scheme, domains,
            {name: keeper.current for name, keeper in self.domain_keepers.items()},
            identity=identity, move_hold=options.move_hold)
        self.lldp_interval = options.lldp_interval
        self._failures: Dict[str, float] = {}
        self._reload_lock = hub.BoundedSemaphore(1)
        #: Switches being read back by an audit (their reconciliation is logged only
        #: when it changes something).
        self._auditing: Set[int] = set()
        #: Timer events posted and not handled yet (one of each kind at most).
        self._timers_due: Set[type] = set()
        self._last_resync = 0.0
        self.datapaths: Dict[int, object] = {}
        self.ports: Dict[int, Set[int]] = {}
        self.sender = PlanSender(self.datapaths, self.logger)
        self.bus = InProcessBus(self.engine)
        self.provisioning_times = ProvisioningTimes()
        self._syncing: Dict[int, _SwitchSync] = {}
        self.logger.info(
            "dynprov: %d templates from %s, identifier scheme %s",
            len(self.library_keeper.current), options.templates,
            options.identifier_scheme)
        self.warm_until = time.time() + options.reconcile_grace
        self.reconcile_grace = options.reconcile_grace
        signal.signal(signal.SIGHUP, lambda *_: hub.spawn(self.reload_library))
        rest_notify.register(self, kwargs["wsgi"])   # before the API's catch-all route
        rest_api.register(self, kwargs["wsgi"])
        # The shared store (issue 6): library and bindings shared by several processes.
        try:
            self.store_sync = store_hook.attach(self, options, listen_port(CONF))
            self.ovsdb_watchers = [OvsdbWatcher(remote, self._ovsdb_attached,
                                                self._ovsdb_detached, self.logger)
                                   for remote in options.ovsdb]
        except ovsdb_ssl.SslConfigError as error:
            raise SystemExit(f"dynprov: cannot start: {error}") from None
        self.discovery = self._link_discovery(options)
        self._threads = [hub.spawn(self._every, self.lldp_interval, _ProbeRound),
                         hub.spawn(self._every, TICK_SECONDS, _Tick),
                         hub.spawn(self._resync_after_grace, options.reconcile_grace)]
        if options.audit_interval > 0:
            self._threads.append(hub.spawn(self._every, options.audit_interval, _Audit))
        self._fault_mac = (options.fault_injection_mac or "").lower()
        for watcher in self.ovsdb_watchers:
            watcher.start()

    def _link_discovery(self, options) -> LinkDiscovery:
        """Probe signing and checking, with the deployment's secret (module docstring)."""
        process = (self.store_sync.name if self.store_sync is not None
                   else store_hook.default_process_name(listen_port(CONF)))
        try:
            if options.topology_secret_file:
                secret = load_or_create_secret(options.topology_secret_file)
            else:
                secret = secrets.token_bytes(32)
        except (OSError, SecretError) as error:
            raise SystemExit(f"dynprov: cannot start: {error}") from None
        if self.store_sync is not None:
            secret = self.store_sync.topology_secret(secret)
        return LinkDiscovery(secret, process, self.logger, options.probe_max_age,
                             self.store_sync)

    def _ovsdb_attached(self, dpid: int, port: int, mac: str) -> None:
        try:
            self._attached(dpid, port, mac)
        except Exception:  # noqa: BLE001 - resynchronise rather than run half-changed
            self._handler_failed("ovsdb attach")

    def _attached(self, dpid: int, port: int, mac: str) -> None:
        received_ns = time.monotonic_ns()
        if self.store_sync is not None and not self.store_sync.accepts_attachment(dpid, mac):
            return  # another process's server (one OVSDB shared by several processes)
        iface_id = next((w.iface_id(dpid, port) for w in self.ovsdb_watchers
                         if w.iface_id(dpid, port)), None)
        verdict = self.engine.vm_attached(dpid, port, mac, now=time.time(), iface_id=iface_id)
        if verdict.provisioned is not None:
            self.provisioning_times.detected(verdict.provisioned.mac, received_ns)
        self._log_verdict(verdict, dpid, port)
        self.send_plan(verdict.plan)
        expected = self.engine.incoming.get(mac.lower())
        if self.store_sync is not None and expected is not None and \
                (expected.dpid, expected.port) == (dpid, port):
            self.store_sync.expecting(mac, dpid, port)

    def _ovsdb_detached(self, dpid: int, port: int, mac: str) -> None:
        try:
            self.send_plan(self.engine.vm_detached(dpid, port, mac, now=time.time()))
        except Exception:  # noqa: BLE001
            self._handler_failed("ovsdb detach")

    # -- failures: resynchronise from the switches -------------------------------------
    def _handler_failed(self, where: str) -> None:
        """An event handler raised: the engine may be half-changed. Log the traceback
        (once a minute per handler), then rebuild the engine from what the switches
        hold, as after a restart."""
        now = time.time()
        if now - self._failures.get(where, 0.0) > 60.0:
            self.logger.exception("dynprov: %s raised; resynchronising with the switches",
                                  where)
        else:
            self.logger.error("dynprov: %s raised again; resynchronising", where)
        self._failures[where] = now
        self.resync(f"{where} raised")

    def resync(self, why: str) -> None:
        """Forget everything but the libraries and relearn it from the switches (their
        flows, read back), the links (LLDP) and the servers' OVSDB: the restart path."""
        now = time.time()
        if now - self._last_resync < RESYNC_MIN_INTERVAL:
            return
        self._last_resync = now
        self.logger.warning("dynprov: resynchronising every switch (%s): the engine is rebuilt "
                            "from the flows they hold; deletes wait %.0f s", why,
                            self.reconcile_grace)
        self.engine.reset()
        self.warm_until = now + self.reconcile_grace
        self._syncing.clear()
        for watcher in self.ovsdb_watchers:
            for attachment in sorted(watcher.attachments()):
                self._ovsdb_attached(attachment.dpid, attachment.ofport, attachment.mac)
        for datapath in list(self.datapaths.values()):
            datapath.send_msg(datapath.ofproto_parser.OFPDescStatsRequest(datapath, 0))
        hub.spawn(self._resync_after_grace, self.reconcile_grace)

    def close(self) -> None:
        """Stop the OVSDB watchers (Ryu calls this at shutdown)."""
        for watcher in self.ovsdb_watchers:
            watcher.stop()
        if self.store_sync is not None:
            self.store_sync.stop()
        self.library_checker.close()

    def send_plan(self, plan, on_confirmed=None) -> None:
        """Send a plan; mark its VMs active once confirmed; deliver its messages.

        ``on_confirmed`` runs once every switch has applied the plan.
        """
        confirms = list(plan.confirms)

        def confirmed() -> None:
            self.provisioning_times.confirmed(confirms, time.monotonic_ns())
            self.engine.confirm(confirms)
            if on_confirmed is not None:
                on_confirmed()

        self.sender.send(plan, on_confirmed=confirmed)
        store_sync = getattr(self, "store_sync", None)   # None until attached
        if confirms and store_sync is not None:
            store_sync.kick()   # claim the new VMs in the store now
        for message in plan.messages:
            self.send_plan(self.bus.deliver(message, time.time()))

    def notify(self, notice: Notice, mac: str, server: str | None = None,
               template_id: int | None = None) -> str:
        """Apply a notification from the management entity; what was done.

        Raises NotificationError (unknown VM or server, or not applicable now).
        """
        if (self.store_sync is not None and notice is Notice.MIGRATING and server
                and not self.store_sync.manages_server(server)):
            return self.store_sync.hand_off(mac, server)  # another process's server
        ack = self.engine.notify(notice, mac, server, template_id, now=time.time())
        applied = hub.Event()
        self.send_plan(ack.plan, on_confirmed=applied.set)
        if not applied.wait(timeout=NOTIFY_CONFIRM_SECONDS):
            return ack.message + " (not yet confirmed by every switch)"
        return ack.message

    def reload_library(self) -> tuple[bool, str]:
        """Load the library again and re-provision affected VMs in place.

        On a validation error the previous library stays in force. Returns
        (True, summary) or (False, every validation error). In store mode the
        library is the store's: no file is read, (False, why and what to do).
        """
        if CONF.dynprov.store:  # store mode: the library is the store's
            refusal = store_hook.reload_refusal(CONF.dynprov, getattr(self, "store_sync", None))
            self.logger.warning("%s", refusal)
            return False, refusal
        with self._reload_lock:
            try:   # read and validated in the checker process; this green thread waits
                library = self.library_keeper.candidate()
                domain_libraries = {name: keeper.candidate()
                                    for name, keeper in self.domain_keepers.items()}
            except TemplateValidationError as error:
                self.logger.error("library reload refused, previous library stays:\n%s",
                                  error)
                return False, str(error)
            return self.send_request(_PutLibraries(self.name, library, domain_libraries)).result

    @set_ev_cls(_PutLibraries)
    def _put_libraries(self, request: _PutLibraries) -> None:
        """In the event loop: every library (main and domains) in force at once."""
        try:
            result = self._put_in_force(request.library, request.domain_libraries)
        except Exception:  # noqa: BLE001 - answer, then resynchronise
            self._handler_failed("library reload")
            result = (False, "internal error while putting the library in force; "
                             "resynchronising (see the controller log)")
        self.reply_to_request(request, _LibrariesPut(request.src, result))

    def _put_in_force(self, library, domain_libraries: dict) -> tuple[bool, str]:
        self.library_keeper.accept(library)
        for name, domain_library in domain_libraries.items():
            self.domain_keepers[name].accept(domain_library)
        plan = self.engine.set_library(library)
        for name, domain_library in domain_libraries.items():
            plan.extend(self.engine.set_library(domain_library, domain=name))
        message = (f"library reloaded: {len(library)} templates, "
                   f"{plan.flow_count()} flow changes")
        self.logger.info("%s", message)
        self.send_plan(plan)
        return True, message

    # -- connection lifecycle ----------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @_guarded
    def _state_change(self, ev) -> None:
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            datapath.send_msg(datapath.ofproto_parser.OFPDescStatsRequest(datapath, 0))
        elif datapath.id is not None and self.datapaths.get(datapath.id) is datapath:
            self.logger.warning("switch %016x disconnected; its flows stay in place",
                                datapath.id)
            del self.datapaths[datapath.id]
            self.sender.forget(datapath.id)
            self.send_plan(self.engine.switch_down(datapath.id))

    @set_ev_cls(ofp_event.EventOFPDescStatsReply, MAIN_DISPATCHER)
    @_guarded
    def _desc_reply(self, ev) -> None:
        datapath = ev.msg.datapath
        description = ev.msg.body.dp_desc
        if isinstance(description, bytes):
            description = description.decode("utf-8", "replace")
        try:
            parsed = parse_description(description)
        except RoleError as error:
            self.logger.error("switch %016x not managed: %s", datapath.id, error)
            return
        if parsed is None:
            self.logger.info("switch %016x (%r) is not a dynprov bridge; left alone",
                             datapath.id, description)
            return
        xid = _send_request(datapath, openflow.our_flows_request(datapath))
        self._syncing[datapath.id] = _SwitchSync(*parsed, flows_xid=xid)

    def _collect(self, ev, xid_of, entries_of) -> _SwitchSync | None:
        """Add one part of a sync reply; the sync once its last part is in.

        Replies to requests this sync did not send (e.g. the REST API's) are ignored.
        """
        datapath = ev.msg.datapath
        sync = self._syncing.get(datapath.id)
        if sync is None or ev.msg.xid != xid_of(sync):
            return None
        sync.observed += [e for e in entries_of(datapath.id, ev.msg.body) if e is not None]
        if ev.msg.flags & datapath.ofproto.OFPMPF_REPLY_MORE:
            return None
        return sync

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @_guarded
    def _flow_stats_reply(self, ev) -> None:
        sync = self._collect(ev, lambda s: s.flows_xid, lambda dpid, body: [
            openflow.spec_from_stats(dpid, stats) for stats in body])
        if sync is not None:
            datapath = ev.msg.datapath
            sync.meters_xid = _send_request(datapath, openflow.meters_request(datapath))

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
    @_guarded
    def _meter_stats_reply(self, ev) -> None:
        sync = self._collect(ev, lambda s: s.meters_xid, lambda dpid, body: [
            openflow.meter_from_stats(dpid, stats) for stats in body])
        if sync is None:
            return
        datapath = ev.msg.datapath
        del self._syncing[datapath.id]
        self.datapaths[datapath.id] = datapath
        plan = self.engine.switch_up(datapath.id, sync.role, sync.name, sync.observed,
                                     now=time.time())
        if time.time() < self.warm_until:
            # Other switches (and links) may not be back yet: what looks stale now
            # may be needed; the full reconciliation after the grace period decides.
            plan = plan.without_deletes()
        if datapath.id in self._auditing:
            self._auditing.discard(datapath.id)
            if plan.flow_count():
                self.logger.warning("audit: switch %016x (%s) differed from what dynprov "
                                    "wants: %d changes to reconcile it", datapath.id,
                                    sync.name, plan.flow_count())
        else:
            self.logger.info("switch %016x up: %s %s, %d dynprov entries found, %d changes",
                             datapath.id, sync.role.value, sync.name, len(sync.observed),
                             plan.flow_count())
        self.send_plan(plan)
        datapath.send_msg(datapath.ofproto_parser.OFPPortDescStatsRequest(datapath, 0))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @_guarded
    def _port_desc_reply(self, ev) -> None:
        dpid = ev.msg.datapath.id
        self.ports[dpid] = {p.port_no for p in ev.msg.body if p.port_no < OFPP_MAX}
        self._probe_switch_ports(dpid)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @_guarded
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
            self._send_probe(dpid, port)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    @_guarded
    def _flow_removed(self, ev) -> None:
        msg = ev.msg
        idle = msg.reason == msg.datapath.ofproto.OFPRR_IDLE_TIMEOUT
        self.send_plan(self.engine.flow_removed(msg.datapath.id, msg.cookie, idle))

    # -- packets -----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @_guarded
    def _packet_in(self, ev) -> None:
        received_ns = time.monotonic_ns()
        msg = ev.msg
        dpid = msg.datapath.id
        if dpid not in self.datapaths:
            return
        match = getattr(msg, "match", None)
        frame = parse_frame(getattr(msg, "data", None) or b"")
        in_port = match.get("in_port") if hasattr(match, "get") else None
        if frame is None or not isinstance(in_port, int) or not 0 < in_port < OFPP_MAX:
            self._malformed(dpid, "packet-in without a frame or a valid in_port")
            return
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
        self._log_verdict(verdict, dpid, in_port)
        self.send_plan(verdict.plan)
        if self._fault_mac and frame.eth_src == self._fault_mac:
            raise RuntimeError(f"fault injected for VM {frame.eth_src} (fault_injection_mac)")

    def _malformed(self, dpid: int, what: str) -> None:
        """A message a switch should never send: logged once per switch and kind."""
        key = f"malformed {dpid:x} {what}"
        if key not in self._failures:
            self._failures[key] = time.time()
            self.logger.warning("switch %016x: %s; ignored", dpid, what)

    def _send_urgent(self, plan) -> None:
        """Send what must not wait for the engine's next, longer computation."""
        if not plan.is_empty():
            self.send_plan(plan)

    def _log_verdict(self, verdict, dpid: int, port: int) -> None:
        if verdict.refusal and verdict.first_refusal:
            refusal = verdict.refusal
            template = "none" if refusal.template_id is None else str(refusal.template_id)
            self.logger.warning(
                "quarantined VM MAC %s on switch %016x port %d: decoded template %s: %s",
                refusal.mac, dpid, port, template, refusal.reason)
        binding = verdict.provisioned
        if binding and binding.state is not VmState.PRE_PROVISIONED:
            self.logger.info(
                "provisioned VM %s on switch %016x port %d: template %d '%s', vlan %d, "
                "binding %d (%s)", binding.mac, binding.dpid, binding.port, binding.template_id,
                binding.template_name, binding.vlan, binding.binding_id,
                binding.detected_by.value)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @_guarded
    def _barrier_reply(self, ev) -> None:
        self.sender.barrier_reply(ev.msg.datapath.id, ev.msg.xid)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @_guarded
    def _error(self, ev) -> None:
        """A switch refused a message: what it holds may differ from what the engine
        believes, so it is read back and reconciled (at most every few seconds)."""
        msg = ev.msg
        datapath = msg.datapath
        self.logger.error("switch %016x refused message xid %d: type %d code %d: %s",
                          datapath.id or 0, msg.xid, msg.type, msg.code,
                          bytes(msg.data or b"")[:64].hex())
        key = f"error-resync {datapath.id}"
        now = time.time()
        if datapath.id in self.datapaths and now - self._failures.get(key, 0.0) > \
                RESYNC_MIN_INTERVAL:
            self._failures[key] = now
            self.logger.warning("switch %016x: reading its flows back to reconcile it",
                                datapath.id)
            datapath.send_msg(datapath.ofproto_parser.OFPDescStatsRequest(datapath, 0))

    # -- periodic work -----------------------------------------------------
    def _send_probe(self, dpid: int, port: int) -> None:
        self._send_probes(dpid, [port])

    def _send_probes(self, dpid: int, ports) -> None:
        """One signed LLDP probe out of each port, and (store mode) a beacon after it out
        of each port of a switch without VMs that leads to no managed switch; all in
        one write."""
        datapath = self.datapaths.get(dpid)
        if datapath is None or not ports:
            return
        beacons = {port for port in ports if self._may_reach_shared_fabric(dpid, port)}
        frames = self.discovery.frames(dpid, list(ports), beacons, time.time())
        datapath.send(b"".join(
            openflow.with_xid(openflow.encoded_packet_out(OFPP_CONTROLLER, port, frame),
                              next_xid(datapath))
            for port, frame in frames))

    def _may_reach_shared_fabric(self, dpid: int, port: int) -> bool:
        if self.store_sync is None:
            return False   # without a store there is no other process to reach
        fabric = self.engine.fabric
        role = fabric.role(dpid)
        if role is None or role.hosts_vms:
            return False
        end = PortRef(dpid, port)
        return fabric.peer(end) is None or fabric.is_shared_uplink(end)

    def _every(self, seconds: float, event_class) -> None:
        """Post ``event_class()`` to this app's own event queue every ``seconds``: timers
        reach the engine in order with everything else, and this loop never dies."""
        while True:
            hub.sleep(seconds)
            if event_class in self._timers_due:
                continue   # the last one is still queued: the app is behind; do not pile up
            try:
                self._timers_due.add(event_class)
                self.send_event(self.name, event_class())
            except Exception:  # noqa: BLE001 - a timer must outlive any failure
                self.logger.exception("dynprov: could not post %s", event_class.__name__)

    @set_ev_cls(_ProbeRound)
    @_guarded
    def _probe_round(self, ev) -> None:
        """Age out links whose probes stopped, then probe every port but those with a
        VM behind them (a link there would first take the port down, which drops
        the VM and probes the port again)."""
        self._timers_due.discard(_ProbeRound)
        self.send_plan(self.engine.probe_round(time.time()))
        for dpid in list(self.ports):
            self._probe_switch_ports(dpid)

    def _probe_switch_ports(self, dpid: int) -> None:
        self._send_probes(dpid, [port for port in sorted(self.ports.get(dpid, ()))
                                 if not self.engine.hosts_vm(dpid, port)])

    def _resync_after_grace(self, grace: float) -> None:
        """Reconcile every connected switch in full once the warm start is over."""
        hub.sleep(grace)
        for datapath in list(self.datapaths.values()):
            datapath.send_msg(datapath.ofproto_parser.OFPDescStatsRequest(datapath, 0))

    @set_ev_cls(_Audit)
    @_guarded
    def _audit(self, ev) -> None:
        """Read every connected switch back and reconcile it, as when it connects."""
        self._timers_due.discard(_Audit)
        if time.time() < self.warm_until:
            return
        for dpid, datapath in list(self.datapaths.items()):
            if dpid not in self._syncing:
                self._auditing.add(dpid)
                datapath.send_msg(datapath.ofproto_parser.OFPDescStatsRequest(datapath, 0))

    @set_ev_cls(_Tick)
    @_guarded
    def _tick(self, ev) -> None:
        self._timers_due.discard(_Tick)
        self.send_plan(self.engine.tick(time.time()))


def _send_request(datapath, request) -> int:
    """Send a request with a fresh transaction id; that id."""
    datapath.set_xid(request)
    datapath.send_msg(request)
    return request.xid
