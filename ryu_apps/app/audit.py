"""The continuous intent check: a few switches per step, each once per period.

Every ``audit_interval`` seconds each connected switch is read back by cookie
(``ryu_apps/app/readback.py``), spread over the period: a timer posts
:class:`ryu_apps.app.loop_events.Audit` every :data:`STEP` seconds (or every
period, if shorter), and :class:`AuditSchedule` picks the switches whose turn
it is, oldest audit first, so the read-backs of a large fabric do not all land
at once. When the read-back is in, :class:`IntentAudit` compares it with the
engine's desired entries (``ryu_apps/core/intent_check.py``, pure), keeps the
report, counts it (:class:`AuditRecorder`) and says whether the reconciliation
may repair it: always, unless ``audit_report_only`` is set and the read-back
was the audit's own. ``GET /dynprov/audit`` asks for a check now
(:meth:`IntentAudit.request`, from a WSGI green thread) and waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Protocol, Set, Tuple

from ryu_apps.app.framework import cfg, event, hub
from ryu_apps.app.loop_events import post
from ryu_apps.core.intent_check import IntentReport, check

#: Seconds between two audit steps (a period shorter than this is one step).
STEP = 1.0
#: Why the audit reads a switch back (``ryu_apps.app.readback.AUDIT``).
AUDIT = "audit"

cfg.CONF.register_opts([
    cfg.BoolOpt("audit_report_only", default=False,
                help="The audit reports (log, GET /dynprov/audit, counters) what differs "
                     "from the desired flows and meters but does not repair it; other "
                     "reconciliations (connect, OpenFlow error, reload) still repair."),
], group="dynprov")


class AuditRecorder(Protocol):
    """Where audit results are counted (the metrics exporter implements it)."""

    def audited(self, bridge: str, counts: Dict[str, int], repaired: bool) -> None:
        """One switch was checked: drifts by kind; whether they were repaired."""


@dataclass
class AuditCounters:
    """The default recorder: totals since start."""

    audits: int = 0
    audits_with_drift: int = 0
    repaired: int = 0
    drifts: Dict[str, int] = field(default_factory=lambda: {
        "missing": 0, "extra": 0, "changed": 0})

    def audited(self, bridge: str, counts: Dict[str, int], repaired: bool) -> None:
        self.audits += 1
        if any(counts.values()):
            self.audits_with_drift += 1
            self.repaired += int(repaired)
        for kind, count in counts.items():
            self.drifts[kind] = self.drifts.get(kind, 0) + count

    def view(self) -> dict:
        """The counters as JSON."""
        return {"audits": self.audits, "audits_with_drift": self.audits_with_drift,
                "repaired": self.repaired, "drifts": dict(self.drifts)}


class AuditSchedule:
    """Which switches to audit at each step: each once per ``period``, spread evenly,
    the least recently audited first. Time is an argument."""

    def __init__(self, period: float, step: float) -> None:
        self.period, self.step = period, step
        self._last: Dict[int, float] = {}
        self._credit = 0.0

    def due(self, switches: Iterable[int], now: float) -> List[int]:
        """The switches to read back at this step (``switches``: those that may be)."""
        candidates = sorted(set(switches), key=lambda d: (self._last.get(d, float("-inf")), d))
        if not candidates:
            self._credit = 0.0
            return []
        self._credit = min(self._credit + len(candidates) * self.step / self.period,
                           float(len(candidates)))
        count = int(self._credit + 1e-9)
        self._credit -= count
        chosen = candidates[:count]
        for dpid in chosen:
            self._last[dpid] = now
        return chosen

    def forget(self, dpid: int) -> None:
        """The switch disconnected."""
        self._last.pop(dpid, None)


class AuditNow(event.EventBase):
    """Check these switches now (a REST caller waits on ``ticket``)."""

    def __init__(self, ticket: "Ticket") -> None:
        super().__init__()
        self.ticket = ticket


@dataclass
class Ticket:
    """A requested check: the switches not reported yet, and who waits for them."""

    pending: Set[int]
    done: hub.Event = field(default_factory=hub.Event)


@dataclass(frozen=True)
class Checked:
    """A switch's latest report: when, why it was read back, whether it was repaired."""

    report: IntentReport
    at: float
    why: str
    repaired: bool


