"""Unit costs behind the throughput figure, measured in this process (no controller).

- Ryu's OpenFlow parser: µs to parse one PACKET_IN and one BARRIER_REPLY.
- Rendering one flow-mod: through Ryu's classes (objects, then serialize) and
  through the edge's direct encoder (cold, then cached).
- The edge per VM: its plan turned into bytes on the datapaths' queues, through
  Ryu's classes with one send per message (before) and through the direct
  encoder with one write per switch (after).
- The generator's own CPU per VM in dynprov mode (its ceiling per process).
- The pure engine: µs per new VM as the number of bindings grows, with the
  emulated topology (no Ryu, no sockets): the core's own ceiling.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, List

from ryu.ofproto import ofproto_parser, ofproto_v1_3 as ofp, ofproto_v1_3_parser as parser

from benchmarks.ofload import frames, wire
from benchmarks.ofload.reference import engine_for
from benchmarks.ofload.topology import FIRST_VM_PORT, datacenter
from ryu_apps.app import openflow, openflow_bytes
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.identifiers import format_mac


class _Datapath:
    ofproto = ofp
    ofproto_parser = parser
    id = 1


def _per_call_us(function: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return 1e6 * (time.perf_counter() - started) / repeat


def ryu_parse_costs(repeat: int = 3000) -> Dict[str, float]:
    """µs per message in Ryu's OpenFlow 1.3 parser."""
    frame = frames.first_frame("ipv4", frames.vm_mac(0x00FA, 1), 1)
    messages = {"packet_in": wire.packet_in(1, 1000, frame), "barrier_reply":
                wire.barrier_reply(2)}
    costs = {}
    for name, data in messages.items():
        def parse(data=data):
            version, msg_type, length, xid = ofproto_parser.header(data)
            return ofproto_parser.msg(_Datapath, version, msg_type, length, xid, data)
        costs[f"ryu_parse_{name}_us"] = _per_call_us(parse, repeat)
    return costs


def render_costs(specs: List[FlowSpec], repeat: int = 20) -> Dict[str, float]:
    """µs per flow-mod: Ryu objects + serialize, vs the direct encoder."""
    def ryu_render_serialize():
        for spec in specs:
            msg = openflow.flow_add(_Datapath, spec)
            msg.xid = 0
            msg.serialize()

    def encode_cold():
        for spec in specs:
            openflow_bytes._encode_flow_add(spec)

    def encode_cached():
        for spec in specs:
            openflow_bytes.encoded_flow_add(spec)

    encode_cached()   # fill the cache
    count = len(specs)
    return {
        "flow_mods": count,
        "ryu_render_and_serialize_us": _per_call_us(ryu_render_serialize, repeat) / count,
        "direct_encode_us": _per_call_us(encode_cold, repeat) / count,
        "direct_encode_cached_us": _per_call_us(encode_cached, repeat) / count,
    }


class _RecordingDatapath(_Datapath):
    """A datapath that keeps what would go on the wire."""

    def __init__(self, dpid: int) -> None:
        self.id, self.xid, self.sent = dpid, 0, []

    def set_xid(self, msg) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg) -> None:
        if msg.xid is None:
            self.set_xid(msg)
        msg.serialize()
        self.send(msg.buf)

    def send(self, buf) -> None:
        self.sent.append(buf)


def _send_through_ryu_classes(datapaths, plan) -> None:
    """What PlanSender did before: Ryu message objects, one send per message."""
    for dpid, changes in plan.changes.items():
        datapath = datapaths[dpid]
        for message in openflow.messages_for(datapath, changes):
            datapath.send_msg(message)
        barrier = parser.OFPBarrierRequest(datapath)
        datapath.set_xid(barrier)
        datapath.send_msg(barrier)


def edge_costs(plans, repeat: int = 5) -> Dict[str, float]:
    """µs per VM to turn its plan into bytes for the switches, before and after."""
    from ryu_apps.app.plan_sender import PlanSender

    import logging
    dpids = {dpid for plan in plans for dpid in plan.changes}
    datapaths = {dpid: _RecordingDatapath(dpid) for dpid in dpids}
    sender = PlanSender(datapaths, logging.getLogger("costs"))

    def through_ryu():
        for plan in plans:
            _send_through_ryu_classes(datapaths, plan)

    def direct():
        openflow_bytes._ENCODED.clear()   # a VM's flows are new: no cache hits across runs
        for plan in plans:
            sender.send(plan)
    before = _per_call_us(through_ryu, repeat) / len(plans)
    after = _per_call_us(direct, repeat) / len(plans)
    return {"edge_us_per_vm_ryu_classes": before, "edge_us_per_vm_direct": after,
            "flow_mods_per_vm_in_sample": sum(p.flow_count() for p in plans) / len(plans)}


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass


