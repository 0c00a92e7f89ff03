"""DHCP snooping on real OVS (``bind_ip: dhcp``): a web VM gets its address from the DHCP
server VM, reaches its peers only after the ACK, cannot send from another address, and
a rogue server's answers never reach it nor bind.

Topology (datacenter): s11: web1, db2; s12: web3, mgmt4; ... Library
tests/integration/libraries/dhcp: web is bound from DHCP only; the database, on the
same VLAN, is the DHCP server (tests/support/dhcp_peer.py, raw sockets); web3 runs a
rogue server. The server hands web1 the address Mininet configured on it, so web1
needs no reconfiguration once bound.
"""

from __future__ import annotations

import sys
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.lab.demo import ping
from ryu_apps.lab.vmtools import forge
from tests.integration.attack_support import Capture, hosts_by_name
from tests.integration.conftest import LIBRARIES, start_datacenter, stop_datacenter, \
    unique_prefix

pytestmark = pytest.mark.integration

#: Forged frames from another address; none may arrive.
SPOOFED = 5
ROGUE_POOL = "10.0.66.1"


def eventually(check, timeout: float) -> bool:
    """Whether ``check()`` is true within ``timeout`` s (the flows follow the ACK)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
    return True


def _peer(*args: object) -> str:
    return (f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m tests.support.dhcp_peer "
            + " ".join(map(str, args)))


@pytest.fixture(scope="module")
def dhcp_bed():
    prefix = "d" + unique_prefix()[1:]
    controller, net = start_datacenter(LIBRARIES / "dhcp", prefix)
    vms = hosts_by_name(net, prefix)
    servers = []
    try:
        web1, db2, web3 = vms["web1"], vms["db2"], vms["web3"]
        for vm, pool, ip in ((db2, web1.IP(), db2.IP()), (web3, ROGUE_POOL, web3.IP())):
            out = vm.cmd(_peer("server", vm.defaultIntf(), "--pool", pool,
                               "--server-ip", ip, "--lease", "600")
                         + " > /dev/null 2>&1 & echo $!")
            servers.append((vm, out.strip().split()[-1]))
        yield controller, net, vms
    finally:
        for vm, pid in servers:
            vm.cmd(f"kill {pid}")
        stop_datacenter(controller, net)


def test_a_dhcp_vm_is_bound_only_by_the_real_server_s_ack(dhcp_bed):
    controller, _, vms = dhcp_bed
    web1, db2, web3 = vms["web1"], vms["db2"], vms["web3"]
    assert not ping(web1, db2, count=1), "web1 reached db2 before any DHCPACK"
    capture = Capture(web1, "udp port 68")
    try:
        out = web1.cmd(_peer("client", web1.defaultIntf(), "--timeout", "15"))
    finally:
        frames = capture.stop()
    assert f"bound {web1.IP()} from {db2.IP()}" in out, out
    rogue = bytes.fromhex(web3.MAC().replace(":", ""))
    assert not [f for f in frames if f[6:12] == rogue], "a rogue answer reached web1"
    assert controller.wait_for_log(f"VM {web1.MAC()} bound to IP {web1.IP()} (DHCPACK",
                                   timeout=5), controller.log()[-3000:]
    assert controller.wait_for_log(
        f"DHCP guard dropped a DHCP server message from VM {web3.MAC()} ", timeout=5), \
        controller.log()[-3000:]
    assert ROGUE_POOL.rsplit(".", 1)[0] + "." not in controller.log()   # never bound
    assert eventually(lambda: ping(web1, db2, count=1), timeout=10), \
        "web1 never reached db2 after its DHCPACK"


def test_a_bound_dhcp_vm_cannot_send_from_another_address(dhcp_bed):
    _, _, vms = dhcp_bed
    web1, db2 = vms["web1"], vms["db2"]
    marker = forge.MARKER
    capture = Capture(db2, "udp")
    try:
        out = web1.cmd(f"env PYTHONPATH={lab.REPO_ROOT} {sys.executable} -m "
                       f"ryu_apps.lab.vmtools.forge spoof {web1.defaultIntf()} --count "
                       f"{SPOOFED} --kind udp --mac {web1.MAC()} --ip 10.0.100.77 "
                       f"--dst-mac {db2.MAC()} --dst-ip {db2.IP()}")
        assert f"sent {SPOOFED}" in out, out
        # its own address still passes, on the same path, after the spoofed frames
        assert ping(web1, db2, count=1)
    finally:
        frames = capture.stop()
    assert not [f for f in frames if marker in f], "a spoofed frame reached db2"
