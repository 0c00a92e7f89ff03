"""dynprov's REST API (``--wsapi-host``/``--wsapi-port``, served by rest_server.py).

Endpoints (JSON; errors are ``{"error": "..."}``), documented in docs/rest-api.md::

    GET  /dynprov                        the endpoints
    GET  /dynprov/bindings               every VM binding, with counters
    GET  /dynprov/bindings/{mac}         one binding
    GET  /dynprov/bindings/{mac}/flows   its flows as they are on the switches
    GET  /dynprov/templates              the library in force
    GET  /dynprov/templates/{id}         one template
    POST /dynprov/library/reload         reload the library (422 if invalid, 409 in store mode)
    GET  /dynprov/switches               managed switches
    GET  /dynprov/links                  links discovered by LLDP
    GET  /dynprov/refused                MACs refused or quarantined, and why
    GET  /dynprov/provisioning-times     when recent VMs were detected and confirmed
    POST /dynprov/notifications          served by ryu_apps.rest.notify (listed here)
    GET  /dynprov/audit                  the intent check now (ryu_apps.rest.audit)
    GET  /dynprov/view, /view/events     the live view and its feed (ryu_apps.rest.live_view)
    GET  /dynprov/openapi.json           this API described (ryu_apps.rest.openapi)

Each route is described by ``@described`` under its ``@route``; the endpoint
list, the OpenAPI document and the 405 answers are read from the routes.

Every call needs a bearer token (GET: ``reader``, anything else: ``admin``);
``ryu_apps.rest.guard`` checks it, caps the body and answers the errors it
finds before a route is chosen.

Handlers run in WSGI green threads beside Ryu's event loop. They copy what
they need from the engine before anything that yields (a flow stats request
to a switch, :mod:`ryu_apps.rest.flow_reads`, with a timeout), and the reload runs in
the app's own event loop, where every other change of the engine happens.
"""

from __future__ import annotations

import json
import re
from functools import wraps
from typing import Any, Callable, Dict, Iterable, List, Optional

from ryu_apps.app.framework import (
    OFCTL_SERVICE_APP,
    ControllerBase,
    Response,
    app_manager,
    cfg,
    hub,
    route,
)

from ryu_apps.rest import audit as rest_audit
from ryu_apps.rest import live_view as rest_live_view
from ryu_apps.rest import server as rest_server
from ryu_apps.rest import views as rest_views
from ryu_apps.core.cookies import (
    APP_ID,
    APP_MASK,
    APP_SHIFT,
    KIND_MASK,
    KIND_SHIFT,
    OWNER_SELECT_MASK,
    CookieKind,
)
from ryu_apps.core.flowspec import FlowSpec
from ryu_apps.rest.flow_reads import quiet_ofctl_service, read_many
from ryu_apps.rest.guard import INTERNAL_ERROR
from ryu_apps.rest.openapi import described, document, endpoints, path_pattern, routes
from ryu_apps.rest.server import RestApplication  # noqa: F401 (the app's wsgi context)
from ryu_apps.rest.views import ViewError

# The app that imports this module (ryu_apps.provisioner) needs Ryu's ofctl
# service (flow_reads sends through it): required here, where the app imports,
# because require_app registers the service with the importing module.
try:
    app_manager.require_app(OFCTL_SERVICE_APP, api_style=True)
except IndexError:  # imported by no module (python -c): there is no app to serve
    pass

#: Seconds a reload may take beyond the library checker's own time limit.
RELOAD_MARGIN = 30.0
#: Cookie and mask that select every VM binding flow of dynprov on a switch.
BINDING_FLOWS = ((APP_ID << APP_SHIFT) | (int(CookieKind.BINDING) << KIND_SHIFT),
                 APP_MASK | KIND_MASK)
PREFIX = "/dynprov"
CONF = cfg.CONF


