"""Meter writes are idempotent (app/meter_writes.py): the read-back race that adds a
meter the switch already holds (link discovery's LLDP meter), on a switch that refuses
meter writes as Open vSwitch does; the error handler's retry; real errors untouched."""

from __future__ import annotations

import logging
import struct
from types import SimpleNamespace
from typing import Dict, List, Optional

from ryu_apps.app import prerendered
from ryu_apps.app.framework import ofproto_v1_3 as ofp
from ryu_apps.app.meter_writes import MeterRetries, desired_meter, refused_meter_mod
from ryu_apps.app.openflow_bytes import encoded_meter_mod
from ryu_apps.app.switch_events import SwitchEventHandlers
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import MeterSpec
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.pipeline import LLDP_PORT_METER_BASE, lldp_port_meter
from tests.support.small_fabric import A1, F1, S11, bring_up
from tests.unit.test_shared_pipeline import LIBRARY


class MeterSwitch:
    """A switch's meters as Open vSwitch keeps them: an ADD of a meter it holds and a
    MODIFY of one it lacks are refused with the error OVS sends (quoting the request)."""

    def __init__(self, dpid: int, held: Optional[Dict[int, MeterSpec]] = None) -> None:
        self.dpid = dpid
        self.meters: Dict[int, MeterSpec] = dict(held or {})
        self.errors: List[tuple] = []    # (type, code, quoted request)

    def write(self, plan: Plan) -> None:
        changes = plan.changes.get(self.dpid)
        if changes is None:
            return
        for message in prerendered.messages(changes):
            if struct.unpack_from("!B", message, 1)[0] != ofp.OFPT_METER_MOD:
                continue
            command, meter_id = refused_meter_mod(message)   # the same fields
            spec = next((m for m in changes.adds if isinstance(m, MeterSpec)
                         and m.meter_id == meter_id), None)
            self._meter_mod(command, meter_id, spec, message)

    def _meter_mod(self, command: int, meter_id: int, spec, message: bytes) -> None:
        held = meter_id in self.meters
        if command == ofp.OFPMC_ADD and held:
            self.errors.append((ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_METER_EXISTS, message))
        elif command == ofp.OFPMC_MODIFY and not held:
            self.errors.append((ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_UNKNOWN_METER,
                                message))
        elif command == ofp.OFPMC_DELETE:
            self.meters.pop(meter_id, None)
        else:
            self.meters[meter_id] = spec


def _engine() -> ProvisioningEngine:
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    bring_up(engine, lambda plan: plan)
    return engine


# -- the path: a read-back overtaken by link discovery ------------------------------------
def test_a_read_back_overtaken_by_a_link_adds_its_meter_again_and_the_retry_settles_it():
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    switch = MeterSwitch(F1)
    sent: List[Plan] = []
    retries = MeterRetries(lambda dpid, m: desired_meter(engine, dpid, m),
                           lambda plan, on_confirmed=None: sent.append(plan),
                           logging.getLogger("test"))
    bring_up(engine, switch.write)
    read_back = dict(switch.meters)                # the read-back's reply: before the link
    new_link = engine.link_seen(PortRef(F1, 7), PortRef(A1, 7), now=1.0)
    switch.write(new_link)                         # sent while the read-back was in flight
    assert lldp_port_meter(7) in switch.meters
    reconcile = engine.switch_up(F1, engine.fabric.switches[F1].role, "f1",
                                 list(read_back.values()), now=2.0)
    switch.write(reconcile)
    assert [(t, c) for t, c, _ in switch.errors] == \
        [(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_METER_EXISTS)]
    assert retries.error(F1, *switch.errors[0])    # consumed: no error, no read-back
    assert len(sent) == 1
    switch.errors.clear()
    switch.write(sent[0])
    assert not switch.errors
    assert switch.meters[lldp_port_meter(7)] == desired_meter(engine, F1, lldp_port_meter(7))


# -- the retry ----------------------------------------------------------------------------
class Lab:
    def __init__(self) -> None:
        self.engine = _engine()
        self.sent: List[Plan] = []
        self.confirm: List = []
        self.retries = MeterRetries(lambda dpid, m: desired_meter(self.engine, dpid, m),
                                    self.send, logging.getLogger("test.meters"))

    def send(self, plan: Plan, on_confirmed=None) -> None:
        self.sent.append(plan)
        self.confirm.append(on_confirmed)

    def wanted(self, dpid: int) -> MeterSpec:
        """A meter the engine wants on the switch (its first by id)."""
        return min((e for e in self.engine.desired.on_switch(dpid)
                    if isinstance(e, MeterSpec)), key=lambda e: e.meter_id)

    def commands(self) -> List[tuple]:
        out = []
        for plan in self.sent:
            for dpid, changes in plan.changes.items():
                for message in prerendered.messages(changes):
                    out.append((dpid, *refused_meter_mod(message)))
        return out


def _refusal(spec: MeterSpec, command: int, code: int) -> tuple:
    return (ofp.OFPET_METER_MOD_FAILED, code, encoded_meter_mod(spec, command))


