"""The audit's answers: which switches a request names (errors with a hint), the JSON
of a report, and ``dynprov audit``'s text and exit status."""

from __future__ import annotations

import argparse
import json
import logging

import pytest

from ryu_apps.app.audit import AUDIT, IntentAudit
from ryu_apps.cli import audit as cli_audit
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library
from ryu_apps.rest import audit as rest_audit
from tests.support.fake_switches import FakeSwitches
from tests.support.small_fabric import S11, S12, bring_up

LIBRARY = load_library("templates")
WEB = "00:fa:00:00:00:01"


def _checked():
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    switches = FakeSwitches()
    bring_up(engine, switches.apply)
    switches.apply(engine.packet_in(S11, 1, WEB, b"x", now=0.0).plan)
    held = set(switches.entries(S11))
    owner = engine.bindings[WEB].owner
    gone = next(f for f in sorted(held, key=repr)
                if isinstance(f, FlowSpec) and f.cookie == owner.cookie)
    audit = IntentAudit(60.0, report_only=True, logger=logging.getLogger("t"))
    audit.read_back(engine, S11, hex(S11), AUDIT, held - {gone}, now=0.0)
    return engine, audit


def test_a_bridge_is_chosen_by_name_or_dpid_and_an_unknown_one_gets_a_hint():
    engine, _ = _checked()
    switches = dict(engine.fabric.switches)
    connected = {S11, S12}
    assert rest_audit._chosen(switches, connected, hex(S11)) == [S11]
    assert rest_audit._chosen(switches, connected, f"{S12:016x}") == [S12]
    assert rest_audit._chosen(switches, connected, None) == [S11, S12]
    with pytest.raises(rest_audit.AuditError) as unknown:
        rest_audit._chosen(switches, connected, hex(S11) + "x")
    assert unknown.value.status == 404 and "not managed by dynprov" in unknown.value.message
    assert f"did you mean '{hex(S11)}'?" in unknown.value.message
    with pytest.raises(rest_audit.AuditError) as away:
        rest_audit._chosen(switches, {S12}, hex(S11))
    assert away.value.status == 503 and "not connected" in away.value.message


def test_a_report_in_json_names_the_vm_template_and_entry():
    engine, audit = _checked()
    view = rest_audit.report_view(audit.latest[S11], dict(engine.fabric.switches))
    json.dumps(view)   # plain JSON
    assert view["name"] == hex(S11) and not view["clean"] and not view["repaired"]
    assert view["counts"] == {"missing": 1, "extra": 0, "changed": 0}
    (drift,) = view["drifts"]
    assert drift["kind"] == "missing" and drift["vm"] == WEB and drift["template_id"] == 250
    assert drift["entry"]["type"] == "flow" and drift["entry"]["cookie"].startswith("0xd91")
    assert "found" not in drift


def test_the_command_prints_a_line_per_drift_and_exits_1(monkeypatch, capsys):
    engine, audit = _checked()
    answer = {"mode": "report-only", "period": 60.0, "drift": True, "counters": {},
              "switches": [rest_audit.report_view(audit.latest[S11],
                                                  dict(engine.fabric.switches))]}
    monkeypatch.setattr(cli_audit.rest_client, "target_from_args", lambda *a: None)
    monkeypatch.setattr(cli_audit, "call", lambda *a, **k: (200, answer))
    args = argparse.Namespace(bridge=hex(S11), json=False)
    assert cli_audit._audit(args) == cli_audit.DRIFT
    out = capsys.readouterr().out.splitlines()
    assert out[1].endswith("1 missing; not repaired")
    assert out[2].startswith(f"  missing  VM {WEB} binding")
    monkeypatch.setattr(cli_audit, "call", lambda *a, **k: (200, {**answer, "drift": False}))
    assert cli_audit._audit(args) == cli_audit.CLEAN


def test_the_command_exits_2_for_a_bridge_not_managed(monkeypatch, capsys):
    monkeypatch.setattr(cli_audit.rest_client, "target_from_args",
                        lambda *a: cli_audit.rest_client.RestTarget("http://x", "t", None))
    monkeypatch.setattr(cli_audit, "call", lambda *a, **k: (
        404, {"error": "bridge 'sx' is not managed by dynprov (managed: s11)"}))
    assert cli_audit._audit(argparse.Namespace(bridge="sx", json=False)) == cli_audit.FAILED
    assert "404" in capsys.readouterr().err
