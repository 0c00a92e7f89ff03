"""Unit costs behind the throughput figure, measured in this process (no controller).

- Ryu's OpenFlow parser: µs to parse one PACKET_IN and one BARRIER_REPLY.
- Rendering one flow-mod: through Ryu's classes (objects, then serialize) and
  through the edge's direct encoder (cold, then cached).
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
from ryu_apps import openflow
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
            openflow._encode_flow_add(spec)

    def encode_cached():
        for spec in specs:
            openflow.encoded_flow_add(spec)

    encode_cached()   # fill the cache
    count = len(specs)
    return {
        "flow_mods": count,
        "ryu_render_and_serialize_us": _per_call_us(ryu_render_serialize, repeat) / count,
        "direct_encode_us": _per_call_us(encode_cold, repeat) / count,
        "direct_encode_cached_us": _per_call_us(encode_cached, repeat) / count,
    }


def engine_costs(templates: Path, access: int = 4, servers: int = 4, vms: int = 3000,
                 step: int = 500) -> Dict[str, object]:
    """µs per new VM in the pure engine, per block of ``step`` VMs as bindings grow."""
    topo = datacenter(access, servers, dpid_base=0)
    engine = engine_for(topo, templates)
    template_ids = (0x00FA, 0x00FC, 0x00FE)
    blocks, specs = [], []
    started = time.perf_counter()
    for n in range(vms):
        server = topo.servers[n % len(topo.servers)]
        mac = format_mac(frames.vm_mac(template_ids[n % 3], n + 1))
        verdict = engine.packet_in(server.dpid, FIRST_VM_PORT + n, mac, b"", now=0.0)
        if n < 30:
            for changes in verdict.plan.changes.values():
                specs += [s for s in changes.adds if isinstance(s, FlowSpec)]
        if (n + 1) % step == 0:
            now = time.perf_counter()
            blocks.append({"bindings": n + 1, "us_per_vm": 1e6 * (now - started) / step})
            started = now
    return {"blocks": blocks, "sample_specs": specs}


def measure(templates: Path) -> dict:
    """Every unit cost, as one dict."""
    engine = engine_costs(templates)
    specs = engine.pop("sample_specs")
    return {**ryu_parse_costs(), **render_costs(specs), "engine_us_per_vm": engine["blocks"]}