def test_an_add_refused_as_existing_is_sent_as_a_modify_of_the_desired_meter(caplog):
    lab = Lab()
    wanted = lab.wanted(A1)
    stale = MeterSpec(A1, wanted.meter_id, wanted.rate_kbps + 5, wanted.burst_kbits,
                      packets=wanted.packets)
    with caplog.at_level(logging.DEBUG, logger="test.meters"):
        assert lab.retries.error(A1, *_refusal(stale, ofp.OFPMC_ADD,
                                               ofp.OFPMMFC_METER_EXISTS))
    assert lab.commands() == [(A1, ofp.OFPMC_MODIFY, wanted.meter_id)]
    assert lab.sent[0].changes[A1].adds == [wanted]     # what the engine wants now
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert f"meter {wanted.meter_id:#x} existed" in caplog.text


def test_a_modify_refused_as_missing_is_sent_as_an_add():
    lab = Lab()
    wanted = lab.wanted(S11)
    assert lab.retries.error(S11, *_refusal(wanted, ofp.OFPMC_MODIFY,
                                            ofp.OFPMMFC_UNKNOWN_METER))
    assert lab.commands() == [(S11, ofp.OFPMC_ADD, wanted.meter_id)]


def test_a_refused_retry_takes_the_ordinary_error_path_until_its_barrier():
    lab = Lab()
    wanted = lab.wanted(A1)
    refusal = _refusal(wanted, ofp.OFPMC_ADD, ofp.OFPMMFC_METER_EXISTS)
    assert lab.retries.error(A1, *refusal)
    again = _refusal(wanted, ofp.OFPMC_MODIFY, ofp.OFPMMFC_UNKNOWN_METER)
    assert not lab.retries.error(A1, *again)          # the retry failed: a real error
    assert not lab.retries.error(A1, *refusal)
    assert len(lab.sent) == 1
    lab.confirm[0]()                                   # the retry's barrier came back
    assert lab.retries.error(A1, *refusal) and len(lab.sent) == 2


def test_a_meter_no_longer_wanted_is_left_to_the_writes_that_follow():
    lab = Lab()
    gone = MeterSpec(A1, LLDP_PORT_METER_BASE + 99, 10, 10, packets=True)
    assert lab.retries.error(A1, *_refusal(gone, ofp.OFPMC_ADD, ofp.OFPMMFC_METER_EXISTS))
    assert not lab.sent


def test_other_errors_are_not_hidden():
    lab = Lab()
    wanted = lab.wanted(A1)
    foreign = MeterSpec(A1, 7, 10, 10)                 # not in dynprov's block
    cases = [
        _refusal(foreign, ofp.OFPMC_ADD, ofp.OFPMMFC_METER_EXISTS),
        _refusal(wanted, ofp.OFPMC_ADD, ofp.OFPMMFC_INVALID_METER),
        _refusal(wanted, ofp.OFPMC_DELETE, ofp.OFPMMFC_UNKNOWN_METER),
        _refusal(wanted, ofp.OFPMC_MODIFY, ofp.OFPMMFC_METER_EXISTS),
        (ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPMMFC_METER_EXISTS,
         encoded_meter_mod(wanted, ofp.OFPMC_ADD)),
        (ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_METER_EXISTS, b"\x04\x1d"),
    ]
    for case in cases:
        assert not lab.retries.error(A1, *case), case
    assert not lab.sent


# -- the app's error handler --------------------------------------------------------------
class _App(SwitchEventHandlers):
    """What the error handler uses of the app."""

    def __init__(self, lab: Lab) -> None:
        self.logger = logging.getLogger("test.app")
        self.meter_retries = lab.retries
        self.ct_probes = SimpleNamespace(error=lambda msg: False)
        self.metrics = SimpleNamespace(openflow_error=lambda kind: self.counted.append(kind))
        self.datapaths = {A1: object()}
        self.repairs = SimpleNamespace(switch_refused=lambda d, why: self.refused.append(d))
        self._reconcile_refused = lambda now: None
        self.counted: List[int] = []
        self.refused: List[int] = []

    def handler_failed(self, name: str) -> None:
        raise AssertionError(f"{name} raised")


def _error_event(err_type: int, code: int, data: bytes):
    datapath = SimpleNamespace(id=A1, ofproto=ofp)
    return SimpleNamespace(msg=SimpleNamespace(datapath=datapath, version=ofp.OFP_VERSION,
                                               xid=5, type=err_type, code=code, data=data))


def test_the_app_retries_a_refused_meter_add_instead_of_reconciling(caplog):
    lab = Lab()
    app = _App(lab)
    wanted = lab.wanted(A1)
    with caplog.at_level(logging.DEBUG):
        app._error(_error_event(*_refusal(wanted, ofp.OFPMC_ADD, ofp.OFPMMFC_METER_EXISTS)))
    assert lab.commands() == [(A1, ofp.OFPMC_MODIFY, wanted.meter_id)]
    assert not app.refused and not app.counted
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    app._error(_error_event(ofp.OFPET_METER_MOD_FAILED, ofp.OFPMMFC_INVALID_METER,
                            encoded_meter_mod(wanted, ofp.OFPMC_ADD)))
    assert app.refused == [A1] and app.counted == [ofp.OFPET_METER_MOD_FAILED]
