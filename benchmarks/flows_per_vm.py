"""Flows per VM on its server bridge, by template (pure engine, fake switches; no OVS).

Run: ``python -m benchmarks.flows_per_vm [--vms N]``

One access switch with two server bridges; ``N`` VMs of every template of the
default library (``templates/``) on the first server, with their IPv4 bound,
plus one VM of every template on the second (so web and database share VLAN
100 behind both access ports: the template merge applies). For each template
it prints the flows a VM owns on its server (cookie kind BINDING), the flows
shared by all the VMs of that template on the server (cookie kind TEMPLATE,
none before the shared pipeline) and the server's flows per VM overall, then the
server's other flows by cookie kind.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import List, Tuple

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library
from tests.support.fake_switches import FakeSwitches

ACCESS, S1, S2 = 0x201, 0x1101, 0x1102
UPLINK = 1000


def _mac(template_id: int, index: int) -> str:
    raw = (template_id << 32) | index
    return ":".join(f"{(raw >> shift) & 0xFF:02x}" for shift in range(40, -1, -8))


def bed(library) -> Tuple[ProvisioningEngine, FakeSwitches]:
    """An engine with one access switch and servers S1 and S2, and their fake switches."""
    engine = ProvisioningEngine(library, PrefixScheme(16))
    switches = FakeSwitches()
    for dpid, role in ((ACCESS, Role.ACCESS), (S1, Role.SERVER), (S2, Role.SERVER)):
        switches.apply(engine.switch_up(dpid, role, hex(dpid), [], now=0.0))
    for server, port in ((S1, 1), (S2, 2)):
        switches.apply(engine.link_seen(PortRef(server, UPLINK), PortRef(ACCESS, port),
                                        now=0.0))
    return engine, switches


def add_vm(engine, switches, server: int, port: int, mac: str, ip: str) -> List[Plan]:
    """A VM's first frame, then one carrying its IPv4: the plans, applied."""
    plans = [engine.packet_in(server, port, mac, b"x", now=0.0).plan,
             engine.packet_in(server, port, mac, b"x", now=0.0, sender_ip=ip).plan]
    for plan in plans:
        switches.apply(plan)
    return plans


def _lab(vms: int):
    library = load_library("templates")
    engine, switches = bed(library)
    port = 0
    templates = sorted(t.template_id for t in library.templates.values())
    for template_id in templates:
        for index in range(1, vms + 2):
            server = S1 if index <= vms else S2
            port += 1
            mac = _mac(template_id, index)
            ip = f"10.{template_id % 200}.{index // 250}.{index % 250 + 1}"
            add_vm(engine, switches, server, port, mac, ip)
    return library, switches, templates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10, help="VMs per template on the server")
    args = parser.parse_args()
    library, switches, templates = _lab(args.vms)
    own: Counter = Counter()
    shared: Counter = Counter()
    kinds: Counter = Counter()
    flows = [f for f in switches.flows(S1) if isinstance(f, FlowSpec)]
    for spec in flows:
        owner = decode_cookie(spec.cookie)
        if owner is None:
            continue
        kinds[owner.kind.name] += 1
        if owner.kind is CookieKind.BINDING:
            own[owner.template_id] += 1
        elif owner.kind.name == "TEMPLATE":
            shared[owner.template_id] += 1
    print(f"server bridge with {args.vms} VMs of each template ({len(flows)} flows in all)")
    print(f"{'template':<12}{'per VM':>8}{'shared':>8}{'per VM incl. shared':>22}")
    for template_id in templates:
        name = library.get(template_id).name
        per_vm = own[template_id] / args.vms
        overall = (own[template_id] + shared[template_id]) / args.vms
        print(f"{name + f' {template_id}':<12}{per_vm:>8.1f}{shared[template_id]:>8}"
              f"{overall:>22.1f}")
    print("the server's other flows, by cookie kind (INFRA: LLDP, table miss, drops, the "
          "OUTPUT table's one flow):",
          ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())
                    if kind not in ("BINDING", "TEMPLATE")))


if __name__ == "__main__":
    main()
