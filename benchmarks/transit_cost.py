"""Per-VM state on the switches between servers, and what a new VM costs each switch.

Drives the pure core (:class:`ryu_apps.core.engine.ProvisioningEngine`) in one
process, as the Ryu app does, and prints:

- on the demo topology (``topologies/dynprov_topo.py``: f1, e1, a1, a2, four
  servers, two VMs each, out1 behind the edge) and on the generated data
  center of ``benchmarks/scale_bed.py`` (2 fabric switches, 40 servers per access
  switch, 30 VMs per server): the per-VM flows (cookie kind "binding") and the
  per-VLAN flows on every switch that hosts no VMs, by role;
- for one new VM: the flow-mods and bytes (OpenFlow 1.3, as
  ``app/openflow_bytes.py`` encodes them) its plan sends each switch, and how
  many switches get a barrier (one per switch the plan touches);
- flooding: the bytes and flow-mods a new VM of VLAN 100 costs when 1, 10 and
  100 VMs of that VLAN are already present on its server.

Run: ``python -m benchmarks.transit_cost [--sizes 1000,10000,50000]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

from benchmarks.common import format_table, print_machine

ROOT = Path(__file__).resolve().parent.parent
F1, E1, A1, A2 = 0x100, 0x300, 0x201, 0x202
DEMO_SERVERS = {0x1101: A1, 0x1102: A1, 0x1201: A2, 0x1202: A2}
DEMO_TEMPLATES = (250, 252, 254)    # web, database, management, in turn
UPLINK = 100


def _engine():
    from ryu_apps.core.engine import ProvisioningEngine
    from ryu_apps.core.identifiers import PrefixScheme
    from ryu_apps.loaders.library_files import load_library
    return ProvisioningEngine(load_library(ROOT / "templates"), PrefixScheme(16))


def _mac(template: int, serial: int) -> str:
    value = (template << 32) | serial
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def _provision(engine, dpid: int, port: int, mac: str):
    verdict = engine.packet_in(dpid, port, mac, b"", now=0.0)
    engine.confirm(verdict.plan.confirms)
    return verdict.plan


def demo_engine():
    """The demo topology in the engine, every VM and out1 provisioned."""
    from ryu_apps.core.fabric import PortRef, Role
    engine = _engine()
    names = {F1: ("f1", Role.FABRIC), E1: ("e1", Role.EDGE), A1: ("a1", Role.ACCESS),
             A2: ("a2", Role.ACCESS)}
    names.update({d: (f"s{d >> 8 & 0xF}{d & 0xF}", Role.SERVER) for d in DEMO_SERVERS})
    for dpid, (name, role) in names.items():
        engine.switch_up(dpid, role, name, [], now=0.0)
    engine.link_seen(PortRef(E1, UPLINK), PortRef(F1, 3), now=0.0)
    engine.link_seen(PortRef(A1, UPLINK), PortRef(F1, 1), now=0.0)
    engine.link_seen(PortRef(A2, UPLINK), PortRef(F1, 2), now=0.0)
    for i, (server, access) in enumerate(sorted(DEMO_SERVERS.items())):
        engine.link_seen(PortRef(server, UPLINK), PortRef(access, 1 + i % 2), now=0.0)
    serial = 0
    for server in sorted(DEMO_SERVERS):
        for port in (1, 2):
            serial += 1
            _provision(engine, server, port, _mac(DEMO_TEMPLATES[(serial - 1) % 3], serial))
    _provision(engine, E1, 1, _mac(242, 1))
    return engine, names


def per_switch_state(engine, dpids: List[int]) -> Dict[int, Tuple[int, int]]:
    """(per-VM flows, per-VLAN flows) on each switch."""
    from ryu_apps.core.cookies import CookieKind, decode_cookie
    found = {}
    for dpid in dpids:
        kinds = [decode_cookie(f.cookie) for f in engine.state.desired.on_switch(dpid)]
        found[dpid] = (sum(1 for k in kinds if k and k.kind is CookieKind.BINDING),
                       sum(1 for k in kinds if k and k.kind is CookieKind.VLAN))
    return found


def plan_cost(plan) -> Dict[int, Tuple[int, int]]:
    """(flow-mods and meter-mods, bytes) the plan sends each switch it touches."""
    from ryu_apps.app.openflow_bytes import encoded_messages
    cost = {}
    for dpid, changes in plan.changes.items():
        if changes:
            messages = encoded_messages(changes)
            cost[dpid] = (len(messages), sum(map(len, messages)))
    return cost


def report_demo() -> None:
    engine, names = demo_engine()
    transit = [d for d, (_, role) in names.items() if not role.hosts_vms]
    state = per_switch_state(engine, sorted(transit))
    vms = len(engine.state.table.bindings)
    print(f"\n== demo topology: {vms} VMs (out1 included), root "
          f"{names[_root(engine, F1)][0]}")
    rows = [[names[d][0], names[d][1].value, *state[d]] for d in sorted(transit)]
    print(format_table(["switch", "role", "per-VM flows", "per-VLAN flows"], rows))
    plan = _provision(engine, 0x1101, 7, _mac(250, 99))
    cost = plan_cost(plan)
    rows = [[names[d][0], *cost.get(d, (0, 0))] for d in sorted(names)]
    print("a new web VM on s11: messages (+1 barrier per switch touched)")
    print(format_table(["switch", "mods", "bytes"], rows))


def _root(engine, dpid: int) -> int:
    return engine.state.topo.fabric.rooted_tree().root[dpid]


def report_scale(sizes: List[int]) -> None:
    from benchmarks.scale_bed import DataCenter
    for size in sizes:
        dc = DataCenter(size)
        dc.build_fabric()
        dc.populate(size)
        engine = dc.engine
        others = dc.access_dpids[1:2]
        watched = [*dc.fabric, dc.access_dpids[0], *others]
        state = per_switch_state(engine, watched)
        print(f"\n== scale: {size} VMs, {dc.access} access switches, root "
              f"{_root(engine, dc.fabric[0]):x}")
        labels = ["fabric f0", "fabric f1", "access a0 (VM's)", "access a1 (other)"]
        rows = [[label, *state[d]] for label, d in zip(labels, watched)]
        print(format_table(["switch", "per-VM flows", "per-VLAN flows"], rows))
        plan = _provision(engine, dc.server_dpids[0], dc.free_port(dc.server_dpids[0]),
                          dc.new_mac())
        cost = plan_cost(plan)
        rows = [[label, *cost.get(d, (0, 0))] for label, d in zip(labels, watched)]
        print(f"a new VM on server 0: {len(cost)} switches touched (1 barrier each)")
        print(format_table(["switch", "mods", "bytes"], rows))


def flood_cost(present: int) -> Tuple[int, int, int]:
    """(bytes, mods, switches touched) of a new web VM's plan when ``present`` web VMs
    (VLAN 100) are on its server already, on the demo topology."""
    engine, _ = demo_engine()
    server = 0x1101
    for n in range(present - 1):   # the demo put one web VM on s11 already
        _provision(engine, server, 10 + n, _mac(250, 1000 + n))
    plan = _provision(engine, server, 500, _mac(250, 5000))
    cost = plan_cost(plan)
    return (sum(b for _, b in cost.values()), sum(m for m, _ in cost.values()), len(cost))


def report_flooding() -> None:
    print("\n== flooding: a new web VM on s11 with N VMs of VLAN 100 on s11 already")
    rows = [[n, *flood_cost(n)] for n in (1, 10, 100)]
    print(format_table(["N present", "bytes", "mods", "switches"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000",
                        help="comma-separated VM counts for the generated data center")
    args = parser.parse_args()
    print_machine()
    report_demo()
    report_scale([int(s) for s in args.sizes.split(",") if s])
    report_flooding()


if __name__ == "__main__":
    main()
