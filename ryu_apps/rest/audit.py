"""``GET /dynprov/audit[?bridge=NAME]``: check switches against the desired state now.

The handler (a WSGI green thread) asks the app's event loop for a check of
the bridge (every connected managed switch without ``bridge``) and waits for
the read-backs (:data:`WAIT_SECONDS` at most); the answer is each switch's
report (``ryu_apps/core/intent_check.py``): entries missing, extra or changed,
each with its owner, VM and template, whether the audit repaired them
(``audit_report_only``), and the audit's counters. 404 for a bridge dynprov
does not manage, 503 for one that is not connected or did not answer in time.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Dict, List, Optional

from ryu_apps.app.audit import Checked, request
from ryu_apps.app.framework import ControllerBase, Response, route
from ryu_apps.core.flow_plan import Entry
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.core.intent_check import Drift
from ryu_apps.rest import views as rest_views
from ryu_apps.rest.openapi import described

PATH = "/dynprov/audit"
#: Seconds a request waits for its switches' read-backs.
WAIT_SECONDS = 10.0

Json = Dict[str, Any]


class AuditError(Exception):
    """An answer other than 200: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def audit(app, bridge: Optional[str]) -> Json:
    """Check the bridge (or every connected managed switch) now; the JSON answer."""
    switches = dict(app.engine.fabric.switches)
    dpids = _chosen(switches, set(app.datapaths), bridge)
    answered, silent = request(app, dpids, WAIT_SECONDS)
    if not answered:
        names = ", ".join(sorted(_name(d, switches) for d in silent))
        raise AuditError(503, f"switch(es) {names} did not answer the audit's read-back "
                              f"within {WAIT_SECONDS:g} s")
    reports = [report_view(app.audit.latest[d], switches) for d in sorted(dpids)
               if d in app.audit.latest]
    return {"mode": "report-only" if app.audit.report_only else "repair",
            "period": app.audit.period,
            "drift": any(not r["clean"] for r in reports),
            "switches": reports,
            "counters": app.audit.counters.view()}


def _chosen(switches: Dict[int, Any], connected: set, bridge: Optional[str]) -> List[int]:
    """The switches to check: the named one, or every connected managed one."""
    if bridge is None or bridge == "":
        return sorted(d for d in switches if d in connected)
    by_name = {info.name: dpid for dpid, info in switches.items()}
    by_name.update({rest_views.dpid_text(dpid): dpid for dpid in switches})
    dpid = by_name.get(bridge)
    if dpid is None:
        close = difflib.get_close_matches(bridge, sorted(by_name), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        managed = ", ".join(sorted(info.name for info in switches.values())) or "none"
        raise AuditError(404, f"bridge {bridge!r} is not managed by dynprov (managed: "
                              f"{managed}){hint}")
    if dpid not in connected:
        raise AuditError(503, f"bridge {bridge!r} is managed but not connected now; it is "
                              "reconciled when it connects")
    return [dpid]


def _name(dpid: int, switches: Dict[int, Any]) -> str:
    info = switches.get(dpid)
    return info.name if info is not None else rest_views.dpid_text(dpid)


def report_view(checked: Checked, switches: Dict[int, Any]) -> Json:
    """One switch's latest report."""
    report = checked.report
    return {**rest_views.switch_ref(report.dpid, switches),
            "checked_at": rest_views.iso_utc(checked.at), "why": checked.why,
            "clean": report.clean, "repaired": checked.repaired,
            "desired": report.desired, "observed": report.observed,
            "counts": report.counts(),
            "drifts": [drift_view(d) for d in report.drifts]}


def drift_view(drift: Drift) -> Json:
    """One entry that differs: kind, owner, VM, template; the entry as wanted (or as
    found, for an extra one), and as found, for a changed one."""
    owner = drift.owner
    view: Json = {"kind": drift.kind.value, "owner": rest_views.owner_view(owner),
                  "vm": drift.vm,
                  "template_id": owner.template_id if owner is not None else None,
                  "entry": entry_view(drift.entry)}
    if drift.desired is not None and drift.observed is not None:
        view["found"] = entry_view(drift.observed)
    return view


def entry_view(entry: Entry) -> Json:
    """A flow (table, priority, match, instructions, cookie) or a meter (id, bands)."""
    if isinstance(entry, FlowSpec):
        return {"type": "flow", "table": entry.table_id, "priority": entry.priority,
                "match": {name: _value(value) for name, value in entry.match},
                "instructions": [rest_views.instruction_text(i) for i in entry.instructions],
                "idle_timeout": entry.idle_timeout, "cookie": f"0x{entry.cookie:016x}"}
    unit = "pktps" if entry.packets else "kbps"
    return {"type": "meter", "meter_id": entry.meter_id,
            "rate": f"{entry.rate_kbps} {unit}", "burst": entry.burst_kbits}


def _value(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}/{value[1]}"
    return value if isinstance(value, (int, str)) else str(value)


# -- WSGI --------------------------------------------------------------------------
def register(app, wsgi) -> None:
    """Serve ``GET /dynprov/audit`` (before the API's catch-all route)."""
    wsgi.register(AuditController, {"app": app})


class AuditController(ControllerBase):
    """The audit's route."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.app = data["app"]

    @route("dynprov_audit", PATH, methods=["GET"])
    @described("Check switches against the desired flows and meters now: drift by VM "
               "and template", query={"bridge": "a bridge name or 16-hex dpid (default: "
                                                "every connected managed switch)"},
               responses={404: "a bridge that is not managed",
                          503: "a bridge not connected, or no answer within 10 s"})
    def audit(self, req, **_):
        try:
            status, body = 200, audit(self.app, req.GET.get("bridge"))
        except AuditError as error:
            status, body = error.status, {"error": error.message}
        except Exception:  # a bug: say so in JSON, log the traceback
            self.app.logger.exception("REST GET %s failed", PATH)
            status, body = 500, {"error": "internal error, see the controller log"}
        return Response(status=status, content_type="application/json",
                        body=(json.dumps(body, indent=2) + "\n").encode())
