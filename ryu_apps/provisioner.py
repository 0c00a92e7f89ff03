"""The dynprov Ryu app: a thin shell around the pure provisioning engine.

Launch: ``ryu-manager ryu_apps.provisioner`` (options in a ``[dynprov]``
section of ``--config-file``). Each handler turns an OpenFlow event into a
call on :class:`~ryu_apps.core.engine.ProvisioningEngine` and sends the plan it
returns: flow-mods, then a barrier per switch, then (once every barrier of the
plan is answered) the packet-outs that re-inject a new VM's first packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Set, Tuple

from ryu import cfg
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from ryu.app.wsgi import WSGIApplication
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3

from ryu_apps import openflow, rest_api
from ryu_apps.core import lldp
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, RoleError, parse_description
from ryu_apps.core.flow_plan import PacketOut, Plan
from ryu_apps.core.identifiers import IdentifierError
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.library_files import LibraryKeeper
from ryu_apps.scheme_config import load_scheme

CONF = cfg.CONF
CONF.register_opts([
    cfg.StrOpt("templates", default="templates",
               help="Template library: a directory of YAML files, or one file."),
    cfg.StrOpt("identifier_scheme", default="prefix/16",
               help="How a VM MAC selects a template: prefix/16, prefix/12, "
                    "interleave, or table:PATH."),
    cfg.FloatOpt("lldp_interval", default=2.0,
                 help="Seconds between LLDP probes on every port (link discovery)."),
], group="dynprov")

LLDP_SOURCE_MAC = bytes.fromhex("0e00d9000001")
OFPP_MAX = 0xFFFFFF00


@dataclass
class _Batch:
    """Barriers still awaited before a plan's packet-outs may be sent."""

    waiting: Set[Tuple[int, int]] = field(default_factory=set)
    packet_outs: List[PacketOut] = field(default_factory=list)


