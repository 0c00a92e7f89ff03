"""Fixtures that start the real controller and a real Mininet topology."""

import os

import pytest

from ryu_apps import lab


def unique_prefix() -> str:
    """A short per-run prefix so parallel runs never share a bridge name."""
    return "t%03d" % (os.getpid() % 1000)


@pytest.fixture(scope="module")
def datacenter():
    """Controller + the default topology (2 access, 2 servers each, 2 VMs each)."""
    controller = lab.ControllerProcess().start()
    net = None
    try:
        net = lab.build_network(controller.of_port, prefix=unique_prefix())
        lab.wait_for_fabric(controller, net)
        for vm in net.hosts:
            lab.announce(vm)
        assert controller.wait_for_log("provisioned VM", timeout=15,
                                       count=len(net.hosts)), controller.log()
        yield controller, net
    finally:
        if net is not None:
            lab.stop_network(net)
        controller.stop()
