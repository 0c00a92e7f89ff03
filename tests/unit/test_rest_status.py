"""Every status the REST API answers, through the whole WSGI stack (no socket).

Guard (tokens, body cap) -> Ryu's router -> the dynprov controllers -> a real
engine behind a fake app. Every answer is JSON with an ``error`` that says what
was wrong, and no body ever carries a traceback.
"""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace

import pytest

from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.fabric import PortRef, Role
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.rest.auth import Tokens, parse_tokens
from tests.support.required import import_or_skip
from tests.unit.test_rest_views import A1, DB1, F1, LIBRARY, S11, S12, UPLINK, WEB1, WEB2

rest_api = import_or_skip("ryu_apps.rest.api")
from ryu_apps.rest import notify as rest_notify  # noqa: E402 (after import_or_skip)
from ryu_apps.rest.guard import CLOSE_KEY, INTERNAL_ERROR, MAX_BODY, Guard  # noqa: E402

ADMIN, READER = "admin-token-0123456789abcdef", "reader-token-0123456789abcdef"
TOKENS = f"admin ops {ADMIN}\nreader watcher {READER}\n"
NOTIFY = "/dynprov/notifications"


class FakeApp:
    """What the REST API uses of the dynprov RyuApp, on a real engine."""

    name = "dynprov"

    def __init__(self, engine: ProvisioningEngine) -> None:
        self.engine = engine
        self.datapaths: dict = {}
        self.logger = logging.getLogger("test.rest.app")
        self.reload_result = (True, "library reloaded: 2 templates, 0 flow changes")
        self.reloads = 0
        self.notices: list = []
        self.provisioning_times = SimpleNamespace(views=lambda: [])

    def notify(self, notice, mac, server=None, template_id=None) -> str:
        self.notices.append((notice, mac, server, template_id))
        return self.engine.notify(notice, mac, server, template_id, now=2.0).message

    def reload_library(self):   # the reload, answered at once
        self.reloads += 1
        return self.reload_result


@pytest.fixture(name="app")
def fake_app() -> FakeApp:
    """s11 and s12 below a1 below f1; web1 and db1 on s11, web2 on s12."""
    engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
    for dpid, role, name in ((F1, Role.FABRIC, "f1"), (A1, Role.ACCESS, "a1"),
                             (S11, Role.SERVER, "s11"), (S12, Role.SERVER, "s12")):
        engine.switch_up(dpid, role, name, [], now=0.0)
    for a, b in (((A1, 1), (F1, 1)), ((S11, UPLINK), (A1, 2)), ((S12, UPLINK), (A1, 3))):
        engine.link_seen(PortRef(*a), PortRef(*b), now=0.0)
    for dpid, port, mac in ((S11, 1, WEB1), (S11, 2, DB1), (S12, 1, WEB2)):
        assert engine.packet_in(dpid, port, mac, b"", now=1.0).provisioned
    return FakeApp(engine)


@pytest.fixture(name="guard")
def guarded_stack(app) -> Guard:
    wsgi = rest_api.RestApplication()
    api = rest_api.DynprovApi(app)
    rest_notify.register(app, wsgi)
    wsgi.register(rest_api.DynprovRestController, {"api": api})
    wsgi.register(rest_api.FallbackController, {"api": api})
    return Guard(wsgi, Tokens(parse_tokens(TOKENS, "tokens")),
                 logging.getLogger("test.rest.guard"))


class Answer(SimpleNamespace):
    status: int
    body: dict
    headers: dict
    closed: bool


def call(guard, method: str, path: str, body=None, token: str | None = ADMIN,
         headers: dict | None = None, environ: dict | None = None) -> Answer:
    """One request through the stack; the answer must be JSON without a traceback."""
    from webob import Request

    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    closed = []
    request = Request.blank(path, method=method, headers=dict(headers or {}),
                            environ={CLOSE_KEY: lambda: closed.append(True),
                                     **(environ or {})})
    if token is not None:
        request.headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        request.body = body
    response = request.get_response(guard)
    assert response.content_type == "application/json", response.body[:200]
    assert b"Traceback" not in response.body and b'File "' not in response.body
    return Answer(status=response.status_int, body=json.loads(response.body),
                  headers=dict(response.headers), closed=bool(closed))


def _notify(guard, token=ADMIN, **document):
    return call(guard, "POST", NOTIFY, document, token=token)


def _bindings(app) -> dict:
    return {mac: (b.state, b.template_id, b.dpid) for mac, b in app.engine.bindings.items()}


