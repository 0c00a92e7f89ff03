"""A bridge without connection tracking, on real OVS: the controller's probe at connect
finds it, a VM of a stateful template is refused there (logged with bridge, template,
field and what is missing) while a stateless one is provisioned, and a reload that would
make the hosted template stateful is refused with the library in force kept.

``ovs-appctl dpif/set-dp-features BR ct_state false`` switches ct off for the whole
userspace datapath (every netdev bridge of the machine shares it), so it is off only
while this bed's switches connect (their probes answered), and always switched on again.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from ryu_apps.lab import testbed as lab
from tests.integration.conftest import LIBRARIES, stop_datacenter

#: serial: switching the shared datapath's ct off must not meet another bed's ct flows.
pytestmark = [pytest.mark.integration, pytest.mark.serial]

PREFIX = "n%03d" % (os.getpid() % 1000)
SCRATCH = PREFIX + "ct"
NO_CT = "NXBAC_CT_DATAPATH_SUPPORT"


def _conntrack(enabled: bool) -> None:
    subprocess.run(["ovs-appctl", "dpif/set-dp-features", SCRATCH, "ct_state",
                    "true" if enabled else "false"], check=True, capture_output=True)


def _ct_flow_refusal() -> str:
    """What OpenFlow answers to a ct flow on the scratch bridge (empty: accepted)."""
    done = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", SCRATCH,
                           "table=5,priority=1,ip,actions=ct(zone=1)"],
                          capture_output=True, text=True)
    return "" if done.returncode == 0 else done.stderr


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    library = tmp_path_factory.mktemp("no-ct") / "library"
    shutil.copytree(LIBRARIES / "stateful", library)
    subprocess.run(["ovs-vsctl", "--may-exist", "add-br", SCRATCH, "--", "set", "bridge",
                    SCRATCH, "datapath_type=netdev"], check=True)
    controller = lab.ControllerProcess(templates=library).start()
    net = None
    try:
        _conntrack(False)
        try:
            refusal = _ct_flow_refusal()
            net = lab.build_network(controller.of_port, prefix=PREFIX, access=1, servers=1,
                                    vms=2, edge=0, dpid_base=(os.getpid() % 4096) << 24)
            probed = controller.wait_for_log("has no connection tracking", timeout=20,
                                             count=len(net.switches))
        finally:
            _conntrack(True)
        assert NO_CT in refusal, refusal
        assert probed, controller.log()[-3000:]
        lab.wait_for_fabric(controller, net)
        vms = {host.name[len(PREFIX):]: host for host in net.hosts}
        for vm in vms.values():
            lab.announce(vm)
        assert controller.wait_for_log("provisioned VM", timeout=15), controller.log()[-3000:]
        assert controller.wait_for_log("quarantined VM MAC", timeout=15), \
            controller.log()[-3000:]
    except BaseException:
        stop_datacenter(controller, net)
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", SCRATCH], check=False)
        raise
    yield controller, net, vms, library
    stop_datacenter(controller, net)
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", SCRATCH], check=False)


def _log_lines(controller, text: str) -> list:
    return [line for line in controller.log().splitlines() if text in line]


def test_a_stateful_vm_is_refused_on_a_bridge_without_ct_and_a_stateless_one_is_not(bed):
    controller, _, vms, _ = bed
    server = PREFIX + "s11"
    (refused,) = _log_lines(controller, "quarantined VM MAC")
    assert vms["web1"].MAC() in refused
    for part in ("templates.yaml: template 250 'web'", "virtual_switch.stateful: true",
                 "needs connection tracking", f"bridge {server} has none", NO_CT):
        assert part in refused, refused
    (provisioned,) = _log_lines(controller, "provisioned VM")
    assert vms["db2"].MAC() in provisioned
    flows = lab.dump_flows(server)
    assert "ct(" not in flows and "ct_state" not in flows, flows
    assert not _log_lines(controller, "refused message"), controller.log()[-3000:]


def test_a_reload_making_the_hosted_template_stateful_is_refused_and_nothing_changes(bed):
    controller, _, vms, library = bed
    path = library / "templates.yaml"
    document = yaml.safe_load(path.read_text())
    database = next(t for t in document["templates"] if t["id"] == 252)
    database["virtual_switch"]["stateful"] = True
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    flows_before = _flows(PREFIX + "s11")
    assert flows_before and not [line for line in flows_before if "ct(" in line]
    status, answer = controller.rest("POST", "/dynprov/library/reload")
    assert status == 422, answer
    (error,) = answer["errors"]
    for part in ("templates.yaml: template 252 'database'",
                 "virtual_switch.stateful: expected false", f"bridge {PREFIX}s11 hosts",
                 vms["db2"].MAC(), NO_CT, "got true"):
        assert part in error, error
    log = controller.log()
    assert "library reload refused, previous library stays" in log
    assert "library reloaded" not in log
    assert _flows(PREFIX + "s11") == flows_before   # db2 kept its stateless pipeline


def _flows(bridge: str) -> list:
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows",
                          bridge], capture_output=True, text=True, check=True).stdout
    return sorted(line for line in out.splitlines() if "cookie=" in line)
