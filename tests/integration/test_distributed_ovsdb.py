"""Two controller processes that watch the servers' OVSDB: a VM moving between them
without a notice is asked for by the destination before it moves.

The destination sees the VM's new port (link down: the VM has not resumed there),
pre-provisions it and asks the owner for it in the store; the owner then delivers
the VM's frames toward the shared fabric too, so peers in both pods barely notice
the move.
"""

import os
import time

import pytest

from ryu_apps import lab
from ryu_apps.migration_lab import live_migrate
from tests.integration.conftest import start_distributed

pytestmark = pytest.mark.integration

WEB1_MAC = "00:fa:00:00:00:01"


@pytest.fixture(scope="module")
def dist():
    setup = start_distributed("o%03d" % (os.getpid() % 1000), 19, ovsdb=True)
    yield setup
    setup.stop()


def test_the_destination_asks_for_the_vm_before_it_moves(dist):
    web1 = dist.vms["web1"]
    streams = {peer: lab.PingStream(dist.vms[peer], web1, interval=0.01, count=300)
               for peer in ("web3", "web7")}
    time.sleep(0.5)
    live_migrate(dist.net, web1, dist.switches["s21"])
    lost = {peer: stream.result(timeout=30) for peer, stream in streams.items()}
    print(f"(sent, received) while web1 moved from p1 to p2 without a notice: {lost}")
    p1, p2 = (controller.log() for controller in dist.controllers)
    assert f"store: VM {WEB1_MAC} expected on {dist.switches['s21']}" in p2, p2[-3000:]
    asked = p1.index(f"VM {WEB1_MAC} moving to another process")
    assert asked < p1.index(f"store: VM {WEB1_MAC} claimed by another process"), p1[-3000:]
    assert f"activated VM {WEB1_MAC}" in p2
    assert all(sent >= 250 and sent - received <= 20 for sent, received in lost.values()), lost
