"""The generated data center of the scale benchmarks: fabric, access switches, servers
and VMs driven through the real pure core in one process (no switches, no clock).

The default template library: web and database share VLAN 100 with different
port-side rules, so those servers carry the template merge. Used by
:mod:`benchmarks.scale`, :mod:`benchmarks.library_reload` and
:mod:`benchmarks.transit_cost`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
VMS_PER_SERVER = 30
SERVERS_PER_ACCESS = 40
FABRIC_SWITCHES = 2
UPLINK = 100            # a server's port toward its access switch
FREE_PORT_BASE = 200    # ports above this are free on every server (new VMs, migrations)
TEMPLATE_MIX = (250, 250, 250, 252, 252, 254, 240)   # web, web, web, db, db, mgmt, quarantine


class DataCenter:
    """The generated fabric and the engine driven over it."""

    def __init__(self, bindings: int, seed: int = 1, library=None,
                 choose_template: Callable[[random.Random], int] | None = None,
                 vms_per_server: int = VMS_PER_SERVER) -> None:
        from ryu_apps.core.engine import ProvisioningEngine
        from ryu_apps.core.identifiers import PrefixScheme
        from ryu_apps.loaders.library_files import load_library

        self.rng = random.Random(seed)
        self.library = library if library is not None else load_library(ROOT / "templates")
        self.choose_template = choose_template or (lambda rng: rng.choice(TEMPLATE_MIX))
        self.engine = ProvisioningEngine(self.library, PrefixScheme(16))
        self.vms_per_server = vms_per_server
        self.servers = max(1, -(-bindings // vms_per_server))
        self.access = max(1, -(-self.servers // SERVERS_PER_ACCESS))
        self.fabric = [0x10000 + i for i in range(FABRIC_SWITCHES)]
        self.access_dpids = [0x20000 + i for i in range(self.access)]
        self.server_dpids = [0x30000 + i for i in range(self.servers)]
        self.vms: List[tuple] = []      # (dpid, port, mac)
        self._serial = 0
        first_free = max(FREE_PORT_BASE, self.vm_port(vms_per_server) + 1)
        self._next_free: Dict[int, int] = {d: first_free for d in self.server_dpids}

    # -- building ------------------------------------------------------------
    def build_fabric(self) -> None:
        from ryu_apps.core.fabric import PortRef, Role
        engine = self.engine
        for i, dpid in enumerate(self.fabric):
            engine.switch_up(dpid, Role.FABRIC, f"f{i}", [], now=0.0)
        for i, dpid in enumerate(self.access_dpids):
            engine.switch_up(dpid, Role.ACCESS, f"a{i}", [], now=0.0)
        for i, dpid in enumerate(self.server_dpids):
            engine.switch_up(dpid, Role.SERVER, f"s{i}", [], now=0.0)
        for i, access in enumerate(self.access_dpids):
            for j, fabric in enumerate(self.fabric):
                engine.link_seen(PortRef(access, 1 + j), PortRef(fabric, 1 + i), now=0.0)
        for i, server in enumerate(self.server_dpids):
            self.uplink_of(i, server)
            engine.link_seen(PortRef(server, UPLINK), self.uplink_of(i, server), now=0.0)

    def uplink_of(self, index: int, server: int):
        from ryu_apps.core.fabric import PortRef
        return PortRef(self.access_dpids[index // SERVERS_PER_ACCESS],
                       10 + index % SERVERS_PER_ACCESS)

    def new_mac(self) -> str:
        self._serial += 1
        template = self.choose_template(self.rng)
        value = (template << 32) | self._serial
        return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))

    def populate(self, bindings: int, start: int = 0) -> None:
        """Provision VMs ``start`` to ``bindings``, ``vms_per_server`` per server, by first
        packet."""
        engine = self.engine
        for n in range(start, bindings):
            dpid = self.server_dpids[n // self.vms_per_server]
            port = self.vm_port(n % self.vms_per_server)
            mac = self.new_mac()
            verdict = engine.packet_in(dpid, port, mac, b"", now=0.0)
            engine.confirm(verdict.plan.confirms)
            self.vms.append((dpid, port, mac))

    @staticmethod
    def vm_port(index: int) -> int:
        """The port of a server's ``index``-th VM (ports from 1, the uplink skipped)."""
        return index + 1 if index + 1 < UPLINK else index + 2

    def fresh_ip(self) -> str:
        """A fresh VM's IPv4 address (its first frame carries it)."""
        serial = self._serial
        return f"10.{(serial >> 16) & 0xFF}.{(serial >> 8) & 0xFF}.{serial & 0xFF or 1}"

    def free_port(self, dpid: int) -> int:
        port = self._next_free[dpid]
        self._next_free[dpid] = port + 1
        return port


def end_searches(engine) -> None:
    """The search for a VM whose port went down ends, as it would SEARCH_SECONDS later.

    The benchmark's clock stands still (every event at 0.0), so without this every
    sample's search would last for the rest of the run and each new VM would pay
    for all of them (a scan of the searches when its port is taken), a cost of the
    benchmark's sample count, not of the bindings."""
    from ryu_apps.core.probe_search import SEARCH_SECONDS
    engine.tick(SEARCH_SECONDS)