def generator_costs(plans, repeat: int = 3, access: int = 4,
                    servers: int = 4) -> Dict[str, float]:
    """µs of generator CPU per VM: parsing its plan's bytes, counting, answering barriers.

    The bytes are exactly what dynprov sends (direct encoder); the switches are
    the generator's own, fed in-process without sockets. 1e6 / this is the
    VMs/s one generator process can absorb in dynprov mode.
    """
    import asyncio
    from collections import Counter
    from benchmarks.ofload.driver import Load, LoadConfig, Vm
    from benchmarks.ofload.switch import EmulatedSwitch

    async def run() -> float:
        load = Load(LoadConfig(access=access, servers=servers, pool=len(plans)))
        # The reference engine used datapath ids from 0; map them onto the load's.
        offset = load.config.dpid_base
        for plan_switch in load.topology.switches:
            switch = EmulatedSwitch(plan_switch, load, load._deliver)
            switch.transport = _NullTransport()
            load.switches[plan_switch.dpid] = switch
            load._unbarriered[plan_switch.dpid] = Counter()
        streams, vms = [], []
        for n, plan in enumerate(plans):   # the VMs engine_costs made, in its order
            server = load.topology.servers[n % len(load.topology.servers)]
            mac = frames.vm_mac((0x00FA, 0x00FC, 0x00FE)[n % 3], n + 1)
            vms.append((mac, server.dpid, load.topology.access_of[server.dpid]))
            chunks = {}
            for dpid, changes in plan.changes.items():
                data = (b"".join(openflow_bytes.encoded_messages(changes))
                        + openflow_bytes.barrier_request())
                chunks[dpid + offset] = data
            streams.append(chunks)
        elapsed = 0.0
        for _ in range(repeat):
            load.by_binding.clear()
            load.completed.clear()
            load.outstanding = {mac: Vm(mac, 0, 0, server, access_dpid, 0, b"")
                                for mac, server, access_dpid in vms}
            started = time.perf_counter()
            for chunks in streams:
                for dpid, data in chunks.items():
                    load.switches[dpid].data_received(data)
            elapsed += time.perf_counter() - started
            if len(load.completed) != len(vms):
                raise RuntimeError(f"generator replay completed {len(load.completed)} of "
                                   f"{len(vms)} VMs")
        return 1e6 * elapsed / (repeat * len(streams))

    us = asyncio.run(run())
    return {"generator_us_per_vm_dynprov_mode": us,
            "generator_ceiling_vms_per_second_per_process": 1e6 / us}


def engine_costs(templates: Path, access: int = 4, servers: int = 4, vms: int = 3000,
                 step: int = 500) -> Dict[str, object]:
    """µs per new VM in the pure engine, per block of ``step`` VMs as bindings grow."""
    topo = datacenter(access, servers, dpid_base=0)
    engine = engine_for(topo, templates)
    template_ids = (0x00FA, 0x00FC, 0x00FE)
    blocks, specs, plans = [], [], []
    started = time.perf_counter()
    for n in range(vms):
        server = topo.servers[n % len(topo.servers)]
        mac = format_mac(frames.vm_mac(template_ids[n % 3], n + 1))
        verdict = engine.packet_in(server.dpid, FIRST_VM_PORT + n, mac, b"", now=0.0)
        if n < 30:
            for changes in verdict.plan.changes.values():
                specs += [s for s in changes.adds if isinstance(s, FlowSpec)]
        if n < 200:
            plans.append(verdict.plan)
        if (n + 1) % step == 0:
            now = time.perf_counter()
            blocks.append({"bindings": n + 1, "us_per_vm": 1e6 * (now - started) / step})
            started = now
    return {"blocks": blocks, "sample_specs": specs, "sample_plans": plans}


def measure(templates: Path) -> dict:
    """Every unit cost, as one dict."""
    engine = engine_costs(templates)
    specs, plans = engine.pop("sample_specs"), engine.pop("sample_plans")
    return {**ryu_parse_costs(), **render_costs(specs), **edge_costs(plans),
            **generator_costs(plans),
            "engine_us_per_vm": engine["blocks"]}
