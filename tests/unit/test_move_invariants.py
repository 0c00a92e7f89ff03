"""A VM moving under one access switch (and across two, and between two ports of one
server), in every detection mode: a notice alone, OVSDB watched, packets only. The
invariants hold after every plan, also between a plan and the device messages it
carries (the activation's MigrationDone): a switch reconnecting at any step gets
nothing, because one switch entry has one owner, and the VM ends reachable at its
new port only."""

from __future__ import annotations

from typing import Callable, Dict, List

import pytest

from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import OFPP_CONTROLLER
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.pipeline import Table
from tests.support.fake_switches import FakeSwitches, Packet
from tests.support.invariants import check_event
from tests.unit.test_engine_invariants import IPS, LIBRARY, LINKS, S11, S12, S21, SWITCHES, \
    UPLINK

VM, PEER = "00:fa:00:00:00:01", "00:fa:00:00:00:02"
NEW_PORT = 5
NAMES: Dict[int, str] = {dpid: name for dpid, _, name in SWITCHES}


class Lab:
    """The invariants' fabric (two access switches, a redundant fabric); the invariants
    are checked after every plan, before its device messages are delivered (the app
    delivers them right after, but a desired state holding two owners for one switch
    entry would make any reconcile in between pick one by chance)."""

    def __init__(self) -> None:
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
        self.switches = FakeSwitches()
        self.now = 0.0
        for dpid, role, name in SWITCHES:
            self.run(lambda e, d=dpid, r=role, n=name: e.switch_up(d, r, n, [], now=0.0))
        for a, b in LINKS:
            self.run(lambda e, a=a, b=b: e.link_seen(PortRef(*a), PortRef(*b), now=0.0))
        self.bind(S11, 1, VM)
        self.bind(S12, 1, PEER)
        for dpid in (S11, S12, S21):
            self.engine.ports_seen(dpid, [1, 2, UPLINK])

    def run(self, event: Callable[[ProvisioningEngine], object]) -> None:
        result = event(self.engine)
        self._apply(getattr(result, "plan", result))

    def _apply(self, plan: Plan) -> None:
        self.switches.apply(plan)
        self.engine.confirm(plan.confirms)
        check_event(self.engine, self.switches, plan)
        for message in plan.messages:
            self._apply(self.engine.receive(message, now=self.now))

    def bind(self, dpid: int, port: int, mac: str) -> None:
        self.run(lambda e: e.packet_in(dpid, port, mac, b"frame", now=self.now))
        self.run(lambda e: e.packet_in(dpid, port, mac, b"frame", sender_ip=IPS[mac],
                                       now=self.now))

    def at(self, dpid: int, port: int) -> None:
        """The VM's first frame at its new port."""
        self.now += 1.0
        self.run(lambda e: e.packet_in(dpid, port, VM, b"rarp", now=self.now))

    def reached(self) -> List[tuple]:
        """Where PEER's ARP for VM leaves (its controller copies aside)."""
        peer = self.engine.bindings[PEER]
        packet = Packet(PEER, VM, eth_type=0x0806, arp_spa=IPS[PEER])
        return sorted((d, p) for d, p, _ in self.switches.trace(
            self.engine.fabric, peer.dpid, peer.port, packet) if p != OFPP_CONTROLLER)


def _notice(lab: Lab, dpid: int, port: int) -> None:
    lab.run(lambda e: e.port_up(dpid, port, now=lab.now))
    lab.run(lambda e: e.notify(Notice.MIGRATING, VM, server=NAMES[dpid], now=lab.now))
    assert (lab.engine.incoming[VM].dpid, lab.engine.incoming[VM].port) == (dpid, port)
    lab.at(dpid, port)


def _ovsdb(lab: Lab, dpid: int, port: int) -> None:
    lab.run(lambda e: e.vm_attached(dpid, port, VM, now=lab.now))
    assert (lab.engine.incoming[VM].dpid, lab.engine.incoming[VM].port) == (dpid, port)
    lab.at(dpid, port)
    lab.run(lambda e: e.vm_detached(S11, 1, VM, now=lab.now))


def _packets_only(lab: Lab, dpid: int, port: int) -> None:
    lab.at(dpid, port)                      # refused while the old port may still hold it
    for _ in range(4):                      # the liveness probe goes unanswered
        lab.now += 20.0
        lab.run(lambda e: e.tick(lab.now))
    lab.at(dpid, port)


def _packets_port_down(lab: Lab, dpid: int, port: int) -> None:
    lab.run(lambda e: e.port_down(S11, 1, now=lab.now))
    lab.at(dpid, port)


MOVES = {"notice": _notice, "ovsdb": _ovsdb, "packets": _packets_only,
         "packets-port-down": _packets_port_down}
PLACES = {"one-access-switch": S12, "two-access-switches": S21, "one-server": S11}
#: A notice names a server: to the VM's own it moves nothing.
SHAPES = [(move, place) for place in PLACES for move in MOVES
          if (move, place) != ("notice", "one-server")]


@pytest.mark.parametrize("move, place", SHAPES, ids=[f"{m}-{p}" for m, p in SHAPES])
def test_every_move_keeps_the_invariants_at_every_plan(move, place):
    lab = Lab()
    dpid, port = PLACES[place], NEW_PORT
    MOVES[move](lab, dpid, port)
    binding = lab.engine.bindings[VM]
    assert (binding.dpid, binding.port) == (dpid, port)
    assert VM not in lab.engine.incoming and VM not in lab.engine.outgoing
    assert lab.reached() == [(dpid, port)]


def test_between_activation_and_release_the_source_gives_up_its_way_in():
    """The plan that activates the VM under the same access switch: the old binding's
    FORWARD entries (keyed by the VM's MAC alone, like the new ones) are no longer
    desired, so the access switch and the fabric hold the new binding's entry only."""
    lab = Lab()
    lab.run(lambda e: e.vm_attached(S12, NEW_PORT, VM, now=lab.now))
    source = lab.engine.bindings[VM]
    activation = lab.engine.packet_in(S12, NEW_PORT, VM, b"rarp", now=lab.now + 1).plan
    assert activation.messages, "the activation tells the source device"
    lab.switches.apply(activation)
    desired = lab.engine.desired.flows_of(source.owner)
    assert desired and not [f for f in desired if getattr(f, "table_id", None) == Table.FORWARD]
    assert VM in lab.engine.outgoing
    check_event(lab.engine, lab.switches, activation)
