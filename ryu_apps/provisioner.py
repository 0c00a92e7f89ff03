"""The dynprov Ryu app: a thin shell around the pure provisioning engine.

Launch: ``ryu-manager ryu_apps.provisioner`` (options in a ``[dynprov]``
section of ``--config-file``). Each handler turns an OpenFlow event into a
call on :class:`~ryu_apps.core.engine.ProvisioningEngine` and hands the plan it
returns to :class:`~ryu_apps.plan_sender.PlanSender`.
"""

from __future__ import annotations

import signal
import time
from typing import Dict, Set

from ryu import cfg
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3

from ryu_apps import openflow, rest_api, rest_notify
from ryu_apps.device_bus import InProcessBus
from ryu_apps.core import lldp
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, RoleError, parse_description
from ryu_apps.core.frames import parse_frame
from ryu_apps.core.identifiers import IdentifierError
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.core.domains import DomainError
from ryu_apps.domain_files import load_domains
from ryu_apps.core.binding import VmState
from ryu_apps.library_check import LibraryChecker
from ryu_apps.library_files import LibraryKeeper
from ryu_apps.ovsdb_watcher import OvsdbWatcher
from ryu_apps.plan_sender import PlanSender, next_xid
from ryu_apps.provisioning_times import ProvisioningTimes
from ryu_apps.scheme_config import load_scheme
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
], group="dynprov")