class ApiError(Exception):
    """An answer other than 200: HTTP status and message."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra
        self.headers = headers or {}


def register(app, wsgi) -> None:
    """Serve the REST API of ``app`` (the dynprov RyuApp) on ``wsgi``, and start
    listening (the last routes: register the notifications route before)."""
    quiet_ofctl_service()
    api = DynprovApi(app)
    wsgi.register(DynprovRestController, {"api": api})
    rest_audit.register(app, wsgi)
    rest_live_view.register(app, wsgi)
    from ryu_apps.rest.trace_routes import TraceRestController  # it imports this module
    wsgi.register(TraceRestController, {"api": api})
    wsgi.register(FallbackController, {"api": api})  # after: matches what is left
    rest_server.start(app, wsgi)


def reload_timeout() -> float:
    """Seconds a REST reload waits: the checker's limit and a margin to apply it."""
    return float(getattr(CONF.dynprov, "library_check_timeout", 120.0)) + RELOAD_MARGIN


# -- the API -------------------------------------------------------------------------
class DynprovApi:
    """What each endpoint answers; a method returns the JSON body or raises ApiError."""

    def __init__(self, app) -> None:
        self.app = app

    @property
    def engine(self):
        return self.app.engine

    def _switches(self) -> dict:
        return dict(self.engine.fabric.switches)

    def _binding(self, mac_text: str):
        try:
            mac = rest_views.canonical_mac(mac_text)
        except ViewError as error:
            raise ApiError(400, str(error)) from None
        binding = self.engine.bindings.get(mac)
        if binding is None:
            raise ApiError(404, f"no VM with MAC {mac} is provisioned "
                                f"(GET {PREFIX}/bindings lists them)")
        return binding

    # bindings
    def bindings(self, query: Dict[str, str]) -> List[dict]:
        counters = _flag(query, "counters", True)
        found = sorted(self.engine.bindings.values(), key=lambda b: (b.dpid, b.port))
        views = self._binding_views(found)
        if not counters:
            return views
        servers = {b.dpid for b in found}
        answers = read_many(self.app, {dpid: BINDING_FLOWS for dpid in servers})
        return [self._counted(view, binding, answers[binding.dpid])
                for view, binding in zip(views, found)]

    def binding(self, mac_text: str, query: Dict[str, str]) -> dict:
        binding = self._binding(mac_text)
        view = self._binding_views([binding])[0]
        if not _flag(query, "counters", True):
            return view
        answer = read_many(self.app, {binding.dpid: (binding.owner.cookie, OWNER_SELECT_MASK)})
        return self._counted(view, binding, answer[binding.dpid])

    def binding_flows(self, mac_text: str) -> dict:
        binding = self._binding(mac_text)
        switches = self._switches()
        desired = [f for f in self.engine.desired.flows_of(binding.owner)
                   if isinstance(f, FlowSpec)]
        holders = sorted({f.dpid for f in desired} | {binding.dpid})
        view = self._binding_views([binding])[0]
        answers = read_many(self.app, {d: (binding.owner.cookie, OWNER_SELECT_MASK)
                                       for d in holders})
        flows = [s for found, _ in answers.values() for s in found or ()]
        return {
            "binding": self._counted(view, binding, answers[binding.dpid]),
            "expected_flows": len(desired),
            "flows": [rest_views.flow_view(s, switches) for s in rest_views.sorted_flows(flows)],
            "silent_switches": [{**rest_views.switch_ref(d, switches), "error": why}
                                for d, (_, why) in sorted(answers.items()) if why],
        }

    def _binding_views(self, bindings: Iterable) -> List[dict]:
        switches = self._switches()
        return [rest_views.binding_view(b, switches, self.engine.access_port_of(b),
                                        self.engine.template_of(b))
                for b in bindings]

    def _counted(self, view: dict, binding, answer) -> dict:
        stats, why = answer
        if stats is None:
            name = view["server"]["name"] or view["server"]["dpid"]
            return rest_views.with_counters(view, None, f"server bridge {name}: {why}")
        return rest_views.with_counters(view, rest_views.binding_counters(binding, stats), None)

    # templates and the library
    def templates(self) -> List[dict]:
        return [rest_views.template_view(t) for t in self.engine.library]

    def template(self, id_text: str) -> dict:
        try:
            template_id = rest_views.parse_template_id(id_text)
        except ViewError as error:
            raise ApiError(400, str(error)) from None
        template = self.engine.library.get(template_id)
        if template is None:
            raise ApiError(404, f"no template {template_id} (0x{template_id:04X}) in the "
                                f"library in force (GET {PREFIX}/templates lists them)")
        return rest_views.template_view(template)

    def reload(self) -> dict:
        late = ApiError(503, f"the controller did not finish the reload within "
                             f"{reload_timeout():g} s")
        with hub.Timeout(reload_timeout(), late):
            ok, message = self.app.reload_library()
        store = getattr(self.app, "store_sync", None)
        if not ok and store is not None:  # store mode: nothing read, nothing changed
            raise ApiError(409, message, **store.library_in_force())
        if not ok:
            errors = [line for line in message.splitlines() if line.strip()]
            raise ApiError(422, "library reload refused; the previous library stays in force",
                           errors=errors)
        return {"reloaded": True, "message": message, "templates": len(self.engine.library)}

    # switches, links, refused MACs
    def switches(self) -> List[dict]:
        per_switch: Dict[int, int] = {}
        for binding in list(self.engine.bindings.values()):
            per_switch[binding.dpid] = per_switch.get(binding.dpid, 0) + 1
        return [rest_views.switch_view(info, dpid in self.app.datapaths,
                                       per_switch.get(dpid, 0))
                for dpid, info in sorted(self._switches().items())]

    def links(self) -> List[dict]:
        fabric, switches = self.engine.fabric, self._switches()
        return [rest_views.link_view(a, b, switches, a.port in fabric.tree_ports(a.dpid))
                for a, b in fabric.links()]

    def refused(self) -> List[dict]:
        switches = self._switches()
        return [rest_views.refusal_view(r, switches)
                for _, r in sorted(self.engine.refused.items())]

    def security(self) -> dict:
        return rest_views.security_view(self.engine, self.app.discovery.counters())


