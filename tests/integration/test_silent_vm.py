"""A VM that never sends a packet is found through its server's OVSDB row."""

import subprocess
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from tests.integration.conftest import (
    OPEN_LIBRARY, start_datacenter, stop_datacenter, unique_prefix)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dc():
    controller, net = start_datacenter(OPEN_LIBRARY, "v" + unique_prefix()[1:], ovsdb=True,
                                       access=1, servers=2, vms=1)
    yield controller, net
    stop_datacenter(controller, net)


def test_silent_vm_is_provisioned_from_ovsdb_attached_mac(dc):
    controller, net = dc
    s12 = next(s for s in net.switches if s.name.endswith("s12"))
    peer = next(h for h in net.hosts if h.MAC().startswith("00:fa"))
    silent = lab.add_vm(net, s12, s12.name[:4] + "quiet9", "00:fa:00:00:00:99",
                        "10.0.100.99/16")
    port_name = silent.defaultIntf().link.intf2.name
    assert not ping(peer, silent, count=1)   # nobody knows it: its port gets nothing
    started = time.monotonic()
    subprocess.run(["ovs-vsctl", "set", "Interface", port_name,
                    "external_ids:attached-mac=00:fa:00:00:00:99"], check=True)
    assert controller.wait_for_log("provisioned VM 00:fa:00:00:00:99", timeout=10), \
        controller.log()[-2000:]
    print(f"\nsilent VM provisioned {time.monotonic() - started:.3f} s after ovs-vsctl")
    assert "binding" in controller.log() and "(ovsdb)" in controller.log()
    assert ping(peer, silent)
    # Removing the row deprovisions it.
    subprocess.run(["ovs-vsctl", "remove", "Interface", port_name, "external_ids",
                    "attached-mac"], check=True)
    assert controller.wait_for_log("deprovisioned VM 00:fa:00:00:00:99", timeout=10)
    assert "00:fa:00:00:00:99" not in lab.dump_flows(s12.name)
