"""The default library's templates enforced on real OVS with real traffic.

Topology (datacenter, defaults): s11: web1, db2; s12: web3, mgmt4 (access a1);
s21: web5, db6; s22: web7, mgmt8 (access a2). web and database share VLAN 100
and are separated by their ACLs; management is VLAN 300.
"""

import re
import time

import pytest

from ryu_apps.core.pipeline import template_metadata_match
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, "d" + unique_prefix()[1:])
    vms = {re.sub(r"^d\d{3}", "", h.name): h for h in net.hosts}
    lab.start_listener(vms["web1"], 80, 443, 22, 8080)
    lab.start_listener(vms["db2"], 5432, 22)
    yield controller, net, vms
    stop_datacenter(controller, net)


def test_a_template_only_lets_its_vm_open_the_connections_it_lists(dc):
    _, _, vms = dc
    # web may connect to the database tier on 5432, but its from_vm rules let
    # it send TCP only from its own ports 80/443 otherwise: it cannot open a
    # connection to another web VM's port 80, though that VM would accept it.
    assert lab.tcp_open(vms["web3"], vms["db2"], 5432)
    assert not lab.tcp_open(vms["web3"], vms["web1"], 80, timeout=1)


def test_database_accepts_postgres_from_web_only(dc):
    _, _, vms = dc
    assert lab.tcp_open(vms["web1"], vms["db2"], 5432)   # same server
    assert lab.tcp_open(vms["web5"], vms["db2"], 5432)   # across access switches
    assert not lab.tcp_open(vms["web1"], vms["db2"], 22, timeout=1)
    assert not lab.tcp_open(vms["db6"], vms["db2"], 5432, timeout=1)


def test_icmp_follows_each_template(dc):
    _, _, vms = dc
    assert ping(vms["web1"], vms["web7"])
    assert ping(vms["web3"], vms["db2"])       # database allows ICMP from the web tier
    assert not ping(vms["db6"], vms["db2"], count=1)   # ... and from nobody else
    assert ping(vms["mgmt4"], vms["mgmt8"])


def test_vlans_isolate_templates(dc):
    _, _, vms = dc
    assert ping(vms["mgmt4"], vms["mgmt8"])
    assert not ping(vms["mgmt4"], vms["web3"], count=1)   # same server, other VLAN
    assert not ping(vms["web7"], vms["mgmt8"], count=1)


def test_spoofed_source_mac_is_dropped_and_logged(dc):
    controller, _, vms = dc
    web1, web5 = vms["web1"], vms["web5"]
    intf, own_mac = web1.defaultIntf(), web1.MAC()
    assert ping(web1, web5)
    web1.cmd(f"ip link set dev {intf} address {vms['web3'].MAC()}")
    try:
        assert not ping(web1, web5, count=2)
    finally:
        web1.cmd(f"ip link set dev {intf} address {own_mac}")
    assert controller.wait_for_log(
        f"quarantined VM MAC {vms['web3'].MAC()}", timeout=5), controller.log()[-2000:]
    assert "spoofed source MAC" in controller.log()
    assert ping(web1, web5)


def test_spoofed_source_ip_is_dropped(dc):
    _, _, vms = dc
    web3, web7 = vms["web3"], vms["web7"]
    intf, own_ip = web3.defaultIntf(), web3.IP()
    assert ping(web3, web7)
    web3.cmd(f"ip addr flush dev {intf}; ip addr add 10.0.100.99/16 dev {intf}")
    try:
        assert not ping(web3, web7, count=2)
    finally:
        web3.cmd(f"ip addr flush dev {intf}; ip addr add {own_ip}/16 dev {intf}")
    time.sleep(0.2)
    assert ping(web3, web7)


def test_a_storm_of_unknown_macs_is_quarantined_without_hurting_others(dc):
    controller, net, vms = dc
    server = next(s for s in net.switches if s.name.endswith("s22"))
    rogue = lab.add_vm(net, server, server.name[:4] + "rogue", "00:0b:00:00:00:01",
                       "10.0.11.1/16")
    lab.announce(rogue)
    assert controller.wait_for_log("quarantined VM MAC 00:0b:00:00:00:01", timeout=10)
    assert ("decoded template 11: template 11 (0x000B) is not in the library"
            in controller.log())
    lab.announce(rogue, count=500, mac_prefix="00:0c")   # template 12: not in the library
    assert controller.wait_for_log("refused MACs", timeout=10), controller.log()[-2000:]
    time.sleep(1)
    logged = controller.log().count("quarantined VM MAC 00:0c:")
    assert 1 <= logged <= 8, logged
    assert ping(vms["web1"], vms["web7"])   # the controller keeps provisioning others
    port = server.ports[rogue.defaultIntf().link.intf2]
    drops = [line for line in lab.dump_flows(server.name).splitlines()
             if "priority=15000" in line and f"in_port={port}" in line]
    assert drops and "actions=drop" in drops[0]


def test_a_spoofed_mac_storm_from_a_bound_port_is_contained(dc):
    controller, _, vms = dc
    blocked_before = controller.log().count("refused MACs")
    lab.announce(vms["mgmt8"], count=300, mac_prefix="00:0d")
    assert controller.wait_for_log("refused MACs", timeout=10, count=blocked_before + 1)
    assert "port already bound to VM " + vms["mgmt8"].MAC() in controller.log()
    assert ping(vms["mgmt8"], vms["mgmt4"])   # the bound VM itself keeps working


def test_conflicting_port_rules_move_to_the_virtual_switch(dc):
    controller, net, vms = dc
    web1, db2 = vms["web1"], vms["db2"]          # both on s11, VLAN 100, behind one a1 port
    for vm in (web1, db2):
        assert f"VM {vm.MAC()}: port-side rules of template" in controller.log()
    s11 = next(s for s in net.switches if s.name.endswith("s11"))
    a1 = next(s for s in net.switches if s.name.endswith("a1"))
    s11_flows = lab.dump_flows(s11.name).splitlines()
    # shared by the database VMs of s11: matched on the template tag db2's classifier
    # writes, with no per-VM copy
    value, mask = template_metadata_match(0x00FC)
    moved = [line for line in s11_flows if "table=3," in line
             and f"metadata={value:#x}/{mask:#x}," in line and "nw_dst=192.0.2.0/24" in line]
    assert len(moved) == 1 and "actions=drop" in moved[0], "\n".join(s11_flows)
    assert not [line for line in s11_flows if "table=3," in line and "in_port=" in line]
    a1_port = a1.ports[s11.connectionsTo(a1)[0][1]]
    a1_group = [line for line in lab.dump_flows(a1.name).splitlines()
                if f"in_port={a1_port}," in line and "table=3," in line]
    assert a1_group and all("nw_" not in line for line in a1_group)
    web3 = vms["web3"]                            # alone behind its port: rules stay on a1
    assert f"VM {web3.MAC()}: port-side rules" not in controller.log()