def _flag(query: Dict[str, str], name: str, default: bool) -> bool:
    try:
        return rest_views.parse_flag(query.get(name), name, default)
    except ViewError as error:
        raise ApiError(400, str(error)) from None


# -- WSGI --------------------------------------------------------------------------
def _json_response(status: int, body: Any, headers: Optional[Dict[str, str]] = None
                   ) -> Response:
    text = json.dumps(body, indent=2) + "\n"
    response = Response(status=status, content_type="application/json", body=text.encode())
    response.headers.update(headers or {})
    return response


def _answers(handler: Callable) -> Callable:
    """Turn a handler's body or ApiError into a JSON response; never an HTML 500."""
    @wraps(handler)
    def wrapper(self, req, **kwargs):
        try:
            return _json_response(200, handler(self, req, **kwargs))
        except ApiError as error:
            return _json_response(error.status, {"error": error.message, **error.extra},
                                  error.headers)
        except Exception:  # a bug: say so in JSON, log the traceback
            self.api.app.logger.exception("REST %s %s failed", req.method, req.path)
            return _json_response(500, {"error": INTERNAL_ERROR})
    return wrapper


class DynprovRestController(ControllerBase):
    """Routes of the REST API; each delegates to :class:`DynprovApi`."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.api: DynprovApi = data["api"]

    @route("dynprov_index", PREFIX, methods=["GET"])
    @described("The endpoints, their methods and the role each needs")
    @_answers
    def index(self, req, **_):
        return {"endpoints": endpoints(self.parent.mapper)}

    @route("dynprov_bindings", PREFIX + "/bindings", methods=["GET"])
    @described("Every VM binding, with its flows' counters",
               query={"counters": "false: skip the switches (no counters)"})
    @_answers
    def list_bindings(self, req, **_):
        return self.api.bindings(dict(req.GET))

    @route("dynprov_binding", PREFIX + "/bindings/{mac}", methods=["GET"])
    @described("One VM binding", query={"counters": "false: skip the switch"},
               responses={400: "malformed MAC", 404: "no VM with that MAC"})
    @_answers
    def show_binding(self, req, mac, **_):
        return self.api.binding(mac, dict(req.GET))

    @route("dynprov_binding_flows", PREFIX + "/bindings/{mac}/flows", methods=["GET"])
    @described("A binding's flows as the switches hold them now",
               responses={400: "malformed MAC", 404: "no VM with that MAC"})
    @_answers
    def binding_flows(self, req, mac, **_):
        return self.api.binding_flows(mac)

    @route("dynprov_templates", PREFIX + "/templates", methods=["GET"])
    @described("The template library in force")
    @_answers
    def list_templates(self, req, **_):
        return self.api.templates()

    @route("dynprov_template", PREFIX + "/templates/{template_id}", methods=["GET"])
    @described("One template (id in decimal, 250, or hex, 0x00FA)",
               responses={400: "malformed template id", 404: "no such template"})
    @_answers
    def show_template(self, req, template_id, **_):
        return self.api.template(template_id)

    @route("dynprov_reload", PREFIX + "/library/reload", methods=["POST"])
    @described("Reload the template library",
               responses={409: "store mode: the library is the store's",
                          422: "the library is invalid; the previous one stays",
                          503: "the reload did not finish in time"})
    @_answers
    def reload_library(self, req, **_):
        return self.api.reload()

    @route("dynprov_switches", PREFIX + "/switches", methods=["GET"])
    @described("Managed switches")
    @_answers
    def list_switches(self, req, **_):
        return self.api.switches()

    @route("dynprov_links", PREFIX + "/links", methods=["GET"])
    @described("Links discovered by signed LLDP probes")
    @_answers
    def list_links(self, req, **_):
        return self.api.links()

    @route("dynprov_refused", PREFIX + "/refused", methods=["GET"])
    @described("MACs refused or quarantined, and why")
    @_answers
    def list_refused(self, req, **_):
        return self.api.refused()

    @route("dynprov_security", PREFIX + "/security", methods=["GET"])
    @described("What the defences did: probes dropped, links refused, moves refused")
    @_answers
    def show_security(self, req, **_):
        return self.api.security()

    @route("dynprov_provisioning_times", PREFIX + "/provisioning-times", methods=["GET"])
    @described("Recent VMs: detection and barrier-confirmed times (monotonic ns)")
    @_answers
    def provisioning_times(self, req, **_):
        return self.api.app.provisioning_times.views()

    @route("dynprov_openapi", PREFIX + "/openapi.json", methods=["GET"])
    @described("This API described: OpenAPI 3, built from the routes themselves")
    @_answers
    def openapi(self, req, **_):
        return document(self.parent.mapper)


class FallbackController(ControllerBase):
    """Everything under /dynprov that no route took: 405 or 404, in JSON."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.api: DynprovApi = data["api"]

    @route("dynprov_fallback_root", PREFIX)
    @_answers
    def fallback_root(self, req, **_):
        _refuse(req, self.parent.mapper)

    @route("dynprov_fallback", PREFIX + "/{rest}", requirements={"rest": ".*"})
    @_answers
    def fallback(self, req, **_):
        _refuse(req, self.parent.mapper)


def _refuse(req, mapper) -> None:
    """Raise 405 for a known path with another method, else 404."""
    allowed = sorted({e["method"] for e in routes(mapper)
                      if re.match(path_pattern(e["path"]), req.path)})
    if allowed:
        raise ApiError(405, f"{req.method} is not allowed on {req.path}: "
                            f"use {' or '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
    raise ApiError(404, f"no endpoint {req.path} (GET {PREFIX} lists the endpoints)")