# -- 200 ------------------------------------------------------------------------------
def test_a_reader_reads_and_an_admin_does_everything(guard, app):
    for token in (READER, ADMIN):
        answer = call(guard, "GET", "/dynprov/bindings?counters=false", token=token)
        assert answer.status == 200 and {b["mac"] for b in answer.body} == {WEB1, DB1, WEB2}
    answer = _notify(guard, event="suspended", mac=WEB1.upper())
    assert (answer.status, answer.body) == (200, {"event": "suspended", "mac": WEB1,
                                                  "acknowledged": "traffic stopped, binding "
                                                                  "kept"})
    assert call(guard, "POST", "/dynprov/library/reload").status == 200


def test_the_endpoint_list_needs_a_token_and_says_which_role(guard):
    assert call(guard, "GET", "/dynprov", token=None).status == 401
    endpoints = call(guard, "GET", "/dynprov", token=READER).body["endpoints"]
    assert {(e["method"], e["role"]) for e in endpoints} == {("GET", "reader"),
                                                             ("POST", "admin")}


# -- 401, 403 ----------------------------------------------------------------------------
@pytest.mark.parametrize("headers, challenge", [
    ({}, 'Bearer realm="dynprov"'),
    ({"Authorization": "Basic YWRtaW46YWRtaW4="},
     'Bearer realm="dynprov", error="invalid_request"'),
    ({"Authorization": "Bearer " + ADMIN[:-1]}, 'Bearer realm="dynprov", error="invalid_token"'),
])
def test_no_valid_token_is_401_and_changes_nothing(guard, app, headers, challenge):
    before = _bindings(app)
    for method, path, body in (("GET", "/dynprov/bindings", None),
                               ("POST", "/dynprov/library/reload", None),
                               ("POST", NOTIFY, {"event": "shutdown", "mac": WEB1}),
                               ("GET", "/no/such/path", None)):
        answer = call(guard, method, path, body, token=None, headers=headers)
        assert answer.status == 401, answer.body
        assert answer.headers["WWW-Authenticate"] == challenge
        assert answer.body["error"]
    assert (_bindings(app), app.reloads, app.notices) == (before, 0, [])


def test_a_reader_may_not_change_anything(guard, app):
    before = _bindings(app)
    for event in ("shutdown", "suspended", "restarting", "template-change"):
        answer = _notify(guard, token=READER, event=event, mac=WEB1, template=252)
        assert (answer.status, answer.body) == (403, {
            "error": "token 'watcher' has role reader: POST needs admin"})
    answer = call(guard, "POST", "/dynprov/library/reload", token=READER)
    assert answer.status == 403
    assert (_bindings(app), app.reloads, app.notices) == (before, 0, [])


def test_without_a_tokens_file_every_call_is_refused(app):
    wsgi = rest_api.RestApplication()
    wsgi.register(rest_api.DynprovRestController, {"api": rest_api.DynprovApi(app)})
    guard = Guard(wsgi, None, logging.getLogger("test.rest.guard"))
    answer = call(guard, "GET", "/dynprov/bindings")
    assert answer.status == 401
    assert answer.body["error"] == ("this controller has no REST tokens ([dynprov] "
                                    "rest_tokens is not set): every call is refused")


def test_refusals_are_logged_once_per_client_and_reason_without_the_token(guard, caplog):
    with caplog.at_level(logging.INFO, logger="test.rest.guard"):
        for _ in range(20):
            call(guard, "GET", "/dynprov", token="wrong-token-0123456789",
                 environ={"REMOTE_ADDR": "192.0.2.7"})
            call(guard, "POST", "/dynprov/library/reload", token=READER,
                 environ={"REMOTE_ADDR": "192.0.2.7"})
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "REST call refused: client 192.0.2.7: unknown token",
        "REST call refused: client 192.0.2.7: token 'watcher' (reader) may not POST "
        "/dynprov/library/reload"]
    assert "wrong-token" not in caplog.text and READER not in caplog.text


# -- 400 ---------------------------------------------------------------------------------
def test_malformed_mac_is_400_in_a_path_and_in_a_notification(guard, app):
    answer = call(guard, "GET", "/dynprov/bindings/00:fa:00:00:00", token=READER)
    assert (answer.status, answer.body["error"]) == (400, (
        "'00:fa:00:00:00' is not a MAC address: expected six hex octets separated by ':' "
        "or '-', like 00:fa:83:91:de:1b"))
    answer = _notify(guard, event="shutdown", mac="00:fa:00:00:00:zz")
    assert (answer.status, answer.body["error"]) == (400, (
        "mac: '00:fa:00:00:00:zz' is not a MAC address: expected six hex octets separated by "
        "':' or '-', like 00:fa:83:91:de:1b"))
    assert app.notices == []


@pytest.mark.parametrize("template, shown", [
    (1.5, "1.5"), (250.0, "250.0"), (True, "true"), (False, "false"), (-1, "-1"),
    (65536, "65536"), ([250], "[250]"), ({"id": 250}, '{"id": 250}')])
