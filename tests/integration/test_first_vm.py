"""A VM is provisioned from its MAC, end to end, on real OVS and Mininet."""

import re

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.lab.demo import ping

pytestmark = pytest.mark.integration


def _vm(net, short_name: str):
    return next(h for h in net.hosts if re.fullmatch(r"t\d{3}" + short_name, h.name))


def _server_of(net, host):
    return host.intfList()[0].link.intf2.node


def test_same_template_vms_on_different_servers_reach_each_other(datacenter):
    controller, net = datacenter
    web1, web3 = _vm(net, "web1"), _vm(net, "web3")
    assert _server_of(net, web1) is not _server_of(net, web3)
    assert ping(web1, web3, count=3)
    assert controller.wait_for_log(f"provisioned VM {web1.MAC()}", timeout=5)
    assert f"provisioned VM {web3.MAC()}" in controller.log()
    assert re.search(rf"provisioned VM {web1.MAC()} .* template 250 'web', vlan 100",
                     controller.log())


def test_vms_across_access_switches_reach_each_other(datacenter):
    _, net = datacenter
    web1 = _vm(net, "web1")   # server s11, access a1
    web5 = _vm(net, "web5")   # server s21, access a2
    assert ping(web1, web5, count=3)


def test_different_templates_cannot_reach_each_other(datacenter):
    _, net = datacenter
    web1, db2, mgmt4 = _vm(net, "web1"), _vm(net, "db2"), _vm(net, "mgmt4")
    assert ping(_vm(net, "db2"), _vm(net, "db6"))  # db2 is provisioned and alive
    assert not ping(web1, db2, count=2)
    assert not ping(mgmt4, web1, count=2)


def test_vm_flows_carry_binding_cookies(datacenter):
    controller, net = datacenter
    web1 = _vm(net, "web1")
    assert ping(web1, _vm(net, "web3"))
    server = _server_of(net, web1)
    flows = lab.dump_flows(server.name)
    owners = [decode_cookie(int(c, 16)) for c in re.findall(r"cookie=(0x[0-9a-f]+)", flows)]
    assert None not in owners
    mine = [line for line in flows.splitlines() if f"dl_src={web1.MAC()}" in line]
    assert mine, flows
    owner = decode_cookie(int(re.search(r"cookie=(0x[0-9a-f]+)", mine[0]).group(1), 16))
    assert owner.kind is CookieKind.BINDING and owner.template_id == 250
    # the VLAN tagging is the template's, shared by its VMs on the server: its cookie
    # names template 250 (kind TEMPLATE), not a binding
    tagging = [line for line in flows.splitlines()
               if "push_vlan:0x8100" in line and "set_field:4196->vlan_vid" in line]
    assert tagging, flows
    tagging_owners = {decode_cookie(int(re.search(r"cookie=(0x[0-9a-f]+)", line).group(1), 16))
                      for line in tagging}
    assert any(o.kind is CookieKind.TEMPLATE and o.template_id == 250
               for o in tagging_owners), tagging


def test_topology_bridges_are_removed_by_name():
    controller = lab.ControllerProcess().start()
    try:
        net = lab.build_network(controller.of_port, prefix="u%03d" % (id(controller) % 1000),
                                access=1, servers=1, vms=1)
        names = {s.name for s in net.switches}
        assert names <= lab.ovs_bridges()
        lab.stop_network(net)
        assert not names & lab.ovs_bridges()
    finally:
        controller.stop()


def test_lldp_probes_skip_vm_ports_but_keep_probing_uplinks(datacenter):
    """A VM port gets no periodic LLDP probe (the controller knows a VM is there);
    a switch-to-switch port still does, so re-cabling is still detected."""
    controller, net = datacenter
    web1 = _vm(net, "web1")
    server = _server_of(net, web1)
    capture = "timeout 3 tcpdump -l -n -e -c 1 -i {} ether proto 0x88cc 2>/dev/null"
    vm_probes = web1.cmd(capture.format(web1.defaultIntf().name)).strip()
    uplink = next(intf for intf in server.intfList()
                  if intf.link and all(n in net.switches for n in
                                       (intf.link.intf1.node, intf.link.intf2.node)))
    uplink_probes = server.cmd(capture.format(uplink.name)).strip()
    assert vm_probes == "", f"a VM port received an LLDP probe: {vm_probes}"
    assert "0e:00:d9:00:00:01" in uplink_probes, f"no LLDP probe on uplink {uplink.name} in 3 s"
