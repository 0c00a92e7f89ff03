"""``GET /dynprov/trace`` (the policy trace) and ``GET /dynprov/rule-origins``.

The trace runs in the handler on the engine's desired flows (pure, no yield:
nothing changes the engine meanwhile): see :mod:`ryu_apps.core.trace`. Its
cross-check against the switches (``ovs-appctl ofproto/trace``) is the
command line's (``dynprov trace``), which runs where the bridges are: the
controller usually does not share a host with every bridge, and a subprocess
per hop in its event loop would stall provisioning; the answer's ``drift`` is
null (not checked).
"""

from __future__ import annotations

from typing import Dict, Optional

from ryu_apps.app.framework import ControllerBase, route
from ryu_apps.core.rule_origin import origin_rows
from ryu_apps.core.trace import TraceError
from ryu_apps.core.trace_engine import port_groups, trace_vms
from ryu_apps.core.trace_view import trace_json
from ryu_apps.rest.api import PREFIX, ApiError, _answers
from ryu_apps.rest.openapi import described

#: The trace's query parameters: name -> what it is.
TRACE_FIELDS = {
    "src": "the sending VM: MAC, IPv4, IPv6 (link-local) or OVSDB iface-id",
    "dst": "the receiving VM: MAC, IPv4, IPv6 (link-local) or OVSDB iface-id",
    "proto": "tcp, udp, icmp (IPv4) or icmpv6 (IPv6) (or tcp/443)",
    "port": "the destination port (tcp and udp)",
    "family": "4 or 6: trace over IPv4 or IPv6 (default: 6 for icmpv6 or when an "
              "address given is IPv6, else 4)",
    "src_ip": "the sender's IPv4 or IPv6 when the controller does not know it",
    "dst_ip": "the receiver's IPv4 or IPv6 when the controller does not know it",
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
    family = _family(query.get("family"))
    try:
        result = trace_vms(engine, query["src"], query["dst"], proto,
                           query.get("src_ip"), query.get("dst_ip"), family)
    except TraceError as error:
        raise ApiError(400, str(error), field=error.field) from None
    switches = engine.fabric.switches

    def name(dpid: int) -> str:
        info = switches.get(dpid)
        return info.name if info is not None else f"{dpid:016x}"
    return trace_json(result, name)


def _family(text: Optional[str]) -> Optional[int]:
    """The ``family`` parameter: 4, 6 (also ``ipv4``, ``ipv6``) or absent."""
    if text is None or not text.strip():
        return None
    family = {"4": 4, "6": 6, "ipv4": 4, "ipv6": 6}.get(text.strip().lower())
    if family is None:
        raise ApiError(400, f"family {text!r}: expected 4 or 6", field="family")
    return family


class TraceRestController(ControllerBase):
    """The trace's routes; registered before the fallback (rest/api.py)."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.api = data["api"]

    @route("dynprov_trace", PREFIX + "/trace", methods=["GET"])
    @described("Policy trace of one packet and its answer, over IPv4 or IPv6: verdict, "
               "path, tables passed, the template rule that decided (template, side, "
               "index, file:line). Computed from the compiled desired flows; 'drift' is "
               "null: the cross-check with ovs-appctl ofproto/trace is the command "
               "line's (dynprov trace), run on the host whose ovs-vswitchd holds the "
               "bridges, never a subprocess in the controller's event loop",
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