LLDP_SOURCE_MAC = bytes.fromhex("0e00d9000001")
OFPP_MAX = ofproto_v1_3.OFPP_MAX
OFPP_CONTROLLER = ofproto_v1_3.OFPP_CONTROLLER
TICK_SECONDS = 1.0
#: Seconds a notification waits for the switches to confirm its changes.
NOTIFY_CONFIRM_SECONDS = 5.0


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
    _CONTEXTS = {"wsgi": WSGIApplication}

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
        self.engine = ProvisioningEngine(
            self.library_keeper.current, scheme, domains,
            {name: keeper.current for name, keeper in self.domain_keepers.items()})
        self.lldp_interval = options.lldp_interval
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
        self._threads = [hub.spawn(self._lldp_loop), hub.spawn(self._tick_loop),
                         hub.spawn(self._resync_after_grace, options.reconcile_grace)]
        signal.signal(signal.SIGHUP, lambda *_: hub.spawn(self.reload_library))
        rest_notify.register(self, kwargs["wsgi"])   # before the API's catch-all route
        rest_api.register(self, kwargs["wsgi"])
        # The shared store (issue 6): library and bindings shared by several processes.
        self.store_sync = store_hook.attach(self, options, CONF.ofp_tcp_listen_port)
        self.ovsdb_watchers = [OvsdbWatcher(remote, self._ovsdb_attached,
                                            self._ovsdb_detached, self.logger)
                               for remote in options.ovsdb]
        for watcher in self.ovsdb_watchers:
            watcher.start()

    def _ovsdb_attached(self, dpid: int, port: int, mac: str) -> None:
        received_ns = time.monotonic_ns()
        if self.store_sync is not None and not self.store_sync.accepts_attachment(dpid, mac):
            return  # another process's server (one OVSDB shared by several processes)
        verdict = self.engine.vm_attached(dpid, port, mac, now=time.time())
        if verdict.provisioned is not None:
            self.provisioning_times.detected(verdict.provisioned.mac, received_ns)
        self._log_verdict(verdict, dpid, port)
        self.send_plan(verdict.plan)
        expected = self.engine.incoming.get(mac.lower())
        if self.store_sync is not None and expected is not None and \
                (expected.dpid, expected.port) == (dpid, port):
            self.store_sync.expecting(mac, dpid, port)

    def _ovsdb_detached(self, dpid: int, port: int, mac: str) -> None:
        self.send_plan(self.engine.vm_detached(dpid, port, mac))

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
            self.send_plan(self.bus.deliver(message))

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
        try:
            library = self.library_keeper.reload()
            domain_libraries = {name: keeper.reload()
                                for name, keeper in self.domain_keepers.items()}
        except TemplateValidationError as error:
            self.logger.error("library reload refused, previous library stays:\n%s", error)
            return False, str(error)
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
    def _flow_stats_reply(self, ev) -> None:
        sync = self._collect(ev, lambda s: s.flows_xid, lambda dpid, body: [
            openflow.spec_from_stats(dpid, stats) for stats in body])
        if sync is not None:
            datapath = ev.msg.datapath
            sync.meters_xid = _send_request(datapath, openflow.meters_request(datapath))

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, MAIN_DISPATCHER)
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
            plan.without_deletes()
        self.logger.info("switch %016x up: %s %s, %d dynprov entries found, %d changes",
                         datapath.id, sync.role.value, sync.name, len(sync.observed),
                         plan.flow_count())
        self.send_plan(plan)
        datapath.send_msg(datapath.ofproto_parser.OFPPortDescStatsRequest(datapath, 0))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc_reply(self, ev) -> None:
        dpid = ev.msg.datapath.id
        self.ports[dpid] = {p.port_no for p in ev.msg.body if p.port_no < OFPP_MAX}
        self._probe_switch_ports(dpid)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev) -> None:
        msg = ev.msg
        dpid, port = msg.datapath.id, msg.desc.port_no
        ofp = msg.datapath.ofproto
        if dpid not in self.datapaths or port >= OFPP_MAX:
            return
        if msg.reason == ofp.OFPPR_DELETE or msg.desc.state & ofp.OFPPS_LINK_DOWN:
            self.ports.get(dpid, set()).discard(port)
            self.send_plan(self.engine.port_down(dpid, port,
                                                 deleted=msg.reason == ofp.OFPPR_DELETE))
        else:
            self.ports.setdefault(dpid, set()).add(port)
            self._send_urgent(self.engine.arrival(dpid, port))
            self.send_plan(self.engine.port_up(dpid, port))
            self._send_probe(dpid, port)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def _flow_removed(self, ev) -> None:
        msg = ev.msg
        idle = msg.reason == msg.datapath.ofproto.OFPRR_IDLE_TIMEOUT
        self.send_plan(self.engine.flow_removed(msg.datapath.id, msg.cookie, idle))

    # -- packets -----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev) -> None:
        received_ns = time.monotonic_ns()
        msg = ev.msg
        dpid = msg.datapath.id
        frame = parse_frame(msg.data)
        if dpid not in self.datapaths or frame is None:
            return
        in_port = msg.match["in_port"]
        if frame.ethertype == lldp.ETH_TYPE_LLDP:
            self._probe_in(dpid, in_port, msg.data)
            return
        self._send_urgent(self.engine.arrival(dpid, in_port))
        verdict = self.engine.packet_in(dpid, in_port, frame.eth_src, msg.data,
                                        now=time.time(), sender_ip=frame.sender_ip,
                                        tagged=frame.tagged)
        if verdict.provisioned is not None:
            self.provisioning_times.detected(verdict.provisioned.mac, received_ns)
        self._log_verdict(verdict, dpid, in_port)
        self.send_plan(verdict.plan)

    def _send_urgent(self, plan) -> None:
        """Send what must not wait for the engine's next, longer computation."""
        if not plan.is_empty():
            self.send_plan(plan)

    def _probe_in(self, dpid: int, in_port: int, data: bytes) -> None:
        """A probe proves a cable; a beacon of another process's switch, a shared uplink."""
        origin = lldp.parse_probe(data)
        if origin is None:
            return
        if not lldp.is_beacon(data):
            self.send_plan(self.engine.link_seen(PortRef(*origin), PortRef(dpid, in_port)))
        elif origin[0] not in self.datapaths or origin[0] in self.engine.fabric.switches:
            # a switch connected here but not registered yet: its probe was not
            # taken either; wait for both rather than mistake a cable for the fabric
            self.send_plan(self.engine.shared_uplink_seen(
                PortRef(dpid, in_port), f"switch {origin[0]:016x} port {origin[1]}"))

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
    def _barrier_reply(self, ev) -> None:
        self.sender.barrier_reply(ev.msg.datapath.id, ev.msg.xid)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev) -> None:
        msg = ev.msg
        self.logger.error("switch %016x refused message xid %d: type %d code %d: %s",
                          msg.datapath.id or 0, msg.xid, msg.type, msg.code,
                          msg.data[:64].hex())

    # -- periodic work -----------------------------------------------------
    def _send_probe(self, dpid: int, port: int) -> None:
        self._send_probes(dpid, [port])

    def _send_probes(self, dpid: int, ports) -> None:
        """One LLDP probe out of each port, and a beacon after it out of each port of
        a switch without VMs that leads to no managed switch; all in one write."""
        datapath = self.datapaths.get(dpid)
        if datapath is None or not ports:
            return
        frames = []
        for port in ports:
            frames.append((port, lldp.build_probe(dpid, port, LLDP_SOURCE_MAC)))
            if self._may_reach_shared_fabric(dpid, port):
                frames.append((port, lldp.build_beacon(dpid, port, LLDP_SOURCE_MAC)))
        datapath.send(b"".join(
            openflow.with_xid(openflow.encoded_packet_out(OFPP_CONTROLLER, port, frame),
                              next_xid(datapath))
            for port, frame in frames))

    def _may_reach_shared_fabric(self, dpid: int, port: int) -> bool:
        fabric = self.engine.fabric
        role = fabric.role(dpid)
        if role is None or role.hosts_vms:
            return False
        end = PortRef(dpid, port)
        return fabric.peer(end) is None or fabric.is_shared_uplink(end)

    def _lldp_loop(self) -> None:
        """Probe every port but those with a VM behind them (a link there would
        first take the port down, which drops the VM and probes the port again)."""
        while True:
            hub.sleep(self.lldp_interval)
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

    def _tick_loop(self) -> None:
        while True:
            hub.sleep(TICK_SECONDS)
            self.send_plan(self.engine.tick(time.time()))


def _send_request(datapath, request) -> int:
    """Send a request with a fresh transaction id; that id."""
    datapath.set_xid(request)
    datapath.send_msg(request)
    return request.xid
