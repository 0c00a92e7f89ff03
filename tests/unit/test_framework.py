"""The framework edge: one module imports Ryu or os-ken; os-ken's stand-in for Ryu's WSGI."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import webob

from ryu_apps.app import framework, wsgi_routes
from ryu_apps.cli.controller import DEFAULT_APP, LaunchError, split_framework

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "ryu_apps"
EDGE = PACKAGE_DIR / "app" / "framework.py"


# -- which framework ------------------------------------------------------------------

def test_ryu_is_the_default_and_os_ken_is_spelt_three_ways():
    assert framework.selected({}) == "ryu"
    assert framework.selected({"DYNPROV_FRAMEWORK": ""}) == "ryu"
    for spelling in ("os-ken", "OS_KEN", "osken"):
        assert framework.selected({"DYNPROV_FRAMEWORK": spelling}) == "os-ken"


def test_an_unknown_framework_is_refused_naming_the_variable_and_the_choices():
    with pytest.raises(framework.FrameworkError,
                       match=r"DYNPROV_FRAMEWORK='faucet': expected one of ryu, os-ken"):
        framework.selected({"DYNPROV_FRAMEWORK": "faucet"})


def test_os_ken_runs_on_the_eventlet_hub_only():
    environ: dict = {}
    framework.select_osken_hub(environ)
    assert environ == {"OSKEN_HUB_TYPE": "eventlet"}
    with pytest.raises(framework.FrameworkError, match="OSKEN_HUB_TYPE='native'"):
        framework.select_osken_hub({"OSKEN_HUB_TYPE": "native"})
    framework.select_osken_hub({"OSKEN_HUB_TYPE": "native"}, strict=False)


def test_under_ryu_the_names_are_ryus_own():
    from ryu.app import wsgi
    from ryu.base import app_manager
    from ryu.lib import hub

    assert framework.NAME == "ryu"
    assert framework.hub is hub and framework.app_manager is app_manager
    assert framework.WSGIApplication is wsgi.WSGIApplication
    assert framework.OFCTL_SERVICE_APP == "ryu.app.ofctl.service"
    assert framework.version() == "ryu 4.34"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        framework.nothing  # noqa: B018


def test_no_other_module_imports_a_framework():
    offenders = []
    for path in PACKAGE_DIR.rglob("*.py"):
        if path == EDGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            offenders += [f"{path.relative_to(PACKAGE_DIR)}: {name}" for name in names
                          if name.split(".")[0] in ("ryu", "os_ken")]
    assert offenders == []


OSKEN_PROBE = """
import json, sys
from ryu_apps import provisioner
from ryu_apps.app import framework
from ryu_apps.rest import api
print(json.dumps({
    "name": framework.NAME, "version": framework.version(),
    "base": framework.app_manager.RyuApp.__module__ + "." + framework.app_manager.RyuApp.__name__,
    "app_base": provisioner.DynprovProvisioner.__mro__[1].__name__,
    "hub": framework.hub.HUB_TYPE, "ofctl": framework.OFCTL_SERVICE_APP,
    "wsgi": framework.WSGIApplication.__module__,
    "ryu_loaded": sorted(m for m in sys.modules if m == "ryu" or m.startswith("ryu.")),
}))
"""


def _python(code: str, **environ: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OSKEN_HUB_TYPE"}
    env.update(PYTHONWARNINGS="ignore", **environ)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=str(PACKAGE_DIR.parent), timeout=120)


def test_under_os_ken_the_app_imports_os_ken_and_never_ryu():
    out = _python(OSKEN_PROBE, DYNPROV_FRAMEWORK="os-ken")
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["name"] == "os-ken" and seen["version"].startswith("os-ken 4.")
    assert seen["base"] == "os_ken.base.app_manager.OSKenApp"
    assert seen["app_base"] == "OSKenApp"
    assert seen["hub"] == "eventlet"
    assert seen["ofctl"] == "os_ken.app.ofctl.service"
    assert seen["wsgi"] == "ryu_apps.app.wsgi_routes"
    assert seen["ryu_loaded"] == []


def test_under_os_ken_a_native_hub_is_refused_when_the_hub_is_imported():
    out = _python("from ryu_apps.app.framework import cfg; from ryu_apps.app.framework "
                  "import hub", DYNPROV_FRAMEWORK="os-ken", OSKEN_HUB_TYPE="native")
    assert out.returncode != 0
    assert "OSKEN_HUB_TYPE='native': dynprov runs on os-ken's eventlet hub only" in out.stderr


# -- the launcher's command line -------------------------------------------------------

def test_framework_flag_is_taken_out_wherever_it_is():
    assert split_framework(["--verbose", "--framework", "os-ken", "x.app"]) == (
        "os-ken", ["--verbose", "x.app"])
    assert split_framework(["--framework=OS-KEN"]) == ("os-ken", [])
    assert split_framework(["--config-file", "a.conf"]) == ("ryu", ["--config-file", "a.conf"])
    assert split_framework([], default="os-ken") == ("os-ken", [])
    assert DEFAULT_APP == "ryu_apps.provisioner"


def test_an_unknown_or_missing_framework_flag_is_refused():
    with pytest.raises(LaunchError, match="--framework: expected ryu or os-ken, got 'pox'"):
        split_framework(["--framework", "pox"])
    with pytest.raises(LaunchError, match="got ''"):
        split_framework(["--framework"])


# -- os-ken's WSGI stand-in answers as Ryu's module does --------------------------------

def _controllers(wsgi):
    """Two controllers written against Ryu's WSGI API, as the REST API's are."""

    class Items(wsgi.ControllerBase):
        def __init__(self, req, link, data, **config):
            super().__init__(req, link, data, **config)
            self.store = data["store"]

        @wsgi.route("items", "/x/items", methods=["GET"])
        def list_items(self, req, **_):
            return wsgi.Response(status=200, content_type="application/json",
                                 body=json.dumps(self.store).encode())

        @wsgi.route("item", "/x/items/{name}", methods=["GET"])
        def show(self, req, name, **_):
            return wsgi.Response(status=200, content_type="text/plain",
                                 body=f"{name}={self.store.get(name)}".encode())

        @wsgi.route("add", "/x/items/{name}", methods=["POST"])
        def add(self, req, name, **_):
            self.store[name] = req.body.decode()
            return wsgi.Response(status=201, body=b"added")

    class Fallback(wsgi.ControllerBase):
        @wsgi.route("rest", "/x/{rest}", requirements={"rest": ".*"})
        def anything(self, req, rest, **_):
            return wsgi.Response(status=404, body=f"no {rest} ({req.method})".encode())

    return Items, Fallback


REQUESTS = [("GET", "/x/items", b""), ("GET", "/x/items/a", b""),
            ("POST", "/x/items/b", b"2"), ("GET", "/x/items/b", b""),
            ("DELETE", "/x/items/a", b""), ("GET", "/x/other/deep/path", b""),
            ("GET", "/elsewhere", b"")]


def _answers(wsgi, app):
    items, fallback = _controllers(wsgi)
    app.register(items, {"store": {"a": "1"}})
    app.register(fallback)
    answers = []
    for method, path, body in REQUESTS:
        response = webob.Request.blank(path, method=method, body=body).get_response(app)
        answers.append((method, path, response.status_int, response.content_type,
                        response.charset, response.body))
    return answers


def test_os_ken_wsgi_routes_answer_like_ryus_wsgi():
    from ryu.app import wsgi as ryu_wsgi

    ours = _answers(wsgi_routes, wsgi_routes.WSGIApplication())
    assert ours == _answers(ryu_wsgi, ryu_wsgi.WSGIApplication())
    assert [status for _, _, status, *_ in ours] == [200, 200, 201, 200, 404, 404, 404]
    assert ours[3][-1] == b"b=2" and ours[5][-1] == b"no other/deep/path (GET)"
    assert ours[1][4] == "UTF-8"


def test_wsapi_options_are_registered_once_like_ryus():
    from oslo_config import cfg as oslo_cfg

    class Cfg:   # oslo.config's names, on a private ConfigOpts
        StrOpt, IntOpt = oslo_cfg.StrOpt, oslo_cfg.IntOpt
        ArgsAlreadyParsedError = oslo_cfg.ArgsAlreadyParsedError
        CONF = oslo_cfg.ConfigOpts()

    wsgi_routes.register_options(Cfg)
    wsgi_routes.register_options(Cfg)
    Cfg.CONF(args=["--wsapi-host", "127.0.0.1", "--wsapi-port", "8181"], project="t")
    assert (Cfg.CONF.wsapi_host, Cfg.CONF.wsapi_port) == ("127.0.0.1", 8181)
