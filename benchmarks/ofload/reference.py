"""What dynprov should send for one VM, computed by its own pure engine.

The load generator counts a VM as provisioned once at least this many mods of
its binding reached its server and access switches; the integration test
checks the counts match exactly. Uses ``ryu_apps.core`` (no Ryu, no sockets).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Tuple

from benchmarks.ofload import frames
from benchmarks.ofload.topology import FIRST_VM_PORT, Topology, datacenter
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flowspec import FlowSpec, MeterSpec
from ryu_apps.core.identifiers import format_mac
from ryu_apps.core.pipeline import BINDING_METER_BASE
from ryu_apps.loaders.library_files import load_library
from ryu_apps.loaders.scheme_config import load_scheme

BINDING_COOKIE_HEAD = 0xD91


def engine_for(topology: Topology, templates: Path,
               scheme: str = "prefix/16") -> ProvisioningEngine:
    """A fresh engine that knows the emulated switches and links."""
    engine = ProvisioningEngine(load_library(templates), load_scheme(scheme))
    for plan in topology.switches:
        engine.switch_up(plan.dpid, Role(plan.role), plan.name, [], now=0.0)
    for (a, b) in topology.peers.items():
        engine.link_seen(PortRef(*a), PortRef(*b), now=0.0)
    return engine


def binding_mods(plan, binding_id: int) -> Counter:
    """Per switch: the flow ADDs with this binding's cookie and its meter ADDs."""
    counts: Counter = Counter()
    for dpid, changes in plan.changes.items():
        for spec in changes.adds:
            if isinstance(spec, FlowSpec):
                if spec.cookie >> 52 == BINDING_COOKIE_HEAD and spec.cookie & ((1 << 36) - 1) \
                        == binding_id:
                    counts[dpid] += 1
            elif isinstance(spec, MeterSpec) and \
                    spec.meter_id == BINDING_METER_BASE + binding_id:
                counts[dpid] += 1
    return counts


def expected_binding_mods(templates: Path, template_ids: Iterable[int],
                          access: int = 1, servers: int = 1) -> Dict[int, Tuple[int, int]]:
    """Per template: (mods on the server switch, on its access switch) of a fresh VM."""
    topology = datacenter(access, servers, dpid_base=0)
    server = topology.servers[0]
    expected = {}
    for n, template_id in enumerate(template_ids):
        engine = engine_for(topology, templates)
        mac = frames.vm_mac(template_id, n + 1)
        verdict = engine.packet_in(server.dpid, FIRST_VM_PORT, format_mac(mac),
                                   frames.first_frame("ipv4", mac, n + 1), now=0.0)
        if verdict.provisioned is None:
            raise ValueError(f"template 0x{template_id:04X} of {templates}: a VM with MAC "
                             f"{format_mac(mac)} is not provisioned: {verdict.refusal}")
        counts = binding_mods(verdict.plan, verdict.provisioned.binding_id)
        expected[template_id] = (counts[server.dpid], counts[topology.access_of[server.dpid]])
    return expected
