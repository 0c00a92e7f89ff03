"""Fixtures that start the real controller and a real Mininet topology."""

import os
import shutil
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab

LIBRARIES = Path(__file__).parent / "libraries"
#: Templates that allow all traffic: only VLANs separate them.
OPEN_LIBRARY = LIBRARIES / "open"


def unique_prefix() -> str:
    """A short per-run prefix so parallel runs never share a bridge name."""
    return "t%03d" % (os.getpid() % 1000)


LOCAL_OVSDB = "unix:/var/run/openvswitch/db.sock"


def start_datacenter(templates: Path, prefix: str, ovsdb: bool = False,
                     extra_options: str = "", **topo):
    """Start a controller and the datacenter topology; every VM announces itself.

    The edge device and outside host are left out unless ``edge=1`` is given;
    ``extra_options`` are more ``[dynprov]`` lines for the controller.
    """
    topo.setdefault("edge", 0)
    # Datapath ids unique to this run: the OVSDB watcher sees every bridge on the machine.
    topo.setdefault("dpid_base", (os.getpid() % 4096) << 24)
    extra = (f"ovsdb = {LOCAL_OVSDB}\n" if ovsdb else "") + extra_options
    controller = lab.ControllerProcess(templates=templates, extra_options=extra).start()
    net = None
    try:
        net = lab.build_network(controller.of_port, prefix=prefix, **topo)
        lab.wait_for_fabric(controller, net)
        for vm in net.hosts:
            lab.announce(vm)
        assert controller.wait_for_log("provisioned VM", timeout=15,
                                       count=len(net.hosts)), controller.log()
    except BaseException:
        stop_datacenter(controller, net)
        raise
    return controller, net


def stop_datacenter(controller, net) -> None:
    """Stop what start_datacenter started, by PID and bridge name."""
    if net is not None:
        lab.stop_network(net)
    controller.stop()


@pytest.fixture(scope="module")
def datacenter():
    """Controller with the open library + the default topology (2x2 servers, 2 VMs each)."""
    controller, net = start_datacenter(OPEN_LIBRARY, unique_prefix())
    yield controller, net
    stop_datacenter(controller, net)


@pytest.fixture(scope="module")
def datacenter_own_library(tmp_path_factory):
    """Like ``datacenter``, on a private copy of the open library that tests may edit.

    Yields (controller, net, library directory). Node names start with ``r``.
    """
    library = tmp_path_factory.mktemp("library") / "open"
    shutil.copytree(OPEN_LIBRARY, library)
    controller, net = start_datacenter(library, "r%03d" % (os.getpid() % 1000))
    yield controller, net, library
    stop_datacenter(controller, net)


def start_distributed(prefix: str, dpid_seed: int, **options):
    """A started DistributedLab with every VM provisioned, and ``vms``/``switches`` by
    their names without the prefix; stopped (and re-raised) if starting fails."""
    from ryu_apps.lab.distributed import DistributedLab

    setup = DistributedLab(prefix=prefix, dpid_base=((os.getpid() + dpid_seed) % 4096) << 24,
                           **options)
    setup.start()
    try:
        setup.announce_all()
    except BaseException:
        setup.stop()
        raise
    setup.vms = {h.name[len(prefix):]: h for h in setup.net.hosts}
    setup.switches = {s.name[len(prefix):]: s.name for s in setup.net.switches}
    return setup
