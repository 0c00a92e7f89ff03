"""The intent check (core/intent_check.py): a switch's dynprov entries against the desired
ones, labelled by VM and template, and in agreement with what a reconciliation sends."""

from __future__ import annotations

import dataclasses

from ryu_apps.core.cookies import CookieKind, Owner, decode_cookie
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import FlowSpec, Meter, MeterSpec, flow, make_match
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.core.intent_check import DriftKind, check
from ryu_apps.loaders.library_files import load_library
from tests.support.fake_switches import FakeSwitches
from tests.support.small_fabric import S11, bring_up

LIBRARY = load_library("templates")
WEB = "00:fa:00:00:00:01"


def _lab():
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    switches = FakeSwitches()
    bring_up(engine, switches.apply)
    switches.apply(engine.packet_in(S11, 1, WEB, b"x", now=0.0, sender_ip="10.0.100.1").plan)
    return engine, switches


def _vm_of(engine):
    def mac(binding_id):
        binding = engine.binding_by_id(binding_id)
        return None if binding is None else binding.mac
    return mac


def _report(engine, held):
    return check(S11, engine.desired.on_switch(S11), held, _vm_of(engine))


def _vm_flow(engine, switches) -> FlowSpec:
    owner = engine.bindings[WEB].owner
    return next(f for f in sorted(switches.flows(S11), key=repr)
                if decode_cookie(f.cookie) == owner)


def test_a_switch_holding_what_is_desired_is_clean():
    engine, switches = _lab()
    report = _report(engine, switches.entries(S11))
    assert report.clean and report.drifts == ()
    assert report.desired == report.observed == len(engine.desired.on_switch(S11))
    assert report.counts() == {"missing": 0, "extra": 0, "changed": 0}


def test_missing_changed_and_extra_entries_are_reported_by_vm_and_template():
    engine, switches = _lab()
    held = set(switches.entries(S11))
    deleted = _vm_flow(engine, switches)
    changed = next(f for f in sorted(held - {deleted}, key=repr)
                   if isinstance(f, FlowSpec) and decode_cookie(f.cookie) is not None
                   and decode_cookie(f.cookie).kind == CookieKind.BINDING)
    tampered = dataclasses.replace(changed, instructions=())
    stray = flow(S11, 0, 7, make_match(eth_src="02:00:00:00:00:99"),
                 Owner(CookieKind.INFRA, 0).cookie)
    held = (held - {deleted, changed}) | {tampered, stray}
    report = _report(engine, held)
    assert report.counts() == {"missing": 1, "extra": 1, "changed": 1}
    by_kind = {d.kind: d for d in report.drifts}
    missing = by_kind[DriftKind.MISSING]
    assert missing.desired == deleted and missing.observed is None
    assert missing.vm == WEB and missing.owner.template_id == 0x00FA
    assert by_kind[DriftKind.CHANGED].desired == changed
    assert by_kind[DriftKind.CHANGED].observed == tampered
    assert by_kind[DriftKind.CHANGED].vm == WEB
    extra = by_kind[DriftKind.EXTRA]
    assert extra.observed == stray and extra.vm is None
    assert extra.owner.kind == CookieKind.INFRA


def test_entries_that_are_not_dynprovs_are_never_reported():
    engine, switches = _lab()
    foreign = flow(S11, 0, 9, make_match(in_port=3), 0x1234)
    foreign_meter = MeterSpec(S11, 3, 1000, 100)   # outside dynprov's block, unused
    report = _report(engine, set(switches.entries(S11)) | {foreign, foreign_meter})
    assert report.clean


def test_a_changed_meter_is_named_after_the_vm_whose_flow_uses_it():
    engine, switches = _lab()
    held = set(switches.entries(S11))
    owner = engine.bindings[WEB].owner
    used = {i.meter_id for f in held if isinstance(f, FlowSpec)
            and decode_cookie(f.cookie) == owner for i in f.instructions
            if isinstance(i, Meter)}
    meter = next(e for e in held if isinstance(e, MeterSpec) and e.meter_id in used)
    slower = dataclasses.replace(meter, rate_kbps=meter.rate_kbps // 2)
    report = _report(engine, (held - {meter}) | {slower})
    (drift,) = report.drifts
    assert drift.kind == DriftKind.CHANGED and drift.vm == WEB
    assert drift.observed.rate_kbps == meter.rate_kbps // 2


def test_the_report_lists_exactly_what_a_reconciliation_sends():
    engine, switches = _lab()
    held = set(switches.entries(S11))
    flows = sorted((f for f in held if isinstance(f, FlowSpec)), key=repr)
    held -= set(flows[:3])
    held |= {dataclasses.replace(flows[4], priority=flows[4].priority + 1)}
    report = _report(engine, held)
    plan = Plan()
    engine.desired.reconcile(S11, held, plan)
    changes = plan.changes[S11]
    assert {d.desired for d in report.drifts if d.kind != DriftKind.EXTRA} == set(changes.adds)
    assert {d.observed for d in report.drifts if d.kind == DriftKind.EXTRA} == \
        set(changes.deletes)
    assert {d.desired for d in report.drifts if d.kind == DriftKind.CHANGED} == \
        {a for a in changes.adds if changes.replaces(a)}
