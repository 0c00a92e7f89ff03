"""The demo: the default topology and library, VMs provisioned from their MACs.

Starts ``ryu-manager ryu_apps.provisioner``, builds the ``datacenter`` Mininet
topology, lets every VM speak, and shows what the controller did: each VM's
MAC, the template it selected and the VLAN it got; reachability between VMs of
one template on different servers; isolation between templates; and the flow
tables of a server's virtual switch and an access switch, annotated by owner.
"""

from __future__ import annotations

import os
import re
import sys
import time
from itertools import combinations

from ryu_apps import lab
from ryu_apps.flow_listing import annotated_flows

_PROVISIONED = re.compile(
    r"provisioned VM (\S+) on switch (\S+) port (\d+): template (\d+) '([^']*)', "
    r"vlan (\d+)")


def _banner(text: str) -> None:
    print(f"\n=== {text}")


def ping(src, dst, count: int = 2) -> bool:
    """True when ``src`` gets an answer from ``dst``."""
    out = src.cmd(f"ping -c{count} -W1 -i0.2 {dst.IP()}")
    return bool(re.search(r" [1-9]\d* received", out))


def run_demo(verbose: bool = False) -> int:
    """Run the demo; 0 when every expectation held."""
    if os.geteuid() != 0:
        print("dynprov demo: needs root (Mininet and Open vSwitch)", file=sys.stderr)
        return 2
    controller = lab.ControllerProcess().start()
    print("controller:", " ".join(controller.command()))
    net = None
    failures = 0
    try:
        net = lab.build_network(controller.of_port)
        _banner("waiting for the controller to discover the fabric (LLDP)")
        lab.wait_for_fabric(controller, net)
        vms = net.hosts
        _banner("every VM boots and announces itself (gratuitous ARP)")
        for vm in vms:
            lab.announce(vm)
        time.sleep(0.5)
        _banner("VMs of one template reach each other across servers and switches")
        groups: dict[str, list] = {}
        for vm in vms:
            groups.setdefault(vm.MAC()[:5], []).append(vm)
        for members in groups.values():
            for a, b in combinations(members, 2):
                ok = ping(a, b)
                failures += not ok
                print(f"  {a.name:6} -> {b.name:6} same template:      "
                      f"{'reachable' if ok else 'UNREACHABLE (unexpected)'}")
        _banner("what the controller provisioned, from each VM's MAC")
        time.sleep(0.5)
        seen = {}
        for match in _PROVISIONED.finditer(controller.log()):
            seen[match.group(1)] = match.groups()
        for vm in vms:
            row = seen.get(vm.MAC())
            if row:
                print(f"  {vm.name:6} MAC {vm.MAC()} -> template {row[3]} ('{row[4]}'), "
                      f"VLAN {row[5]}, server bridge port {row[2]}")
            else:
                failures += 1
                print(f"  {vm.name:6} MAC {vm.MAC()} -> NOT provisioned")
        _banner("VMs of different templates are isolated")
        names = sorted(groups)
        for first, second in zip(names, names[1:]):
            a, b = groups[first][0], groups[second][0]
            ok = ping(a, b, count=1)
            failures += ok
            print(f"  {a.name:6} -> {b.name:6} different templates: "
                  f"{'REACHABLE (unexpected)' if ok else 'isolated'}")
        for bridge in ("s11", "a1"):
            _banner(f"flow table of {bridge}, annotated by owner")
            print(annotated_flows(bridge))
        if verbose:
            _banner("controller log")
            print(controller.log())
    finally:
        if net is not None:
            lab.stop_network(net)
        controller.stop()
    _banner("result: " + ("all expectations held" if not failures
                          else f"{failures} expectation(s) failed"))
    return 1 if failures else 0
