"""The audit's edge (app/audit.py): its schedule spreads the switches over the period, a
report-only audit never repairs, requested checks are answered, counters count."""

from __future__ import annotations

import logging

from ryu_apps.app.audit import AUDIT, AuditSchedule, IntentAudit
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library
from tests.support.fake_switches import FakeSwitches
from tests.support.small_fabric import S11, bring_up

LOG = logging.getLogger("test_audit")
LIBRARY = load_library("templates")


def _steps(schedule, switches, seconds, step=1.0):
    return [schedule.due(switches, t * step) for t in range(int(seconds / step))]


def test_each_switch_is_audited_once_per_period_spread_over_it():
    schedule = AuditSchedule(period=60.0, step=1.0)
    switches = list(range(1, 13))
    rounds = _steps(schedule, switches, 120)
    audited = [d for chosen in rounds for d in chosen]
    assert sorted(audited) == sorted(switches * 2)         # twice in two periods
    assert max(len(chosen) for chosen in rounds) == 1      # never more than one at a time
    first = [t for t, chosen in enumerate(rounds) if chosen][:12]
    assert first[-1] - first[0] >= 50                      # spread over the period


def test_a_short_period_audits_every_switch_at_each_step():
    schedule = AuditSchedule(period=1.0, step=1.0)
    assert _steps(schedule, [3, 1, 2], 3) == [[1, 2, 3]] * 3


def test_the_least_recently_audited_switch_goes_first_and_new_ones_are_picked_up():
    schedule = AuditSchedule(period=2.0, step=1.0)
    assert [schedule.due([1, 2], float(t)) for t in range(4)] == [[1], [2], [1], [2]]
    assert schedule.due([1, 2, 3], 4.0) == [3]               # never audited: first
    assert schedule.due([1, 2, 3], 5.0) == [1, 2]             # 3 switches in 2 s
    assert schedule.due([], 6.0) == []


def _engine():
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    switches = FakeSwitches()
    bring_up(engine, switches.apply)
    switches.apply(engine.packet_in(S11, 1, "00:fa:00:00:00:01", b"x", now=0.0).plan)
    return engine, switches


def _drifted(switches):
    held = set(switches.entries(S11))
    return held - {next(e for e in sorted(held, key=repr) if isinstance(e, FlowSpec))}


def test_report_only_audits_are_reported_counted_and_not_repaired():
    engine, switches = _engine()
    audit = IntentAudit(60.0, report_only=True, logger=LOG)
    assert not audit.read_back(engine, S11, "s11", AUDIT, _drifted(switches), now=5.0)
    checked = audit.latest[S11]
    assert checked.report.counts()["missing"] == 1 and not checked.repaired
    assert audit.counters.view() == {"audits": 1, "audits_with_drift": 1, "repaired": 0,
                                     "drifts": {"missing": 1, "extra": 0, "changed": 0}}
    # a reconciliation for another reason (an OpenFlow error) still repairs
    assert audit.read_back(engine, S11, "s11", "OpenFlow error", [], now=6.0)


def test_repairing_audits_say_so_and_clean_switches_count_as_audits_only():
    engine, switches = _engine()
    audit = IntentAudit(60.0, report_only=False, logger=LOG)
    assert audit.read_back(engine, S11, "s11", AUDIT, _drifted(switches), now=5.0)
    assert audit.latest[S11].repaired
    assert audit.read_back(engine, S11, "s11", AUDIT, switches.entries(S11), now=6.0)
    assert audit.latest[S11].report.clean and not audit.latest[S11].repaired
    assert audit.counters.view()["audits"] == 2
    assert audit.counters.view()["repaired"] == 1


class _Recorder:
    def __init__(self):
        self.calls = []

    def audited(self, bridge, counts, repaired):
        self.calls.append((bridge, counts, repaired))


def test_a_recorder_hears_every_check():
    engine, switches = _engine()
    recorder = _Recorder()
    audit = IntentAudit(60.0, report_only=False, logger=LOG, recorder=recorder)
    audit.read_back(engine, S11, "s11", AUDIT, _drifted(switches), now=1.0)
    assert recorder.calls == [("s11", {"missing": 1, "extra": 0, "changed": 0}, True)]


def test_a_requested_check_is_answered_by_any_read_back_of_its_switches():
    engine, switches = _engine()
    audit = IntentAudit(0.0, report_only=False, logger=LOG)
    assert audit.step == 0.0 and audit.due([S11], 0.0) == []
    ticket = audit.ticket([S11, 0x1102])
    audit.started(ticket)
    assert audit.wanted(S11, "connected")        # a connect's read-back answers too
    audit.read_back(engine, S11, "s11", "connected", switches.entries(S11), now=1.0)
    assert not ticket.done.is_set() and ticket.pending == {0x1102}
    audit.prune([S11])                            # 0x1102 is not connected: not waited for
    assert ticket.done.is_set() and not audit.wanted(0x1102, "connected")
    assert not audit.wanted(S11, "connected")     # nobody waits: only audits are checked