def test_template_must_be_an_integer_or_an_id_string(guard, app, template, shown):
    answer = _notify(guard, event="template-change", mac=WEB1, template=template)
    assert (answer.status, answer.body["error"]) == (400, (
        'template: expected a template id, an integer 0..65535 or a string like "250" or '
        f'"0x00FA", got {shown}'))
    assert app.notices == []


@pytest.mark.parametrize("template, expected", [(252, 252), ("252", 252), ("0x00FC", 252)])
def test_template_as_integer_or_string(guard, app, template, expected):
    answer = _notify(guard, event="template-change", mac=WEB1, template=template)
    assert answer.status == 200, answer.body
    assert app.notices[-1][3] == expected == app.engine.bindings[WEB1].template_id


@pytest.mark.parametrize("body, message", [
    (b'{"event": "template-change", "mac": "00:fa:00:00:00:01", "template": 1e400}',
     "template: number out of range, got 1e400"),
    (b'{"event": "template-change", "mac": "00:fa:00:00:00:01", "template": NaN}',
     "template: expected a finite number, got NaN"),
    (b'{"event": ' * 40 + b"1" + b"}" * 40, "body: JSON nested more than 32 levels deep"),
    (b"[" * 30000, "body: JSON nested more than 32 levels deep"),
    (bytes(range(256)), "body is not UTF-8 text (byte 128)"),
    (b"event=shutdown&mac=x", "body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"", 'body: expected a JSON object like {"event": "shutdown", "mac": '
          '"00:fa:00:00:00:01"}'),
    (b"[1, 2]", 'body: expected a JSON object like {"event": "shutdown", "mac": '
                '"00:fa:00:00:00:01"}'),
    (b'{"event": "shutdown", "mac": "00:fa:00:00:00:01", "vm": 1}',
     "unknown field 'vm' (expected event, mac, server, template)"),
    (b'{"event": "shutdown", "event": "started", "mac": "00:fa:00:00:00:01"}',
     "body: field 'event' given twice"),
    (b'{"event": 7, "mac": "00:fa:00:00:00:01"}',
     "event: expected one of started, shutdown, suspended, resumed, restarting, migrating, "
     "template-change, got 7"),
    (b'{"event": "shutdown", "mac": 1}', "mac: expected a MAC address string, got 1"),
    (b'{"event": "migrating", "mac": "00:fa:00:00:00:01"}',
     "server: event migrating needs the server (bridge name or datapath id)"),
    (b'{"event": "migrating", "mac": "00:fa:00:00:00:01", "server": ""}',
     'server: expected a bridge name or datapath id (a string of 1 to 64 characters), '
     'got \'\''),
    (b'{"event": "template-change", "mac": "00:fa:00:00:00:01"}',
     "template: event template-change needs the new template id"),
    (b'{"event": "template-change", "mac": "00:fa:00:00:00:01", "template": "web"}',
     "template: 'web' is not a template id: expected 0..65535, in decimal (250) or hex "
     "(0x00FA)"),
])
def test_hostile_or_malformed_bodies_are_400_naming_the_field(guard, app, body, message):
    before = _bindings(app)
    answer = call(guard, "POST", NOTIFY, body)
    assert (answer.status, answer.body) == (400, {"error": message})
    assert (_bindings(app), app.notices) == (before, [])


# -- 404, 405, 409 ----------------------------------------------------------------------
def test_unknown_vm_server_and_route_are_404(guard):
    answer = _notify(guard, event="suspended", mac="00:fa:00:00:0f:ff")
    assert (answer.status, answer.body["error"]) == (404, (
        "unknown VM 00:fa:00:00:0f:ff: no binding and never seen by this controller"))
    answer = _notify(guard, event="migrating", mac=WEB1, server="nowhere")
    assert (answer.status, answer.body["error"]) == (404, (
        "unknown server 'nowhere': no connected server bridge has that name or datapath id"))
    for path in ("/dynprov/nothing", "/", "/stats/switches", "/dynprov/bindings/x/y/z"):
        answer = call(guard, "GET", path, token=READER)
        assert answer.status == 404, path
        assert answer.body["error"] == f"no endpoint {path} (GET /dynprov lists the endpoints)"


def test_a_known_path_with_another_method_is_405(guard):
    answer = call(guard, "GET", "/dynprov/library/reload")
    assert (answer.status, answer.headers["Allow"]) == (405, "POST")
    assert answer.body["error"] == "GET is not allowed on /dynprov/library/reload: use POST"
    assert call(guard, "DELETE", "/dynprov/bindings/" + WEB1).status == 405
    assert call(guard, "GET", NOTIFY, token=READER).status == 405


