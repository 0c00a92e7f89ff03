"""Flooding cost per new VM on a server, by members already there (pure engine, no OVS).

Run: ``python -m benchmarks.flood_cost [--members 1,10,100,600] [--new 36] [--repeat 3]``

One access switch and two server bridges. For each member count ``M``, ``M`` web
VMs (VLAN 100) sit on the first server at ports 1..M and one on the second; then
``--new`` more web VMs land on the first server at the following ports (the way
OVS numbers new ports, from the next multiple of 36, so that every count sees the
same chunk and group openings), one event each. Per new VM it prints the mean flow-mods
and OpenFlow bytes of its plan (all of it, and the VLAN's shared flows alone:
flood entry, FLOOD groups and chunks), the median engine time of its event and
the median time of the VLAN flush inside it. ``--new 36`` covers a whole FLOOD
group (six chunks of six ports), so chunk and group openings are in the mean.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

from ryu_apps.app.openflow_bytes import encoded_flow_add, encoded_flow_delete, encoded_messages
from ryu_apps.core import derived
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library

ACCESS, S1, S2 = 0x201, 0x1101, 0x1102
UPLINK = 0xFF00
WEB = 0xFA
#: Ports per FLOOD group (six chunks of six): new VMs start at a group's first port,
#: so every member count sees the same sequence of chunk and group openings.
GROUP_PORTS = 36


def _mac(server: int, port: int) -> str:
    return f"00:{WEB:02x}:{server & 0xFF:02x}:00:{port >> 8:02x}:{port & 0xFF:02x}"


class _FlushTimer:
    """Wraps the engine's VLAN flush and adds up the time spent in it."""

    def __init__(self) -> None:
        self.total = 0.0
        self._flush: Callable = derived._flush_vlans

    def __call__(self, st, plan) -> None:
        start = time.perf_counter()
        self._flush(st, plan)
        self.total += time.perf_counter() - start


def _engine() -> ProvisioningEngine:
    engine = ProvisioningEngine(load_library("templates"), PrefixScheme(16))
    for dpid, role in ((ACCESS, Role.ACCESS), (S1, Role.SERVER), (S2, Role.SERVER)):
        engine.switch_up(dpid, role, hex(dpid), [], now=0.0)
    for server, port in ((S1, 1), (S2, 2)):
        engine.link_seen(PortRef(server, UPLINK), PortRef(ACCESS, port), now=0.0)
    return engine


def _bind(engine: ProvisioningEngine, server: int, port: int):
    verdict = engine.packet_in(server, port, _mac(server, port), b"x", now=0.0)
    engine.confirm(verdict.plan.confirms)
    return verdict.plan


def measure(members: int, new: int, timer: _FlushTimer) -> Dict[str, float]:
    """Per new VM on a server already holding ``members`` VMs of its VLAN."""
    engine = _engine()
    _bind(engine, S2, 1)
    for port in range(1, members + 1):
        _bind(engine, S1, port)
    mods: List[int] = []
    vlan_mods: List[int] = []
    size: List[int] = []
    vlan_size: List[int] = []
    engine_us: List[float] = []
    flush_us: List[float] = []
    first = -(-(members + 1) // GROUP_PORTS) * GROUP_PORTS   # the next group's first port
    for port in range(first, first + new):
        timer.total = 0.0
        start = time.perf_counter()
        plan = _bind(engine, S1, port)
        engine_us.append((time.perf_counter() - start) * 1e6)
        flush_us.append(timer.total * 1e6)
        total = vlan = total_bytes = vlan_bytes = 0
        for changes in plan.changes.values():
            specs = list(changes.adds) + list(changes.deletes)
            total += len(specs)
            total_bytes += sum(map(len, encoded_messages(changes)))
            vlan += sum(1 for s in specs if _is_vlan(s))
            vlan_bytes += _vlan_bytes(changes)
        mods.append(total)
        vlan_mods.append(vlan)
        size.append(total_bytes)
        vlan_size.append(vlan_bytes)
    return {"mods": statistics.mean(mods), "vlan_mods": statistics.mean(vlan_mods),
            "bytes": statistics.mean(size), "vlan_bytes": statistics.mean(vlan_size),
            "vlan_bytes_max": max(vlan_size), "engine_us": statistics.median(engine_us),
            "flush_us": statistics.median(flush_us)}


def _is_vlan(spec) -> bool:
    owner = decode_cookie(spec.cookie) if isinstance(spec, FlowSpec) else None
    return owner is not None and owner.kind is CookieKind.VLAN


def _vlan_bytes(changes) -> int:
    """OpenFlow bytes of the VLAN's flow adds and deletes in one switch's changes."""
    return sum(len(encoded_flow_add(s)) for s in changes.adds if _is_vlan(s)) + \
        sum(len(encoded_flow_delete(s)) for s in changes.deletes if _is_vlan(s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="1,10,100,600",
                        help="comma-separated member counts on the server")
    parser.add_argument("--new", type=int, default=36, help="new VMs measured per count")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per count; the fastest engine times are kept")
    args = parser.parse_args()
    timer = _FlushTimer()
    derived._flush_vlans = timer
    print(f"{'members':>8}{'flow-mods':>11}{'VLAN mods':>11}{'plan B':>9}{'VLAN B':>9}"
          f"{'VLAN B max':>12}{'engine us':>11}{'VLAN flush us':>15}")
    for members in (int(m) for m in args.members.split(",")):
        runs = [measure(members, args.new, timer) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["engine_us"])
        best["flush_us"] = min(r["flush_us"] for r in runs)
        print(f"{members:>8}{best['mods']:>11.2f}{best['vlan_mods']:>11.2f}"
              f"{best['bytes']:>9.0f}{best['vlan_bytes']:>9.0f}{best['vlan_bytes_max']:>12}"
              f"{best['engine_us']:>11.0f}{best['flush_us']:>15.0f}")


if __name__ == "__main__":
    main()
