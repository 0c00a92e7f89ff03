"""The app's handlers for switch messages: connections, read-backs, ports, packets, errors."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Set

from ryu_apps.app.framework import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    ofp_event,
    ofproto_v1_3,
    set_ev_cls,
)

from ryu_apps.app.readback import CONNECTED
from ryu_apps.app.repairs import guarded
from ryu_apps.app.state_changes import SWITCH
from ryu_apps.app.verdicts import frame_in, verdict_label
from ryu_apps.core import address_guard, dhcp_snooping, lldp
from ryu_apps.core.pipeline import Table
from ryu_apps.core.template_model import ETH_IPV6

OFPP_MAX = ofproto_v1_3.OFPP_MAX


class SwitchEventHandlers:
    """Mixed into :class:`ryu_apps.provisioner.DynprovProvisioner`: each handler turns
    a switch's message into an engine call and sends the plan it returns."""

    # What the app provides (ryu_apps.provisioner).
    logger: Any
    engine: Any
    datapaths: Dict[int, Any]
    _connecting: Dict[int, Any]
    ports: Dict[int, Set[int]]
    readbacks: Any
    repairs: Any
    sender: Any
    discovery: Any
    provisioning_times: Any
    metrics: Any
    vm_log: Any
    _fault_mac: str
    send_plan: Callable[..., None]
    state_changes: Any
    _reconcile_switch: Callable[[int, str], None]
    _reconciled: Callable[[Any], None]
    _reconcile_refused: Callable[[float], None]
    _probe_switch_ports: Callable[[int], None]
    ct_probes: Any
    meter_retries: Any

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def _state_change(self, ev) -> None:
        datapath, dpid = ev.datapath, ev.datapath.id
        if ev.state == MAIN_DISPATCHER:
            self.metrics.switch_connected(True)
            self._connecting[dpid] = datapath
            self.ct_probes.probe(datapath)   # answered before the read-back's replies
            self._reconcile_switch(dpid, CONNECTED[dpid in self.engine.fabric.switches])
            return
        if self._connecting.get(dpid) is datapath:   # gone before it was read back
            del self._connecting[dpid]
            self.readbacks.forget(dpid)
            self.ct_probes.forget(dpid)
        if dpid is not None and self.datapaths.get(dpid) is datapath:
            self.logger.warning("switch %016x disconnected; its flows stay in place", dpid)
            self.metrics.switch_connected(False)
            del self.datapaths[dpid]
            self.readbacks.forget(dpid)
            self.repairs.forget(dpid)
            self.sender.forget(dpid)
            self.send_plan(self.engine.switch_down(dpid))
            self.state_changes.publish((SWITCH,))

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
        self.engine.ports_seen(dpid, self.ports[dpid])
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
            self.send_plan(self.engine.port_up(dpid, port, now=time.time()))
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
            self.metrics.packet_in("malformed")
            self.malformed(dpid, "packet-in without a frame or a valid in_port")
            return
        frame, in_port = found
        if frame.ethertype == lldp.ETH_TYPE_LLDP:
            self.metrics.packet_in("lldp")
            self.send_plan(self.discovery.received(self.engine, dpid, in_port, msg.data,
                                                   time.time()))
            return
        if dhcp_snooping.punted(getattr(msg, "table_id", None), msg.data):
            self.metrics.packet_in("dhcp")
            self.send_plan(self.engine.dhcp_seen(dpid, in_port, msg.data, now=time.time()))
            return   # the pipeline delivered it: the copy is for snooping only
        if getattr(msg, "table_id", None) == Table.ANTI_SPOOF and frame.ethertype == ETH_IPV6 \
                and self._ipv6_source(dpid, in_port, frame.eth_src, msg.data):
            return
        if getattr(msg, "table_id", None) == Table.ANTI_SPOOF and (
                self._guard_refused(dpid, in_port, frame.eth_src, msg.data)
                or frame.ethertype == ETH_IPV6):
            self.metrics.packet_in("guard_refused")
            return   # a guard's punt, for its log only: the engine never sees it
        self._send_urgent(self.engine.arrival(dpid, in_port))
        verdict = self.engine.packet_in(dpid, in_port, frame.eth_src, msg.data,
                                        now=time.time(), sender_ip=frame.sender_ip,
                                        tagged=frame.tagged, eth_dst=frame.eth_dst)
        if verdict.provisioned is not None:
            self.provisioning_times.detected(verdict.provisioned.mac, received_ns)
        self.vm_log.verdict(verdict, dpid, in_port)
        if verdict.address_refused is not None:   # its first IPv4 source is another VM's
            self._log_refusal(dpid, in_port, frame.eth_src, ("IPv4",) + verdict.address_refused)
        self.metrics.packet_in(verdict_label(verdict))
        if self._fault_mac and frame.eth_src == self._fault_mac:
            self._fault_mac = ""   # once: the engine changed, its plan is never sent
            raise RuntimeError(f"fault injected for VM {frame.eth_src} (fault_injection_mac)")
        self.send_plan(verdict.plan)

    def _ipv6_source(self, dpid: int, port: int, mac: str, data: bytes) -> bool:
        """Whether this was a ``bind_ipv6: first_seen`` VM's first global IPv6 source
        (core/ipv6_binding.py): bound and passed on, or refused and logged once."""
        verdict = self.engine.ipv6_source(dpid, port, mac, data)
        if verdict is None:
            return False
        if verdict.refused is not None:
            self.metrics.packet_in("guard_refused")
            self._log_refusal(dpid, port, mac, ("IPv6",) + verdict.refused)
        else:
            self.metrics.packet_in("known")
        self.send_plan(verdict.plan)
        return True

    def _log_refusal(self, dpid: int, port: int, mac: str,
                     refused: tuple[str, str, str]) -> None:
        guard, kind, detail = refused
        if self.repairs.first_failure(f"guard {mac} {kind}", 0.0, quiet=-1.0):
            self.logger.warning("%s guard dropped %s from VM %s on switch %016x port %d "
                                "(%s); logged once per VM and kind", guard, with_article(kind),
                                mac, dpid, port, detail)

    def _guard_refused(self, dpid: int, port: int, mac: str, data: bytes) -> bool:
        """Whether a guard dropped this frame a VM sent (the IPv6 guard, core/ipv6_guard.py;
        the rogue-DHCP-server guard, core/address_guard.py): logged once per VM and kind."""
        binding = self.engine.bindings.get(mac)
        template = self.engine.template_of(binding) if binding is not None else None
        refused = address_guard.guard_refusal(
            data, template.virtual_switch if template is not None else None)
        if refused is None:
            return False
        self._log_refusal(dpid, port, mac, refused)
        return True

    def conntrack_found(self, dpid: int, supported: bool, detail: str) -> None:
        """A switch's connection-tracking probe was answered: the engine is told."""
        changed = self.engine.conntrack_found(dpid, supported, detail)
        if not supported and changed:
            self.logger.warning("switch %016x has no connection tracking (%s): VMs of "
                                "stateful templates (virtual_switch.stateful: true) are "
                                "refused on it", dpid, detail)

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
        if self.ct_probes.barrier(ev.msg):
            return
        self.sender.barrier_reply(ev.msg.datapath.id, ev.msg.xid)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def _error(self, ev) -> None:
        """A switch refused a message: what it holds may differ from what the engine
        believes, so it is reconciled (ryu_apps.app.repairs says when)."""
        msg = ev.msg
        if self.ct_probes.error(msg):
            return   # the connection-tracking probe's answer (app/datapath_features.py)
        dpid = msg.datapath.id
        if self.meter_retries.error(dpid, msg.type, msg.code, bytes(msg.data or b"")):
            return   # a meter write the switch wanted as the other command (meter_writes.py)
        self.metrics.openflow_error(msg.type)
        self.logger.error("switch %016x refused message xid %d: type %d code %d: %s",
                          dpid or 0, msg.xid, msg.type, msg.code,
                          bytes(msg.data or b"")[:64].hex())
        if dpid in self.datapaths:
            self.repairs.switch_refused(dpid, f"OpenFlow error type {msg.type} code {msg.code}")
            self._reconcile_refused(time.time())


def with_article(kind: str) -> str:
    """``kind`` (a guard's refusal: "spoofed source", "address bound to another VM",
    "DHCP server message", ...) after its indefinite article, "a" or "an"."""
    return f"{'an' if kind[:1].lower() in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind}"