def test_a_notification_that_does_not_apply_now_is_409(guard, app):
    answer = _notify(guard, event="template-change", mac=WEB1, template=4000)
    assert (answer.status, answer.body["error"]) == (409, (
        f"template 4000 (0x0FA0) is not in the library of VM {WEB1}'s domain"))
    answer = _notify(guard, event="migrating", mac=WEB1, server="a1")
    assert (answer.status, answer.body["error"]) == (409, (
        "a1 is an access switch, not a server's virtual switch"))


def test_status_comes_from_the_error_type_not_its_words():
    from ryu_apps.core import notification_errors as errors

    cases = {errors.MalformedNotification("unknown VM"): 400,
             errors.UnknownVm("whatever"): 404, errors.UnknownServer("x"): 404,
             errors.NotApplicable("unknown server 'x'"): 409,
             errors.NotificationError("unknown VM 1"): 409}
    assert {type(e).__name__: rest_notify.status_of(e) for e in cases} == {
        type(e).__name__: status for e, status in cases.items()}


# -- 413 --------------------------------------------------------------------------------
def test_a_body_over_the_cap_is_413_from_its_length_and_never_read(guard, app):
    class Unread(io.BytesIO):
        def read(self, *_):
            raise AssertionError("a body announced too large must not be read")

    answer = call(guard, "POST", NOTIFY, token=None, environ={
        "wsgi.input": Unread(), "CONTENT_LENGTH": str(60 * 1024 * 1024)})
    assert answer.status == 401 and answer.closed   # no token: refused first, not read
    answer = call(guard, "POST", NOTIFY, environ={
        "wsgi.input": Unread(), "CONTENT_LENGTH": str(60 * 1024 * 1024)})
    assert (answer.status, answer.body, answer.closed) == (
        413, {"error": f"request body larger than {MAX_BODY} bytes"}, True)
    assert app.notices == []


def test_a_chunked_body_is_cut_at_the_cap_while_reading(guard, app):
    class Endless(io.RawIOBase):
        read_so_far = 0

        def read(self, size=-1):
            self.read_so_far += size
            return b" " * size

    stream = Endless()
    answer = call(guard, "POST", NOTIFY, environ={
        "wsgi.input": stream, "HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""})
    assert (answer.status, answer.closed) == (413, True)
    assert stream.read_so_far <= 2 * 1024 * 1024   # the cap, then a bounded drain
    assert app.notices == []


def test_a_body_just_under_the_cap_is_read(guard, app):
    padding = " " * (MAX_BODY - 100)
    body = ('{"event": "suspended", "mac": "%s"}' % WEB1 + padding).encode()
    assert len(body) < MAX_BODY
    assert call(guard, "POST", NOTIFY, body).status == 200


# -- 422, 500 ----------------------------------------------------------------------------
def test_an_invalid_library_is_422_with_every_error(guard, app):
    app.reload_result = (False, "lib/web.yaml: template 250 'web': vlan: expected an "
                                "integer 1-4094, got 5000\n\nlib/db.yaml: id: duplicate\n")
    answer = call(guard, "POST", "/dynprov/library/reload")
    assert (answer.status, answer.body) == (422, {
        "error": "library reload refused; the previous library stays in force",
        "errors": ["lib/web.yaml: template 250 'web': vlan: expected an integer 1-4094, got "
                   "5000", "lib/db.yaml: id: duplicate"]})


def test_a_bug_is_a_json_500_and_one_traceback_in_the_log(guard, app, caplog, monkeypatch):
    def broken(*_args, **_kwargs):
        raise KeyError("secret internal detail")

    monkeypatch.setattr(app, "notify", broken)
    monkeypatch.setattr(app.engine.fabric, "links", broken)
    monkeypatch.setattr(app, "reload_library", broken)
    with caplog.at_level(logging.ERROR):
        for method, path, body in (("POST", NOTIFY, {"event": "suspended", "mac": WEB1}),
                                   ("GET", "/dynprov/links", None),
                                   ("POST", "/dynprov/library/reload", None)):
            answer = call(guard, method, path, body)
            assert (answer.status, answer.body) == (500, {"error": INTERNAL_ERROR}), path
            assert "secret internal detail" not in json.dumps(answer.body)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 3   # one per failed call


def test_an_exception_outside_every_handler_is_a_json_500(app, caplog):
    def exploding(environ, start_response):
        raise RuntimeError("router broke")

    guard = Guard(exploding, Tokens(parse_tokens(TOKENS, "tokens")),
                  logging.getLogger("test.rest.guard"))
    with caplog.at_level(logging.ERROR, logger="test.rest.guard"):
        answer = call(guard, "GET", "/dynprov")
    assert (answer.status, answer.body, answer.closed) == (500, {"error": INTERNAL_ERROR},
                                                           True)
    (record,) = caplog.records
    assert record.getMessage() == "REST GET /dynprov failed" and record.exc_info
