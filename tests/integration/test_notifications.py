"""Resource change notifications over REST and `dynprov notify`, on real OVS.

Open library (only VLANs separate templates); default topology without edge:
s11: web1, db2; s12: web3, mgmt4 (a1); s21: web5, db6; s22: web7, mgmt8 (a2).
"""

import subprocess
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.notify import send
from ryu_apps.lab.demo import ping
from tests.integration.conftest import (
    OPEN_LIBRARY, start_datacenter, stop_datacenter, unique_prefix)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(OPEN_LIBRARY, "n" + unique_prefix()[1:], ovsdb=True)
    vms = {h.name[4:]: h for h in net.hosts}
    yield controller, net, vms, controller   # the last: where notifications go
    stop_datacenter(controller, net)


def _server_of(vm) -> str:
    return vm.defaultIntf().link.intf2.node.name


def _notify(controller, event, mac, **extra):
    return send(controller.rest_target(), {"event": event, "mac": mac, **extra})


def _cli(controller, *args):
    dynprov = str(Path(lab.ryu_manager_command()).parent / "dynprov")
    return subprocess.run([dynprov, "notify", *args, *controller.rest_cli_args()],
                          capture_output=True, text=True, timeout=30)


def test_suspend_and_resume(dc):
    _, _, vms, api = dc
    web1, web3 = vms["web1"], vms["web3"]
    assert ping(web3, web1)
    assert _notify(api, "suspended", web1.MAC()) == (200, {
        "event": "suspended", "mac": web1.MAC(), "acknowledged": "traffic stopped, binding kept"})
    # Acknowledged once every switch confirmed its tables (barrier). The datapath's
    # cached flows from the ping above forward as before until OVS revalidates them,
    # asynchronously after the barrier (docs/migration.md, Notifications): a ping sent
    # at once was answered in one loaded run. The drop is checked once they follow.
    lab.datapath_settled()
    assert not ping(web3, web1, count=1)
    assert _notify(api, "suspended", web1.MAC())[1]["acknowledged"] == "already suspended"
    assert _notify(api, "resumed", web1.MAC())[0] == 200
    assert ping(web3, web1)


def test_shutdown_is_acknowledged_idempotent_and_refuses_unknown_vms(dc):
    controller, _, vms, api = dc
    web7, web5 = vms["web7"], vms["web5"]
    out = _cli(api, "shutdown", web7.MAC())
    assert out.returncode == 0 and "deprovisioned from" in out.stdout, out.stderr
    # Acknowledged once applied: the server no longer holds the VM. (A ping would
    # race with the VM's own next packet, which provisions it again.)
    assert web7.MAC() not in lab.dump_flows(_server_of(web7))
    assert "already deprovisioned" in _cli(api, "shutdown", web7.MAC()).stdout
    unknown = _cli(api, "shutdown", "00:fa:00:00:0f:0f")
    assert unknown.returncode == 2
    assert "unknown VM 00:fa:00:00:0f:0f" in unknown.stderr
    lab.announce(web7)                      # it boots again: provisioned afresh
    assert ping(web5, web7)


def test_restart_keeps_the_template_it_was_given(dc):
    controller, _, vms, api = dc
    web3, mgmt4, mgmt8 = vms["web3"], vms["mgmt4"], vms["mgmt8"]
    status, answer = _notify(api, "template-change", web3.MAC(), template=254)
    assert status == 200 and "template 254 'management'" in answer["acknowledged"]
    # Acknowledged once every switch confirmed its tables; the datapath's cached flow
    # for web3's broadcasts (its old VLAN's flooding) forwards as before until OVS
    # revalidates it: its first ARP for mgmt8 was flooded in VLAN 100 in a loaded run
    # (the two probes' 1.2 s then ended before the kernel asked again).
    lab.datapath_settled()
    assert ping(web3, mgmt8)               # now in the management VLAN
    assert _notify(api, "restarting", web3.MAC())[0] == 200
    assert web3.MAC() not in lab.dump_flows(_server_of(web3))
    lab.announce(web3)                      # back from the restart
    assert controller.wait_for_log(f"VM {web3.MAC()} back from restart", timeout=5)
    assert ping(web3, mgmt4)                # still template 254, not re-selected from the MAC
    assert _notify(api, "template-change", web3.MAC(), template=250)[0] == 200


def test_started_provisions_a_silent_vm_the_server_reports(dc):
    controller, net, vms, api = dc
    s22 = next(s for s in net.switches if s.name.endswith("s22"))
    quiet = lab.add_vm(net, s22, s22.name[:4] + "late9", "00:fa:00:00:00:98", "10.0.100.98/16")
    assert _notify(api, "started", quiet.MAC(), server="nowhere")[0] == 404
    port = quiet.defaultIntf().link.intf2.name
    subprocess.run(["ovs-vsctl", "set", "Interface", port,
                    "external_ids:attached-mac=" + quiet.MAC()], check=True)
    assert controller.wait_for_log(f"provisioned VM {quiet.MAC()}", timeout=5)
    status, answer = _notify(api, "started", quiet.MAC(), server=s22.name)
    assert status == 200 and "already provisioned on" in answer["acknowledged"]
    assert ping(vms["web5"], quiet)


def test_bad_requests_say_what_is_wrong(dc):
    _, net, vms, api = dc
    a1 = next(s.name for s in net.switches if s.name.endswith("a1"))
    assert _notify(api, "exploded", vms["web1"].MAC()) == (400, {
        "error": "event: expected one of started, shutdown, suspended, resumed, restarting, "
                 "migrating, template-change, got 'exploded'"})
    status, answer = _notify(api, "migrating", vms["web1"].MAC(), server=a1)
    assert status == 409 and "is an access switch" in answer["error"]
    status, answer = _notify(api, "template-change", vms["web1"].MAC(), template=4000)
    assert status == 409 and "template 4000 (0x0FA0) is not in" in answer["error"]
