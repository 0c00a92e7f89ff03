"""``GET /dynprov/trace`` (the policy trace) and ``GET /dynprov/rule-origins``.

The trace runs in the handler on the engine's desired flows (pure, no yield:
nothing changes the engine meanwhile): see :mod:`ryu_apps.core.trace`. Its
cross-check against the switches (``ovs-appctl ofproto/trace``) is the
command line's (``dynprov trace``), which runs where the bridges are.
"""

from __future__ import annotations

from typing import Dict

from ryu_apps.app.framework import ControllerBase, route
from ryu_apps.core.rule_origin import origin_rows
from ryu_apps.core.trace import TraceError
from ryu_apps.core.trace_engine import port_groups, trace_vms
from ryu_apps.core.trace_view import trace_json
from ryu_apps.rest.api import PREFIX, ApiError, _answers
from ryu_apps.rest.openapi import described

#: The trace's query parameters: name -> what it is.
TRACE_FIELDS = {
    "src": "the sending VM: MAC or IPv4",
    "dst": "the receiving VM: MAC or IPv4",
    "proto": "tcp, udp, icmp or icmpv6 (or tcp/443)",
    "port": "the destination port (tcp and udp)",
    "src_ip": "the sender's IPv4 when the controller does not know it",
    "dst_ip": "the receiver's IPv4 when the controller does not know it",
}


def trace_query(query: Dict[str, str]) -> Dict[str, str]:
    """The trace's parameters checked: a 400 naming the unknown, missing or bad field."""
    for name in query:
        if name not in TRACE_FIELDS:
            raise ApiError(400, f"unknown query parameter {name!r} (expected: "
                                f"{', '.join(TRACE_FIELDS)})", field=name)
    for name in ("src", "dst", "proto"):
        if not query.get(name, "").strip():
            raise ApiError(400, f"missing query parameter {name!r}: {TRACE_FIELDS[name]}",
                           field=name)
    return query


def run_trace(app, query: Dict[str, str]) -> Dict:
    """The trace's JSON answer (400 with ``field`` for bad input)."""
    query = trace_query(query)
    proto = query["proto"]
    if query.get("port"):
        if "/" in proto:
            raise ApiError(400, "give the port once: proto=tcp/443 or proto=tcp&port=443",
                           field="port")
        proto = f"{proto}/{query['port']}"
    engine = app.engine
    try:
        result = trace_vms(engine, query["src"], query["dst"], proto,
                           query.get("src_ip"), query.get("dst_ip"))
    except TraceError as error:
        raise ApiError(400, str(error), field=error.field) from None
    switches = engine.fabric.switches

    def name(dpid: int) -> str:
        info = switches.get(dpid)
        return info.name if info is not None else f"{dpid:016x}"
    return trace_json(result, name)


class TraceRestController(ControllerBase):
    """The trace's routes; registered before the fallback (rest/api.py)."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.api = data["api"]

    @route("dynprov_trace", PREFIX + "/trace", methods=["GET"])
    @described("Policy trace of one packet and its answer: verdict, path, tables passed, "
               "the template rule that decided (template, side, index, file:line)",
               query=TRACE_FIELDS,
               responses={400: "an unknown, missing or malformed field (named in 'field')"})
    @_answers
    def trace(self, req, **_):
        return run_trace(self.api.app, dict(req.GET))

    @route("dynprov_rule_origins", PREFIX + "/rule-origins", methods=["GET"])
    @described("Each ACL flow's (table, priority) and its template rule (side, index, "
               "file:line)")
    @_answers
    def rule_origins(self, req, **_):
        engine = self.api.engine
        return {"origins": origin_rows(engine.library, port_groups(engine))}
