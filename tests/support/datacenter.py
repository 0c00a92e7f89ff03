"""The migration tests' running datacenter (controller, network, VMs and switches by name),
and whether a VM answers once a move is over."""

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


def reachable(src, dst, attempts: int = 10) -> bool:
    """Whether ``dst`` answers ``src``'s ping within ``attempts`` tries of 1 s (a prober
    run can end inside one of the loaded datapath's stalls, lost at its last probe)."""
    return any(" 0% packet loss" in src.cmd(f"ping -c 1 -W 1 {dst.IP()}")
               for _ in range(attempts))
