"""``dynprov controller`` runs the same app on Ryu and on os-ken: launch and provision.

For each framework, over plain TCP and over mutual TLS (every switch must be
verified: os-ken's server needs no fix for that, Ryu's gets dynprov's), the
launcher starts the controller with the README's flags on free ports, a small
topology connects, every VM announces itself, and each VM must be provisioned:
flows matching its MAC, with its binding's cookie, on its server's bridge; the
REST API lists it; two VMs of one template on different servers reach each
other; a VM that never sends is found through its server's OVSDB (the
watcher's green thread).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping

pytestmark = pytest.mark.integration

#: (framework, OpenFlow over mutual TLS)
CASES = [("ryu", False), ("os-ken", False), ("ryu", True), ("os-ken", True)]
#: One access switch, three servers, one VM each: web1 (s11), db2 (s12), web3 (s13).
TOPOLOGY = {"access": 1, "servers": 3, "vms": 1, "edge": 0}
VERSIONS = {"ryu": "ryu 4.34", "os-ken": "os-ken 4."}
LOCAL_OVSDB = "unix:/var/run/openvswitch/db.sock"
SILENT_MAC = "00:fa:00:00:00:99"


@pytest.fixture(name="lab_run", scope="module", params=CASES,
                ids=[f"{name}{'-tls' if tls else ''}" for name, tls in CASES])
def launched_lab(request):
    """(framework, controller, net): the controller launched by ``dynprov controller``,
    the topology up and every VM announced; stopped by PID and bridge name."""
    framework, tls = request.param
    number = CASES.index(request.param)
    prefix = "k%d%02d" % (number, os.getpid() % 100)
    controller = lab.ControllerProcess(framework=framework, tls=tls,
                                       extra_options=f"ovsdb = {LOCAL_OVSDB}\n").start(timeout=60)
    net = None
    try:
        net = lab.build_network(controller.of_port, prefix=prefix, tls=tls,
                                dpid_base=((os.getpid() + 7 * number) % 4096) << 24,
                                **TOPOLOGY)
        lab.wait_for_fabric(controller, net)
        for vm in net.hosts:
            lab.announce(vm)
        yield framework, tls, controller, net
    finally:
        if net is not None:
            lab.stop_network(net)
        controller.stop()


def _server_of(host):
    return host.intfList()[0].link.intf2.node


def _binding_flows(bridge: str, mac: str) -> list[str]:
    """The flows on ``bridge`` that match ``mac`` and carry a VM binding's cookie."""
    found = []
    for line in lab.dump_flows(bridge).splitlines():
        cookie = re.search(r"cookie=(0x[0-9a-f]+)", line)
        owner = decode_cookie(int(cookie.group(1), 16)) if cookie else None
        if mac in line and owner is not None and owner.kind is CookieKind.BINDING:
            found.append(line)
    return found


def test_launcher_runs_the_app_on_the_framework_asked_for(lab_run):
    framework, tls, controller, net = lab_run
    command = controller.command()
    assert command[1:4] == ["controller", "--framework", framework]
    for flag in ("--config-file", "--wsapi-port", "--verbose", "ryu_apps.provisioner"):
        assert flag in command
    assert f"dynprov controller on {VERSIONS[framework]}" in controller.log()
    if tls:
        assert lab.tls_verified(controller) == len(net.switches), controller.log()[-3000:]


def test_every_vm_is_provisioned_on_its_server_bridge(lab_run):
    _, _, controller, net = lab_run
    assert controller.wait_for_log("provisioned VM", timeout=20, count=len(net.hosts)), \
        controller.log()[-3000:]
    for vm in net.hosts:
        assert _binding_flows(_server_of(vm).name, vm.MAC()), \
            f"no binding flow for {vm.name} ({vm.MAC()}) on {_server_of(vm).name}"


def test_rest_api_lists_every_binding(lab_run):
    _, _, controller, net = lab_run
    assert controller.wait_for_log("provisioned VM", timeout=20, count=len(net.hosts))
    status, bindings = controller.rest("GET", "/dynprov/bindings", role="reader")
    assert status == 200, bindings
    assert sorted(b["mac"] for b in bindings) == sorted(vm.MAC() for vm in net.hosts)
    status, answer = controller.rest("GET", "/dynprov/no-such-endpoint", role="reader")
    assert status == 404 and "no endpoint" in answer["error"]


def test_vms_of_one_template_on_two_servers_reach_each_other(lab_run):
    _, _, controller, net = lab_run
    web1, web3 = (next(h for h in net.hosts if h.name.endswith(name))
                  for name in ("web1", "web3"))
    assert _server_of(web1) is not _server_of(web3)
    assert ping(web1, web3, count=3), controller.log()[-3000:]


def test_a_silent_vm_is_provisioned_from_its_ovsdb_row(lab_run):
    _, _, controller, net = lab_run
    web1 = next(h for h in net.hosts if h.name.endswith("web1"))
    server = next(s for s in net.switches if s.name.endswith("s12"))
    silent = lab.add_vm(net, server, server.name[:-3] + "q9", SILENT_MAC, "10.0.100.99/16")
    port = silent.defaultIntf().link.intf2.name
    subprocess.run(["ovs-vsctl", "set", "Interface", port,
                    f"external_ids:attached-mac={SILENT_MAC}"], check=True)
    assert controller.wait_for_log(f"provisioned VM {SILENT_MAC}", timeout=15), \
        controller.log()[-3000:]
    assert re.search(rf"provisioned VM {SILENT_MAC} .*\(ovsdb\)", controller.log())
    assert _binding_flows(server.name, SILENT_MAC)
    assert ping(web1, silent, count=3)
