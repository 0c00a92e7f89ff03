"""The periodic audit closes the loop: a flow removed behind dynprov's back comes back.

Open library, default topology, `audit_interval = 1`: every second the app
reads every switch's dynprov flows and meters back and reconciles it, the same
path a connecting switch takes.
"""

import os
import re
import subprocess
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from tests.integration.conftest import OPEN_LIBRARY, start_datacenter, stop_datacenter

pytestmark = pytest.mark.integration

#: Audits run every AUDIT_S; the flow must be back within a few audits (factor 5,
#: plus the reconcile grace at start-up).
AUDIT_S = 1.0
RESTORE_WITHIN_S = 5 * AUDIT_S + 2.0


@pytest.fixture(scope="module")
def dc():
    prefix = "k%03d" % (os.getpid() % 1000)
    controller, net = start_datacenter(
        OPEN_LIBRARY, prefix,
        extra_options=f"audit_interval = {AUDIT_S}\nreconcile_grace = 1.0\n")
    yield controller, net, prefix
    stop_datacenter(controller, net)


def _binding_flows(bridge: str, mac: str) -> list:
    return [line for line in lab.dump_flows(bridge).splitlines() if f"dl_src={mac}" in line
            or f"dl_dst={mac}" in line]


def test_a_flow_deleted_behind_dynprovs_back_is_restored_by_the_audit(dc):
    controller, net, prefix = dc
    web1, web3 = net.get(prefix + "web1"), net.get(prefix + "web3")
    bridge = web1.defaultIntf().link.intf2.node.name
    time.sleep(2.5)   # past the reconcile grace: audits run
    before = _binding_flows(bridge, web1.MAC())
    cookie = re.search(r"cookie=(0x[0-9a-f]+)", before[0]).group(1)
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", bridge,
                    f"cookie={cookie}/-1"], check=True)
    assert not _binding_flows(bridge, web1.MAC()), "the flows were deleted"
    deadline = time.monotonic() + RESTORE_WITHIN_S
    while time.monotonic() < deadline and len(_binding_flows(bridge, web1.MAC())) < len(before):
        time.sleep(0.1)
    assert len(_binding_flows(bridge, web1.MAC())) == len(before), controller.log()[-2000:]
    assert controller.wait_for_log("audit: switch", timeout=1)
    assert ping(web1, web3)


def test_an_audit_of_an_untouched_switch_changes_and_logs_nothing(dc):
    controller, net, prefix = dc
    differed = controller.log().count("audit: switch")
    time.sleep(4 * AUDIT_S)
    assert controller.log().count("audit: switch") == differed
