"""Two controller processes that watch the servers' OVSDB: a VM moving between them
without a notice is asked for by the destination before it moves.

The destination sees the VM's new port (link down: the VM has not resumed there),
pre-provisions it and asks the owner for it in the store; the owner then delivers
the VM's frames toward the shared fabric too, so peers in both pods barely notice
the move.
"""

import os
import re
import subprocess
import time

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.lab.migration import live_migrate
from tests.integration.conftest import start_distributed

#: Serial: it asserts on measured loss, which the parallel phase's other test beds
#: can spoil (a 0.3 s stall of the shared machine cost both peers 29-36 pings there).
pytestmark = [pytest.mark.integration, pytest.mark.serial]

WEB1_MAC = "00:fa:00:00:00:01"
#: Pings (10 ms apart) a peer may lose while web1 moves between processes without a
#: notice. Measured (5 runs of this module, 2 peers; 2026-12-03, loaded machine):
#: 0-3 lost. Bound: 3x the worst.
LOSS_BOUND = 9      # 3 x 3
#: Pings a peer must have sent in the window (300 scheduled): the stream kept going.
MIN_SENT = 250
#: Seconds the pre-copy may last at most: until the destination asked for the VM (its
#: OVSDB watcher polls every 50 ms). Without a pre-copy the switchover followed the
#: port's creation by only the announcer's start-up, and in 4 of 23 runs (2026-12-05)
#: the destination asked after the VM had moved. Kept inside the pings' 3 s window.
PRE_COPY_LIMIT = 2.0


@pytest.fixture(scope="module")
def dist():
    setup = start_distributed("o%03d" % (os.getpid() % 1000), 19, ovsdb=True)
    yield setup
    setup.stop()


def _both_logs(source, destination) -> str:
    return (f"--- p1 (source)\n{source.log_tail()}\n"
            f"--- p2 (destination)\n{destination.log_tail()}")


def test_the_destination_asks_for_the_vm_before_it_moves(dist):
    web1 = dist.vms["web1"]
    streams = {peer: lab.PingStream(dist.vms[peer], web1, interval=0.01, count=300)
               for peer in ("web3", "web7")}
    source, destination = dist.controllers
    time.sleep(0.5)
    asked_line = f"store: VM {WEB1_MAC} expected on {dist.switches['s21']}"

    def pre_copy() -> None:
        """The destination port exists: the memory is copied (seconds in a real live
        migration) while the destination, seeing the port in OVSDB, asks for the VM."""
        asked_in_time.append(destination.wait_for_log(asked_line, timeout=PRE_COPY_LIMIT))

    asked_in_time: list = []
    live_migrate(dist.net, web1, dist.switches["s21"], before_switchover=pre_copy)
    lost = {peer: stream.result(timeout=30) for peer, stream in streams.items()}
    print(f"(sent, received) while web1 moved from p1 to p2 without a notice: {lost}")
    assert asked_in_time == [True], _both_logs(source, destination)
    assert destination.wait_for_log(f"activated VM {WEB1_MAC}", timeout=10), \
        _both_logs(source, destination)
    assert source.wait_for_log(f"VM {WEB1_MAC} moving to another process", timeout=10), \
        _both_logs(source, destination)
    p2 = destination.log()
    # the destination asked the owner while the VM was still expected, before it arrived
    asked = p2.index(asked_line)
    assert "asking its owner p1" in p2[asked:].splitlines()[0], p2[-3000:]
    assert asked < p2.index(f"activated VM {WEB1_MAC}"), p2[-3000:]
    assert all(sent >= MIN_SENT and sent - received <= LOSS_BOUND
               for sent, received in lost.values()), \
        f"{lost}\n{_both_logs(source, destination)}"


def test_a_move_abandoned_before_the_vm_resumed_is_withdrawn(dist):
    """A hypervisor creates web3's port on p2's server (link down: web3 has not resumed
    there), then deletes it: p2 withdraws its request and p1 stops handing web3 over."""
    web3 = dist.vms["web3"]
    mac, server = web3.MAC(), dist.switches["s22"]
    bridge_end, vm_end = f"{dist.prefix}ab0", f"{dist.prefix}ab1"
    subprocess.run(["ip", "link", "add", bridge_end, "type", "veth", "peer", "name", vm_end],
                   check=True)
    try:
        subprocess.run(["ip", "link", "set", bridge_end, "up"], check=True)   # no carrier
        subprocess.run(["ovs-vsctl", "add-port", server, bridge_end, "--", "set", "Interface",
                        bridge_end, f'external_ids:attached-mac="{mac}"'], check=True)
        p1, p2 = dist.controllers
        assert p2.wait_for_log(f"store: VM {mac} expected on {server}", timeout=10), \
            p2.log_tail()
        assert p1.wait_for_log(f"VM {mac} moving to another process", timeout=10), \
            p1.log_tail()
        assert _migration_flows(dist, "s12", mac)
        subprocess.run(["ovs-vsctl", "del-port", server, bridge_end], check=True)
        assert p2.wait_for_log(f"store: VM {mac} did not arrive here; hand-off withdrawn",
                               timeout=10), p2.log_tail()
        assert p1.wait_for_log(f"store: hand-off of VM {mac} withdrawn by its destination",
                               timeout=10), p1.log_tail()
        deadline = time.monotonic() + 10
        while _migration_flows(dist, "s12", mac) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _migration_flows(dist, "s12", mac)
        owners = {row["mac"]: (row["owner"], row["requested_owner"]) for row in dist.bindings()}
        assert owners[mac] == ("p1", None)
        assert " 0% packet loss" in dist.vms["web7"].cmd(f"ping -c 2 -W 1 {web3.IP()}")
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-port", server, bridge_end], check=False)
        subprocess.run(["ip", "link", "del", bridge_end], check=False,
                       stderr=subprocess.DEVNULL)


def _migration_flows(dist, server, mac):
    """The flows under a MIGRATION cookie for ``mac`` on a server bridge."""
    found = []
    for line in lab.dump_flows(dist.switches[server]).splitlines():
        cookie = re.search(r"cookie=(0x[0-9a-f]+)", line)
        owner = decode_cookie(int(cookie.group(1), 16)) if cookie else None
        if mac in line and owner is not None and owner.kind is CookieKind.MIGRATION:
            found.append(line)
    return found
