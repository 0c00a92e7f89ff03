"""The indexed engine behaves exactly like the engine before it was indexed.

Long random event sequences drive the real engine and the pre-refactor
reference (tests/support/reference_engine.py) side by side; after every event
both switch tables (fed by the plans each returned) and both binding tables
must be identical, and the real engine's indexes must agree with a brute-force
recomputation from its bindings.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.lifecycle import Notice, NotificationError
from ryu_apps.core.template_model import Action
from ryu_apps.loaders.library_files import load_library
from tests.support.fake_switches import FakeSwitches
from tests.support.index_check import check_indexes
from tests.support.reference_engine import ReferenceEngine

LIBRARY = load_library(Path(__file__).resolve().parents[2] / "templates")
F1, F2, A1, A2, E1 = 0x100, 0x101, 0x201, 0x202, 0x301
S11, S12, S21, S22 = 0x1101, 0x1102, 0x2101, 0x2102
SERVERS = (S11, S12, S21, S22)
UPLINK = 10
SWITCHES = [(F1, Role.FABRIC, "f1"), (F2, Role.FABRIC, "f2"), (A1, Role.ACCESS, "a1"),
            (A2, Role.ACCESS, "a2"), (E1, Role.EDGE, "e1"), (S11, Role.SERVER, "s11"),
            (S12, Role.SERVER, "s12"), (S21, Role.SERVER, "s21"),
            (S22, Role.SERVER, "s22")]
LINKS = [((A1, 1), (F1, 1)), ((A2, 1), (F1, 2)), ((A1, 5), (F2, 1)), ((A2, 5), (F2, 2)),
         ((E1, UPLINK), (F1, 3)), ((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3)),
         ((S21, UPLINK), (A2, 2)), ((S22, UPLINK), (A2, 3))]
# web, database (same VLAN, other port-side rules: the merge), management, outside, unknown
MACS = ["00:fa:00:00:00:01", "00:fa:00:00:00:02", "00:fa:00:00:00:03", "00:fc:00:00:00:01",
        "00:fc:00:00:00:02", "00:fe:00:00:00:01", "00:f2:00:00:00:01", "00:0b:00:00:00:01"]
HOSTS = SERVERS + (E1,)


def _changed_library(library, template_id):
    """The library with one template's virtual-switch default action flipped."""
    template = library.get(template_id)
    side = template.virtual_switch
    flipped = Action.ALLOW if side.default_action is Action.DENY else Action.DENY
    changed = dataclasses.replace(template, virtual_switch=dataclasses.replace(
        side, default_action=flipped))
    return dataclasses.replace(library, templates={**library.templates, template_id: changed})


class Twin:
    """The real engine and the reference, each with its own fake switches."""

    def __init__(self) -> None:
        self.engines = [ProvisioningEngine(LIBRARY, PrefixScheme(16)),
                        ReferenceEngine(LIBRARY, PrefixScheme(16))]
        self.switches = [FakeSwitches(), FakeSwitches()]
        for dpid, role, name in SWITCHES:
            self.each(lambda e: e.switch_up(dpid, role, name, []))
        for a, b in LINKS:
            self.each(lambda e: e.link_seen(PortRef(*a), PortRef(*b)))

    def each(self, event):
        """Run ``event(engine)`` on both; apply and deliver what it returns."""
        outcomes = []
        for engine, switches in zip(self.engines, self.switches):
            try:
                result = event(engine)
            except NotificationError as error:
                outcomes.append(("refused", str(error)))
                continue
            plan = getattr(result, "plan", result)
            switches.apply(plan)
            engine.confirm(plan.confirms)
            pending = list(plan.messages)
            while pending:
                reply = engine.receive(pending.pop(0))
                switches.apply(reply)
                engine.confirm(reply.confirms)
                pending += reply.messages
            outcomes.append(("done", None))
        assert outcomes[0] == outcomes[1]

    def check(self) -> None:
        real, reference = self.engines
        assert real.bindings == reference.bindings
        assert real.incoming == reference.incoming
        assert real.outgoing == reference.outgoing
        assert real.moved_port_rules() == reference.moved_port_rules()
        for dpid, _, _ in SWITCHES:
            assert self.switches[0].entries(dpid) == self.switches[1].entries(dpid), hex(dpid)
            assert real.desired.on_switch(dpid) == reference.desired.on_switch(dpid), hex(dpid)
        check_indexes(real)


EVENT = st.tuples(st.sampled_from(["new", "known", "port_down", "idle", "attach", "detach",
                                   "migrate", "suspend", "resume", "restart", "shutdown",
                                   "template", "link_flap", "reload", "restart_switch"]),
                  st.sampled_from(HOSTS), st.integers(1, 4), st.sampled_from(MACS),
                  st.sampled_from(SERVERS), st.integers(0, 3))


def _event(twin: Twin, kind, host, port, mac, server, pick) -> None:
    name = {dpid: n for dpid, _, n in SWITCHES}
    if kind == "new":
        twin.each(lambda e: e.packet_in(host, port, mac, b"frame"))
    elif kind == "known":
        twin.each(lambda e: e.packet_in(host, port, mac, b"frame",
                                        sender_ip=f"10.0.100.{port}"))
    elif kind == "port_down":
        twin.each(lambda e: e.port_down(host, port))
    elif kind == "idle":
        binding = twin.engines[0].bindings.get(mac)
        if binding is not None:
            cookie = binding.owner.cookie
            twin.each(lambda e: e.flow_removed(binding.dpid, cookie, True))
    elif kind == "attach":
        twin.each(lambda e: e.vm_attached(host, port, mac))
    elif kind == "detach":
        twin.each(lambda e: e.vm_detached(host, port, mac))
    elif kind == "migrate":
        twin.each(lambda e: e.notify(Notice.MIGRATING, mac, server=name[server]))
    elif kind in ("suspend", "resume", "restart", "shutdown"):
        notice = {"suspend": Notice.SUSPENDED, "resume": Notice.RESUMED,
                  "restart": Notice.RESTARTING, "shutdown": Notice.SHUTDOWN}[kind]
        twin.each(lambda e: e.notify(notice, mac))
    elif kind == "template":
        twin.each(lambda e: e.notify(Notice.TEMPLATE_CHANGE, mac,
                                     template_id=(250, 252, 254, 240)[pick]))
    elif kind == "link_flap":
        a, b = LINKS[pick * 2 + (port % 2)] if pick * 2 + 1 < len(LINKS) else LINKS[-1]
        twin.each(lambda e: e.port_down(*a))
        twin.each(lambda e: e.link_seen(PortRef(*a), PortRef(*b)))
    elif kind == "reload":
        library = _changed_library(LIBRARY, (250, 252, 254, 240)[pick])
        twin.each(lambda e: e.set_library(library))
    elif kind == "restart_switch":
        dpid, role, switch_name = SWITCHES[(pick + port) % len(SWITCHES)]
        held = twin.switches[0].entries(dpid)
        twin.each(lambda e: e.switch_up(dpid, role, switch_name, held))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(EVENT, min_size=5, max_size=60))
def test_random_events_give_the_same_switch_tables_as_before(events):
    twin = Twin()
    twin.check()
    for event in events:
        _event(twin, *event)
        twin.check()
