"""The REST API described: an OpenAPI 3 document built from the routes themselves.

Every route registered on the WSGI application appears in the document (its
path, method and path parameters come from the router, never from a list kept
by hand), so a new route cannot be left out. What a route is for is one
declaration next to it, under its ``@route``::

    @route("dynprov_trace", PREFIX + "/trace", methods=["GET"])
    @described("The policy trace of one packet", query={"from": "VM MAC"},
               responses={404: "unknown VM"})
    @_answers
    def trace(self, req, **_): ...

A route without it is still listed (summary: its docstring's first line) and
flagged ``x-undescribed: true``; tests/unit/test_openapi.py fails on it.
Catch-all routes (``requirements`` matching anything) are not endpoints and
are left out.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, Optional

from ryu_apps.rest.auth import required_role

VERSION = "1.0.0"
#: Every error body: ``{"error": "what was wrong"}`` (some add fields).
ERROR_SCHEMA = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string"}}, "additionalProperties": True}
#: What any route may answer besides its own statuses (the guard's refusals).
COMMON_ERRORS = {401: "no or unknown bearer token", 403: "the token's role is too low",
                 500: "internal error (the controller log has the traceback)"}
_PARAMETER = re.compile(r"\{([^}]+)\}")


def described(summary: str, *, query: Optional[Dict[str, str]] = None,
              body: Optional[Dict[str, Any]] = None,
              responses: Optional[Dict[int, str]] = None) -> Callable:
    """Describe the route below: a summary, its query parameters (name: meaning), a
    JSON request body's example, and its statuses other than 200 (status: when)."""
    def mark(handler: Callable) -> Callable:
        handler.openapi = {"summary": summary, "query": dict(query or {}),  # type: ignore
                           "body": body, "responses": dict(responses or {})}
        return handler
    return mark


def routes(mapper) -> List[dict]:
    """(path, method, handler) of every endpoint route of a Routes ``mapper``."""
    found = []
    for route in mapper.matchlist:
        if any(req in (".*", ".+") for req in (route.reqs or {}).values()):
            continue   # a catch-all (the JSON 404/405 fallback), not an endpoint
        methods = (route.conditions or {}).get("method") or []
        controller, action = route.defaults.get("controller"), route.defaults.get("action")
        handler = getattr(controller, action, None) if controller and action else None
        for method in methods:
            found.append({"path": route.routepath, "method": method.upper(),
                          "handler": handler})
    return found


def endpoints(mapper) -> List[dict]:
    """The endpoint list of ``GET /dynprov``: method, path, summary and role."""
    return [{"method": e["method"], "path": e["path"], "what": _summary(e["handler"]),
             "role": required_role(e["method"]).label}
            for e in sorted(routes(mapper), key=lambda e: (e["path"], e["method"]))]


def path_pattern(path: str) -> str:
    """A regular expression matching the concrete paths of a route's ``path``."""
    return "^" + _PARAMETER.sub("[^/]+", re.escape(path).replace(r"\{", "{")
                                .replace(r"\}", "}")) + "$"


def document(mapper, title: str = "dynprov REST API") -> dict:
    """The OpenAPI 3.0 document of every endpoint route of ``mapper``."""
    paths: Dict[str, Dict[str, Any]] = {}
    for entry in sorted(routes(mapper), key=lambda e: (e["path"], e["method"])):
        paths.setdefault(entry["path"], {})[entry["method"].lower()] = _operation(entry)
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": VERSION,
                 "description": "Every call needs 'Authorization: Bearer TOKEN' (GET: a "
                                "reader token, anything else: admin). Every error is JSON "
                                "{\"error\": \"...\"}. See docs/rest-api.md."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _operation(entry: dict) -> dict:
    handler, method, path = entry["handler"], entry["method"], entry["path"]
    info = getattr(handler, "openapi", None)
    operation: Dict[str, Any] = {
        "operationId": getattr(handler, "__name__", f"{method} {path}"),
        "summary": _summary(handler),
        "x-role": required_role(method).label,
        "parameters": list(_parameters(path, info["query"] if info else {})),
        "responses": _responses(info["responses"] if info else {}),
    }
    if info is None:
        operation["x-undescribed"] = True
    elif info["body"] is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"type": "object"}, "example": info["body"]}}}
    return operation


def _parameters(path: str, query: Dict[str, str]) -> Iterable[dict]:
    for name in _PARAMETER.findall(path):
        yield {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    for name, meaning in query.items():
        yield {"name": name, "in": "query", "required": False, "description": meaning,
               "schema": {"type": "string"}}


def _responses(own: Dict[int, str]) -> Dict[str, dict]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/"
                                                                   "Error"}}}}
    answers: Dict[str, dict] = {"200": {"description": "OK (JSON)", "content": {
        "application/json": {"schema": {}}}}}
    for status, when in sorted({**COMMON_ERRORS, **own}.items()):
        answers[str(status)] = {"description": when, **error}
    return answers


def _summary(handler) -> str:
    info = getattr(handler, "openapi", None)
    if info:
        return info["summary"]
    text = (getattr(handler, "__doc__", None) or "").strip()
    return text.splitlines()[0] if text else "(not described)"
