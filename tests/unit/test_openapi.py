"""The OpenAPI document (ryu_apps.rest.openapi) against the routes the stack serves,
and JSON errors outside /dynprov, through the whole WSGI stack (no socket)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from tests.unit.test_rest_status import (  # noqa: F401 (fixtures)
    ADMIN,
    READER,
    call,
    fake_app,
    guarded_stack,
)

#: A value for each path parameter that the fake app's routes answer 200 to.
PATH_VALUES = {"mac": "00:fa:00:00:00:01", "template_id": "250"}
#: Documented operations that change state, and the body each is called with.
BODIES = {("post", "/dynprov/notifications"):
          {"event": "shutdown", "mac": "00:fa:00:00:00:02"}}


@pytest.fixture(autouse=True)
def _link_discovery(app):
    """What GET /dynprov/security reads of the app's link discovery."""
    app.discovery = SimpleNamespace(counters=lambda: {"accepted": 0, "rejected": {},
                                                      "beacons_ignored": {}})


def _document(guard) -> dict:
    answer = call(guard, "GET", "/dynprov/openapi.json", token=READER)
    assert answer.status == 200, answer.body
    return answer.body


def _live_routes(guard) -> set:
    mapper = guard.app.mapper
    live = set()
    for route in mapper.matchlist:
        if any(r == ".*" for r in (route.reqs or {}).values()):
            continue
        for method in (route.conditions or {}).get("method") or []:
            live.add((method.lower(), route.routepath))
    return live


def test_every_live_route_is_documented_and_described(guard):
    document = _document(guard)
    assert document["openapi"].startswith("3.")
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert documented == _live_routes(guard)
    undescribed = [f"{m.upper()} {p}" for p, ops in document["paths"].items()
                   for m, op in ops.items() if op.get("x-undescribed")]
    assert not undescribed, "add @described(...) under their @route: " + str(undescribed)
    reload = document["paths"]["/dynprov/library/reload"]["post"]
    assert reload["x-role"] == "admin" and "422" in reload["responses"]
    mac = document["paths"]["/dynprov/bindings/{mac}"]["get"]["parameters"][0]
    assert mac == {"name": "mac", "in": "path", "required": True,
                   "schema": {"type": "string"}}


def test_every_documented_operation_answers_json(guard):
    for path, operations in _document(guard)["paths"].items():
        concrete = re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES[m.group(1)], path)
        for method in operations:
            body = BODIES.get((method, path))
            answer = call(guard, method.upper(), concrete, body, token=ADMIN)
            assert answer.status in (200, 202), (method, path, answer.body)


def test_the_endpoint_list_and_the_document_agree(guard):
    listed = {(e["method"].lower(), e["path"])
              for e in call(guard, "GET", "/dynprov").body["endpoints"]}
    documented = {(m, p) for p, ops in _document(guard)["paths"].items() for m in ops}
    assert listed == documented


def test_errors_outside_dynprov_are_json(guard):
    for path in ("/", "/metrics", "/stats/flow/1", "/dynprovx", "/favicon.ico"):
        answer = call(guard, "GET", path, token=READER)
        assert answer.status == 404 and "no endpoint" in answer.body["error"], path
    answer = call(guard, "DELETE", "/dynprov/openapi.json", token=ADMIN)
    assert answer.status == 405 and answer.headers["Allow"] == "GET"
    assert "error" in call(guard, "GET", "/elsewhere", token=None).body   # 401, JSON too