class DynprovProvisioner(app_manager.RyuApp):
    """Detects VMs from their packets and provisions them from templates."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        options = CONF.dynprov
        try:
            self.library_keeper = LibraryKeeper(options.templates)
            scheme = load_scheme(options.identifier_scheme)
        except (TemplateValidationError, IdentifierError) as error:
            raise SystemExit(f"dynprov: cannot start: {error}") from None
        self.engine = ProvisioningEngine(self.library_keeper.current, scheme)
        self.lldp_interval = options.lldp_interval
        self.datapaths: Dict[int, object] = {}
        self.ports: Dict[int, Set[int]] = {}
        self._observed: Dict[int, list] = {}
        self._roles: Dict[int, tuple] = {}
        self._batches: Dict[Tuple[int, int], _Batch] = {}
        self.logger.info(
            "dynprov: %d templates from %s, identifier scheme %s",
            len(self.library_keeper.current), options.templates,
            options.identifier_scheme)
        self._lldp_thread = hub.spawn(self._lldp_loop)
        rest_api.register(self, kwargs["wsgi"])

    def reload_library(self) -> tuple[bool, str]:
        """Load the library again; on failure the old one stays in force.

        Returns (True, summary) or (False, every validation error).
        """
        try:
            library = self.library_keeper.reload()
        except TemplateValidationError as error:
            self.logger.error("library reload refused, previous library stays: %s", error)
            return False, str(error)
        self.engine.library = library
        message = f"library reloaded: {len(library)} templates"
        self.logger.info("%s", message)
        return True, message

    # -- connection lifecycle ----------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev) -> None:
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            parser = datapath.ofproto_parser
            datapath.send_msg(parser.OFPDescStatsRequest(datapath, 0))
        elif datapath.id is not None and self.datapaths.get(datapath.id) is datapath:
            self.logger.warning("switch %016x disconnected; its flows stay in place",
                                datapath.id)
            del self.datapaths[datapath.id]
            self._forget_batches(datapath.id)
            self._send(self.engine.switch_down(datapath.id))

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
        self._roles[datapath.id] = parsed
        self._observed[datapath.id] = []
        datapath.send_msg(openflow.our_flows_request(datapath))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats_reply(self, ev) -> None:
        datapath = ev.msg.datapath
        observed = self._observed.get(datapath.id)
        if observed is None:
            return
        observed.extend(openflow.spec_from_stats(datapath.id, s) for s in ev.msg.body)
        if ev.msg.flags & datapath.ofproto.OFPMPF_REPLY_MORE:
            return
        del self._observed[datapath.id]
        role, name = self._roles[datapath.id]
        self.datapaths[datapath.id] = datapath
        plan = self.engine.switch_up(datapath.id, role, name, observed)
        self.logger.info("switch %016x up: %s %s, %d dynprov flows found, %d changes",
                         datapath.id, role.value, name, len(observed), plan.flow_count())
        self._send(plan)
        datapath.send_msg(datapath.ofproto_parser.OFPPortDescStatsRequest(datapath, 0))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc_reply(self, ev) -> None:
        dpid = ev.msg.datapath.id
        self.ports[dpid] = {p.port_no for p in ev.msg.body if p.port_no < OFPP_MAX}
        for port in sorted(self.ports[dpid]):
            self._send_probe(dpid, port)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev) -> None:
        msg = ev.msg
        dpid, port = msg.datapath.id, msg.desc.port_no
        ofp = msg.datapath.ofproto
        if dpid not in self.datapaths or port >= OFPP_MAX:
            return
        link_down = msg.desc.state & ofp.OFPPS_LINK_DOWN
        if msg.reason == ofp.OFPPR_DELETE or link_down:
            self.ports.get(dpid, set()).discard(port)
            self._send(self.engine.port_down(dpid, port))
        else:
            self.ports.setdefault(dpid, set()).add(port)
            self._send_probe(dpid, port)

    # -- packets -----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev) -> None:
        msg = ev.msg
        dpid = msg.datapath.id
        if dpid not in self.datapaths:
            return
        data = msg.data
        if len(data) < 14:
            return
        in_port = msg.match["in_port"]
        ethertype = struct.unpack("!H", data[12:14])[0]
        if ethertype == lldp.ETH_TYPE_LLDP:
            self._lldp_in(dpid, in_port, data)
            return
        verdict = self.engine.packet_in(dpid, in_port, _mac_text(data[6:12]), data)
        if verdict.refusal and verdict.first_refusal:
            refusal = verdict.refusal
            template = "none" if refusal.template_id is None else str(refusal.template_id)
            self.logger.warning(
                "quarantined VM MAC %s on switch %016x port %d: decoded template %s: %s",
                refusal.mac, dpid, in_port, template, refusal.reason)
        if verdict.provisioned:
            b = verdict.provisioned
            self.logger.info(
                "provisioned VM %s on switch %016x port %d: template %d '%s', vlan %d, "
                "binding %d", b.mac, b.dpid, b.port, b.template_id, b.template_name,
                b.vlan, b.binding_id)
        self._send(verdict.plan)

    def _lldp_in(self, dpid: int, in_port: int, data: bytes) -> None:
        origin = lldp.parse_probe(data)
        if origin is None:
            return
        self._send(self.engine.link_seen(PortRef(*origin), PortRef(dpid, in_port)))

    def _send_probe(self, dpid: int, port: int) -> None:
        datapath = self.datapaths.get(dpid)
        if datapath is None:
            return
        frame = lldp.build_probe(dpid, port, LLDP_SOURCE_MAC)
        datapath.send_msg(openflow.packet_out_to_port(datapath, port, frame))

    def _lldp_loop(self) -> None:
        while True:
            hub.sleep(self.lldp_interval)
            for dpid, ports in list(self.ports.items()):
                for port in sorted(ports):
                    self._send_probe(dpid, port)

    # -- sending plans -----------------------------------------------------
    def _send(self, plan: Plan) -> None:
        """Send flow changes and a barrier per switch; packet-outs after all barriers."""
        for note in plan.notes:
            self.logger.info("%s", note)
        batch = _Batch(packet_outs=list(plan.packet_outs))
        for dpid, changes in plan.changes.items():
            datapath = self.datapaths.get(dpid)
            if datapath is None or not changes:
                continue  # a disconnected switch is reconciled when it returns
            for message in openflow.messages_for(datapath, changes.adds, changes.deletes):
                datapath.send_msg(message)
            barrier = datapath.ofproto_parser.OFPBarrierRequest(datapath)
            datapath.set_xid(barrier)
            datapath.send_msg(barrier)
            batch.waiting.add((dpid, barrier.xid))
            self._batches[(dpid, barrier.xid)] = batch
        if not batch.waiting:
            self._release(batch)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev) -> None:
        key = (ev.msg.datapath.id, ev.msg.xid)
        batch = self._batches.pop(key, None)
        if batch is None:
            return
        batch.waiting.discard(key)
        if not batch.waiting:
            self._release(batch)

    def _release(self, batch: _Batch) -> None:
        for out in batch.packet_outs:
            datapath = self.datapaths.get(out.dpid)
            if datapath is not None:
                datapath.send_msg(
                    openflow.packet_out_to_pipeline(datapath, out.in_port, out.data))

    def _forget_batches(self, dpid: int) -> None:
        for key in [k for k in self._batches if k[0] == dpid]:
            batch = self._batches.pop(key)
            batch.waiting.discard(key)
            if not batch.waiting:
                self._release(batch)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev) -> None:
        msg = ev.msg
        self.logger.error("switch %016x refused message xid %d: type %d code %d: %s",
                          msg.datapath.id or 0, msg.xid, msg.type, msg.code,
                          msg.data[:64].hex())


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
