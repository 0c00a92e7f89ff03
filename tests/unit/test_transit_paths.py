"""Per-VM entries only on a VM's way to the root of its tree (ryu_apps/core/transit.py).

On generated fabrics (one or two fabric switches, one to three layers of access
switches, redundant links, an edge device, a second component) every VM's
per-VM entries lie on its server's ancestors only, an access switch off that
way gets nothing when the VM arrives, and after every event the oracle's
delivery matrix and the engine's invariants hold (tests/support).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List, Set, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ryu_apps.core.cookies import CookieKind, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library
from tests.support.fake_switches import FakeSwitches, Packet
from tests.support.invariants import check_delivery, check_event, facts_of

LIBRARY = load_library(Path(__file__).resolve().parents[2] / "templates")
UPLINK, SPARE_PORT = 100, 99
#: web x3 and database (VLAN 100, the template merge), management, outside host
IPS = {"00:fa:00:00:00:01": "10.0.100.1", "00:fa:00:00:00:02": "10.0.100.2",
       "00:fa:00:00:00:03": "10.0.100.3", "00:fc:00:00:00:01": "10.0.200.1",
       "00:fe:00:00:00:01": "10.0.30.1", "00:f2:00:00:00:01": "192.0.2.1"}
VM_MACS = sorted(mac for mac in IPS if not mac.startswith("00:f2"))
OUTSIDE = "00:f2:00:00:00:01"


class Generated:
    """A fabric built from a seed: switches, links, and where each server hangs."""

    def __init__(self, seed: int, layers: int, redundant: bool, edge: bool,
                 second: bool) -> None:
        rng = random.Random(seed)
        self.switches: List[Tuple[int, Role, str]] = []
        self.links: List[Tuple[Tuple[int, int], Tuple[int, int]]] = []
        self._next_port: Dict[int, int] = {}
        fabric = [0x100 + i for i in range(rng.choice((1, 2)))]
        for dpid in fabric:
            self._switch(dpid, Role.FABRIC)
        layer, access = fabric, []
        for depth in range(layers):
            below = [0x200 + 0x10 * depth + i for i in range(rng.choice((1, 2, 3)))]
            for dpid in below:
                self._switch(dpid, Role.ACCESS)
                self._link(dpid, rng.choice(layer))
            if redundant and len(layer) > 1:
                self._link(below[0], layer[-1] if self._parent_of(below[0]) != layer[-1]
                           else layer[0])
            access += below
            layer = below
        self.servers = [0x1000 + i for i in range(rng.choice((2, 3, 4)))]
        for server in self.servers:
            self._switch(server, Role.SERVER)
            self._link(server, rng.choice(access), server_port=UPLINK)
        self.edge = 0x3000 if edge else None
        if self.edge is not None:
            self._switch(self.edge, Role.EDGE)
            self._link(self.edge, rng.choice(fabric), server_port=UPLINK)
        if second:   # an island: its own access switch and server
            self._switch(0x2F0, Role.ACCESS)
            self._switch(0x1F00, Role.SERVER)
            self._link(0x1F00, 0x2F0, server_port=UPLINK)
            self.servers.append(0x1F00)
        self.access = access + ([0x2F0] if second else [])

    def _switch(self, dpid: int, role: Role) -> None:
        self.switches.append((dpid, role, f"{role.value[0]}{dpid:x}"))

    def _port(self, dpid: int) -> int:
        self._next_port[dpid] = self._next_port.get(dpid, 0) + 1
        return self._next_port[dpid]

    def _link(self, child: int, parent: int, server_port: int | None = None) -> None:
        self.links.append(((child, server_port or self._port(child)),
                           (parent, self._port(parent))))

    def _parent_of(self, dpid: int) -> int:
        return next(b[0] for a, b in self.links if a[0] == dpid)


class World:
    """The engine on a generated fabric; invariants and oracle after every event."""

    def __init__(self, fabric: Generated, check: bool = True, library=LIBRARY) -> None:
        self.engine = ProvisioningEngine(library, PrefixScheme(16))
        self.switches = FakeSwitches()
        self.check = check
        self.links = set()
        for dpid, role, name in fabric.switches:
            self.run(lambda e, d=dpid, r=role, n=name: e.switch_up(d, r, n, [], now=0.0))
        for a, b in fabric.links:
            self.links.add(frozenset((PortRef(*a), PortRef(*b))))
            self.run(lambda e, a=a, b=b: e.link_seen(PortRef(*a), PortRef(*b), now=0.0))

    def run(self, event) -> Plan:
        result = event(self.engine)
        first = getattr(result, "plan", result)
        pending, applied = [first], []
        while pending:
            plan = pending.pop(0)
            self.switches.apply(plan)
            self.engine.confirm(plan.confirms)
            applied.append(plan)
            pending += [self.engine.receive(m, now=0.0) for m in plan.messages]
        if self.check:
            check_event(self.engine, self.switches, applied)
            facts = facts_of(self.engine, LIBRARY)
            assert facts.links == self.links
            check_delivery(self.switches, facts, IPS, SPARE_PORT)
        return first

    def bind(self, dpid: int, port: int, mac: str) -> Plan:
        plan = self.run(lambda e: e.packet_in(dpid, port, mac, b"frame", now=0.0))
        if mac in IPS:   # it speaks with its address (bind_ip learns it)
            self.run(lambda e: e.packet_in(dpid, port, mac, b"frame", sender_ip=IPS[mac],
                                           now=0.0))
        return plan


def _ancestors(engine: ProvisioningEngine, server: int) -> Set[int]:
    tree = engine.fabric.rooted_tree()
    return {d for d in tree.up_path(server)[1:] if not engine.fabric.role(d).hosts_vms}


def _per_vm_switches(world: World, mac: str) -> Set[int]:
    binding = world.engine.state.table.bindings[mac]
    return {f.dpid for f in world.switches.all_flows() if f.cookie == binding.owner.cookie
            and f.dpid != binding.dpid}


def _check_paths(world: World, fabric: Generated) -> None:
    engine = world.engine
    for mac, binding in engine.state.table.bindings.items():
        on = _per_vm_switches(world, mac)
        assert on == _ancestors(engine, binding.dpid), (
            f"VM {mac} on {binding.dpid:#x}: per-VM entries on {sorted(map(hex, on))}")
        assert not on & {a for a in fabric.access if a not in _ancestors(engine, binding.dpid)}
    for dpid, role, _ in fabric.switches:
        tree = engine.fabric.rooted_tree()
        if tree.root.get(dpid) == dpid and len(tree.subtree(dpid)) > 1:
            assert role is Role.FABRIC or not any(
                r is Role.FABRIC and tree.root.get(d) == dpid for d, r, _ in fabric.switches), (
                f"root {dpid:#x} is a {role.value} switch beside a fabric switch")


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), layers=st.integers(1, 3), redundant=st.booleans(),
       edge=st.booleans(), second=st.booleans(),
       placements=st.lists(st.integers(0, 10), min_size=len(VM_MACS),
                           max_size=len(VM_MACS)))
def test_per_vm_entries_only_between_the_server_and_the_root(seed, layers, redundant, edge,
                                                              second, placements):
    fabric = Generated(seed, layers, redundant, edge, second)
    world = World(fabric)
    for n, (mac, pick) in enumerate(zip(VM_MACS, placements)):
        world.bind(fabric.servers[pick % len(fabric.servers)], 1 + n, mac)
    if fabric.edge is not None:
        world.bind(fabric.edge, 1, OUTSIDE)
    _check_paths(world, fabric)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), layers=st.integers(1, 3), redundant=st.booleans())
def test_a_new_vm_costs_nothing_on_access_switches_off_its_way(seed, layers, redundant):
    """Once its VLAN is on every server (the VLAN's own flows are in place), a new
    VM's plan touches its server and the switches between it and the root only."""
    fabric = Generated(seed, layers, redundant, edge=True, second=False)
    world = World(fabric, check=False)
    for n, server in enumerate(fabric.servers):
        world.bind(server, 1, f"00:fa:00:00:01:{n:02x}")
    for server in fabric.servers:
        plan = world.bind(server, 50, f"00:fa:00:00:02:{server & 0xFF:02x}")
        touched = {d for d, changes in plan.changes.items() if changes}
        way = _ancestors(world.engine, server)
        assert touched <= {server} | way
        assert way and not touched & (set(fabric.access) - way)


def _pod() -> Generated:
    """f1 over access a1 (servers s1, s2) and a2 (server s3), one VM layer."""
    fabric = Generated.__new__(Generated)
    fabric.switches = [(0x100, Role.FABRIC, "f1"), (0x201, Role.ACCESS, "a1"),
                       (0x202, Role.ACCESS, "a2"), (0x1001, Role.SERVER, "s1"),
                       (0x1002, Role.SERVER, "s2"), (0x1003, Role.SERVER, "s3")]
    fabric.links = [((0x201, 1), (0x100, 1)), ((0x202, 1), (0x100, 2)),
                    ((0x1001, UPLINK), (0x201, 2)), ((0x1002, UPLINK), (0x201, 3)),
                    ((0x1003, UPLINK), (0x202, 2))]
    fabric.servers, fabric.access, fabric.edge = [0x1001, 0x1002, 0x1003], [0x201, 0x202], None
    return fabric


def test_a_neighbour_access_switch_gets_nothing_when_a_vm_arrives_next_door():
    """VLAN 100 has members under a1 and a2; more VMs arrive under a1 (on a server of
    the VLAN, then on a new one): a2 and s3 get nothing, the VMs' entries go to a1
    and f1 (the root) only."""
    world = World(_pod())
    world.bind(0x1003, 1, "00:fa:00:00:00:02")
    world.bind(0x1001, 1, "00:fa:00:00:00:01")
    for server, mac in ((0x1001, "00:fa:00:00:00:03"), (0x1002, "00:fc:00:00:00:01")):
        plan = world.bind(server, 2, mac)
        assert {d for d, c in plan.changes.items() if c} <= {server, 0x201, 0x100}
        assert _per_vm_switches(world, mac) == {0x201, 0x100}
    # a2 reaches it through VLAN 100's default toward f1, the root
    defaults = [f for f in world.switches.flows(0x202)
                if decode_cookie(f.cookie).kind is CookieKind.VLAN
                and f.match_dict() == {"vlan_vid": 0x1000 | 100}]
    assert [f.instructions[0].actions for f in defaults] == [(_output(1),)]


def test_a_broken_tree_moves_entries_and_defaults_with_it():
    """a2 loses its uplink to f1 and hangs below a1 instead: its VMs' entries move to
    a1's way (a1 becomes their ancestor), delivery holds throughout."""
    fabric = _pod()
    fabric.links.append(((0x202, 5), (0x201, 5)))
    world = World(fabric)
    world.bind(0x1003, 1, VM_MACS[1])
    world.bind(0x1001, 1, VM_MACS[0])
    assert _per_vm_switches(world, VM_MACS[1]) == {0x202, 0x100}
    world.links = {link for link in world.links if PortRef(0x202, 1) not in link}
    world.run(lambda e: e.port_down(0x202, 1, now=0.0))
    assert _per_vm_switches(world, VM_MACS[1]) == {0x202, 0x201, 0x100}


def _output(port: int):
    from ryu_apps.core.flowspec import Output
    return Output(port)


def test_the_switch_with_the_shared_uplink_roots_its_pod():
    """The uplink to the shared fabric is on a2 (not the fabric switch, not the lowest
    dpid): a2 roots the tree, so a frame for another process's VM climbs by defaults
    to a2 and leaves by its uplink, and a frame coming in by it reaches a VM under a1."""
    from tests.unit.test_shared_fabric import LIBRARY as ALLOW_ALL
    world = World(_pod(), check=False, library=ALLOW_ALL)
    world.run(lambda e: e.shared_uplink_seen(PortRef(0x202, 9), "p2", now=0.0))
    tree = world.engine.fabric.rooted_tree()
    assert tree.root[0x1001] == 0x202
    world.bind(0x1001, 1, "00:fa:00:00:00:01")
    world.bind(0x1003, 1, "00:fa:00:00:00:02")
    assert _per_vm_switches(world, "00:fa:00:00:00:01") == {0x201, 0x100, 0x202}
    assert _per_vm_switches(world, "00:fa:00:00:00:02") == {0x202}
    fabric = world.engine.fabric
    elsewhere = Packet("00:fa:00:00:00:01", "00:fa:00:00:09:09")
    assert [(d, p) for d, p, _ in world.switches.trace(fabric, 0x1001, 1, elsewhere)] == [
        (0x202, 9)]
    incoming = Packet("00:fa:00:00:09:09", "00:fa:00:00:00:01", vlan_vid=0x1000 | 100)
    assert [(d, p) for d, p, _ in world.switches.trace(fabric, 0x202, 9, incoming)] == [
        (0x1001, 1)]
