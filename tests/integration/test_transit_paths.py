"""Per-VM entries only on a VM's way to the root, on real OVS (ryu_apps/core/transit.py).

Topology (datacenter with the edge): f1 (the root: the fabric switch, next to
the edge e1), a1 over s11 and s12, a2 over s21 and s22, two VMs per server,
out1 behind e1. Every VM has one FORWARD entry on f1 and on its own access
switch, none on the other access switch; traffic still crosses the fabric, and
the outside host still reaches a VM through the edge.
"""

import re

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, "p" + unique_prefix()[1:],
                                       edge=1)
    vms = {re.sub(r"^p\d{3}", "", h.name): h for h in net.hosts}
    switches = {re.sub(r"^p\d{3}", "", s.name): s for s in net.switches}
    yield controller, net, vms, switches
    stop_datacenter(controller, net)


def _forward_entries(bridge: str, mac: str) -> list:
    """The bridge's FORWARD (table 4) entries for destination ``mac``."""
    return [line for line in lab.dump_flows(bridge).splitlines()
            if "table=4," in line and f"dl_dst={mac}" in line]


def test_an_access_switch_holds_no_entry_for_vms_below_its_neighbour(dc):
    _, _, vms, switches = dc
    under = {"a1": ("web1", "db2", "web3", "mgmt4"), "a2": ("web5", "db6", "web7", "mgmt8")}
    for access, other in (("a1", "a2"), ("a2", "a1")):
        for name in under[access]:
            mac = vms[name].MAC()
            assert len(_forward_entries(switches[access].name, mac)) == 1, (access, name)
            assert _forward_entries(switches[other].name, mac) == [], (other, name)
            assert len(_forward_entries(switches["f1"].name, mac)) == 1, name
    assert _forward_entries(switches["a1"].name, vms["out1"].MAC()) == []
    assert _forward_entries(switches["a2"].name, vms["out1"].MAC()) == []


def test_traffic_still_crosses_the_fabric_and_comes_in_from_outside(dc):
    _, _, vms, _ = dc
    assert ping(vms["web1"], vms["web7"])          # a1 -> f1 -> a2 (a1 by its default)
    assert ping(vms["mgmt8"], vms["mgmt4"])
    lab.start_listener(vms["web1"], 80)
    assert lab.tcp_open(vms["out1"], vms["web1"], 80)   # e1 -> f1 (the root) -> a1