class IntentAudit:
    """The audit's schedule, latest reports, counters and waiting callers."""

    def __init__(self, period: float, report_only: bool, logger,
                 recorder: Optional[AuditRecorder] = None) -> None:
        self.period, self.report_only, self.logger = period, report_only, logger
        self.schedule = AuditSchedule(period, min(STEP, period)) if period > 0 else None
        self.counters = AuditCounters()
        self.recorders: List[AuditRecorder] = [self.counters] + ([recorder] if recorder else [])
        self.latest: Dict[int, Checked] = {}
        self._tickets: List[Ticket] = []
        self._round_began = float("-inf")

    @property
    def step(self) -> float:
        """Seconds between two audit steps (0: no periodic audit)."""
        return self.schedule.step if self.schedule is not None else 0.0

    def due(self, switches: Iterable[int], now: float) -> List[int]:
        """The switches whose turn it is (none without a periodic audit)."""
        return self.schedule.due(switches, now) if self.schedule is not None else []

    def round_over(self, now: float) -> bool:
        """Whether a period passed since the last time this said so (the app then
        settles its heap, once per period as when every switch was audited at once)."""
        if now - self._round_began < self.period:
            return False
        self._round_began = now
        return True

    def wanted(self, dpid: int, why: str) -> bool:
        """Whether a finished read-back of ``dpid`` is to be checked."""
        return why == AUDIT or any(dpid in t.pending for t in self._tickets)

    def read_back(self, engine, dpid: int, name: str, why: str, observed: Iterable,
                  now: float) -> bool:
        """Check a finished read-back (if wanted); whether it may be repaired."""
        if not self.wanted(dpid, why):
            return True
        report = check(dpid, engine.desired.on_switch(dpid), observed,
                       lambda binding_id: _mac_of(engine, binding_id))
        repair = not (self.report_only and why == AUDIT)
        self.latest[dpid] = Checked(report, now, why, repair and not report.clean)
        counts = report.counts()
        for recorder in self.recorders:
            recorder.audited(name, counts, repair and not report.clean)
        if not report.clean:
            self.logger.warning("audit: switch %016x (%s) differs from what dynprov wants: "
                                "%s; %s", dpid, name, _counts_text(counts),
                                "repairing" if repair else "report only, left as it is")
        self._answer(dpid)
        return repair

    def ticket(self, dpids: Iterable[int]) -> Ticket:
        """A check of ``dpids`` to request (:class:`AuditNow`); wait on its ``done``."""
        ticket = Ticket(set(dpids))
        if not ticket.pending:
            ticket.done.set()
        return ticket

    def started(self, ticket: Ticket) -> None:
        """The event loop took the request: reports of its switches answer it."""
        self._tickets.append(ticket)

    def prune(self, connected: Iterable[int]) -> None:
        """Switches not connected (any more) are answered for: nobody waits for them."""
        connected = set(connected)
        for dpid in {d for t in self._tickets for d in t.pending} - connected:
            if self.schedule is not None:
                self.schedule.forget(dpid)
            self._answer(dpid)

    def _answer(self, dpid: int) -> None:
        for ticket in list(self._tickets):
            ticket.pending.discard(dpid)
            if not ticket.pending:
                self._tickets.remove(ticket)
                ticket.done.set()


def _mac_of(engine, binding_id: int) -> Optional[str]:
    binding = engine.binding_by_id(binding_id)
    return None if binding is None else str(binding.mac)


def _counts_text(counts: Dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "nothing"


def request(app, dpids: Iterable[int], timeout: float) -> Tuple[bool, Set[int]]:
    """From a green thread other than the event loop: check ``dpids`` now and wait up
    to ``timeout`` s; (all answered, the switches that did not answer)."""
    ticket = app.audit.ticket(dpids)
    if not ticket.pending:
        return True, set()
    if not post(app, AuditNow(ticket), app.logger):
        return False, set(ticket.pending)
    answered = ticket.done.wait(timeout=timeout)
    return bool(answered), set(ticket.pending)

