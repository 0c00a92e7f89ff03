"""The migration tests' running datacenter: controller, network, VMs and switches by name."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Tuple

from ryu_apps.lab import testbed as lab
from tests.integration.conftest import start_datacenter, stop_datacenter, unique_prefix


@contextmanager
def migration_datacenter(letter: str, ovsdb: bool) -> Iterator[Tuple]:
    """The default library and topology with the edge device, bridges named
    ``letter`` + this run's number; yields (controller, net, vms, switches), the
    last two by name without the prefix (``web1``, ``s11``). Stopped on the way out."""
    controller, net = start_datacenter(lab.DEFAULT_TEMPLATES, letter + unique_prefix()[1:],
                                       ovsdb=ovsdb, edge=1)
    try:
        vms = {h.name[4:]: h for h in net.hosts}
        switches = {s.name[4:]: s for s in net.switches}
        yield controller, net, vms, switches
    finally:
        stop_datacenter(controller, net)
