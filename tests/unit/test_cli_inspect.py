"""``dynprov bindings`` and ``dynprov flows`` against a canned local HTTP server."""

from __future__ import annotations

import argparse
import json
import socket
import threading
# Bound now: importing eventlet (Ryu) later rebinds the attribute http.server to a
# green copy whose locks would deadlock this test's real server thread.
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ryu_apps.cli import flow_listing
from ryu_apps.cli import inspect, rest_client

WEB1 = "00:fa:00:00:00:01"
BINDINGS = [
    {"binding_id": 5, "mac": WEB1, "template_id": 250, "template_name": "web", "vlan": 100,
     "server": {"dpid": "0000000000001101", "name": "s11", "port": 2},
     "access": {"dpid": "0000000000000201", "name": "a1", "port": 2},
     "state": "active", "since": "2024-05-01T12:00:03.250Z", "since_unix": 1714564803.25,
     "detected_by": "packet", "ip": None, "cookie": "0xd9100fa000000005",
     "counters": {"sent": {"packets": 5, "bytes": 396},
                  "received": {"packets": 4, "bytes": 352}},
     "counters_error": None},
    {"binding_id": 1, "mac": "00:fc:00:00:00:02", "template_id": 252,
     "template_name": "database", "vlan": 200,
     "server": {"dpid": "0000000000001102", "name": "s12", "port": 3}, "access": None,
     "state": "active", "since": "2024-05-01T12:00:04.000Z", "since_unix": 1714564804.0,
     "detected_by": "restored", "ip": "10.0.200.2", "ipv6_bound": ["2001:db8::2"],
     "cookie": "0xd9100fc000000001",
     "counters": None, "counters_error": "server bridge s12: switch not connected"},
]
SWITCHES = [{"dpid": "0000000000001101", "name": "s11", "role": "server",
             "connected": True, "bindings": 1}]
TEMPLATES = [{"template_id": 250, "name": "web"}, {"template_id": 252, "name": "database"}]
DUMP = """\
OFPST_FLOW reply (OF1.3) (xid=0x2):
 cookie=0xd9f0000000000000, duration=9.1s, table=0, n_packets=40, n_bytes=1920, \
priority=60000,dl_type=0x88cc actions=CONTROLLER:65535
 cookie=0xd9100fa000000005, duration=9.1s, table=0, n_packets=5, n_bytes=396, \
priority=50000,in_port=2,dl_src=00:fa:00:00:00:01 actions=goto_table:1
 cookie=0xd9100fa000000063, duration=9.1s, table=0, n_packets=0, n_bytes=0, \
priority=50000,in_port=7,dl_src=00:fa:00:00:00:63 actions=goto_table:1
 cookie=0xd920000000000064, duration=9.1s, table=4, n_packets=0, n_bytes=0, \
priority=20000,dl_vlan=100 actions=output:1
 cookie=0x0, duration=9.1s, table=0, n_packets=0, n_bytes=0, priority=5,in_port=9 \
actions=output:8
"""


TOKEN = "reader-token-0123456789abcdef"


class _Canned(BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 (http.server's API name)
        status, body = self.routes.get(self.path, (404, {"error": f"no {self.path}"}))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, {"error": "unknown token"}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch, tmp_path):
    """No DYNPROV_* variable and no config file of the machine or checkout; the token
    in DYNPROV_TOKEN (the tests that check where a token comes from remove it)."""
    for name in ("DYNPROV_CONTROLLER", "DYNPROV_TOKEN_FILE", "DYNPROV_CA_CERT",
                 "DYNPROV_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DYNPROV_TOKEN", TOKEN)
    monkeypatch.setattr(rest_client, "CONFIG_CANDIDATES", (tmp_path / "none.conf",))


@pytest.fixture(name="controller")
def canned_controller():
    """(base URL, routes): a local server answering routes[path] = (status, body)."""
    routes = {"/dynprov/bindings": (200, BINDINGS),
              "/dynprov/bindings?counters=false": (200, BINDINGS),
              "/dynprov/templates": (200, TEMPLATES),
              "/dynprov/switches": (200, SWITCHES),
              "/dynprov/rule-origins": (200, {"origins": []})}
    handler = type("Handler", (_Canned,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


@pytest.fixture(name="nobody")
def unused_url() -> str:
    """A URL on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(name="ovs")
def fake_ovs(monkeypatch):
    """Bridges s11 (DUMP) and s99 (not the controller's) exist; no other bridge does."""
    def runner(argv):
        bridge = argv[4] if argv[0] == "ovs-vsctl" else argv[-1]
        dpid = {"s11": "0000000000001101", "s99": "0000000000009999"}.get(bridge)
        if dpid is None:
            return 1, "", f"{argv[0]}: {bridge} is not a bridge or a socket\n"
        return 0, (f'"{dpid}"\n' if argv[0] == "ovs-vsctl" else DUMP), ""
    monkeypatch.setattr(flow_listing, "_run", runner)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dynprov")
    inspect.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


# -- dynprov bindings -----------------------------------------------------------------
def test_bindings_table(controller, capsys):
    url, _ = controller
    assert run("bindings", "--controller", url) == 0
    out, err = capsys.readouterr()
    header, web1, db = out.splitlines()
    assert header.split("  ")[0] == "MAC" and "SENT PKTS/BYTES" in header
    assert header.endswith("ADDRESSES")
    assert web1.split() == [WEB1, "250", "web", "100", "s11:2", "a1:2", "active",
                            "2024-05-01", "12:00:03", "5/396", "4/352", "-"]
    assert db.split() == ["00:fc:00:00:00:02", "252", "database", "200", "s12:3", "-",
                          "active", "2024-05-01", "12:00:04", "-", "-",
                          "10.0.200.2,2001:db8::2"]
    assert err == ("note: 00:fc:00:00:00:02: no counters: server bridge s12: "
                   "switch not connected\n")


def test_bindings_columns_line_up(controller, capsys):
    run("bindings", "--controller", controller[0] + "/")
    lines = capsys.readouterr().out.splitlines()
    column = lines[0].index("VLAN")
    assert all(line[column:].split()[0] in ("VLAN", "100", "200") for line in lines)


def test_bindings_json(controller, capsys):
    assert run("bindings", "--controller", controller[0], "--json") == 0
    assert json.loads(capsys.readouterr().out) == BINDINGS


def test_no_bindings(controller, capsys):
    url, routes = controller
    routes["/dynprov/bindings"] = (200, [])
    assert run("bindings", "--controller", url) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(no VM is provisioned)"


def test_unreachable_controller(nobody, capsys):
    assert run("bindings", "--controller", nobody) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the dynprov controller at {nobody}: ")
    assert "refused" in err.lower()   # "ECONNREFUSED" once eventlet is imported


def test_controller_error_is_shown(controller, capsys):
    url, routes = controller
    routes["/dynprov/bindings"] = (500, {"error": "internal error: KeyError(7)"})
    assert run("bindings", "--controller", url) == 1
    assert capsys.readouterr().err == (
        f"error: the dynprov controller at {url} answered 500 for /dynprov/bindings: "
        "internal error: KeyError(7)\n")


def test_not_a_dynprov_controller(controller, capsys):
    url, routes = controller
    routes["/dynprov/bindings"] = (200, b"<html>hello</html>")
    assert run("bindings", "--controller", url) == 1
    assert "did not answer JSON" in capsys.readouterr().err


def test_bad_controller_url(capsys):
    with pytest.raises(SystemExit) as exited:
        run("bindings", "--controller", "127.0.0.1:8080")
    assert exited.value.code == 2
    assert "'127.0.0.1:8080' is not a controller URL: expected http://HOST:PORT" in (
        capsys.readouterr().err)


# -- dynprov flows ------------------------------------------------------------------
def test_flows_labelled_with_vm_and_template(controller, ovs, capsys):
    assert run("flows", "s11", "--controller", controller[0]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == ""
    assert lines[0].endswith("actions=CONTROLLER:65535  # infrastructure")
    assert lines[1].endswith(f"actions=goto_table:1  # binding 5 template 250 'web' VM {WEB1}")
    assert lines[2].endswith("# binding 99 template 250 'web' (no such binding on the "
                             "controller)")
    assert lines[3].endswith("# vlan 100")
    assert lines[4].endswith("actions=output:8  # not dynprov's")
    assert "n_packets" not in out and "duration" not in out
    assert lines[5] == "s11: 5 flows, 4 of them dynprov's"


def test_flows_with_counters(controller, ovs, capsys):
    assert run("flows", "s11", "--controller", controller[0], "--counters") == 0
    assert "n_packets=5, n_bytes=396" in capsys.readouterr().out


def test_flows_without_a_controller_use_cookies_only(nobody, ovs, monkeypatch, capsys):
    monkeypatch.setattr(rest_client, "DEFAULT_CONTROLLER", nobody)
    assert run("flows", "s11") == 0
    out, err = capsys.readouterr()
    assert "# binding 5 template 250\n" in out and "VM" not in out
    assert err == ""


def test_flows_warn_when_the_given_controller_is_unreachable(nobody, ovs, capsys):
    assert run("flows", "s11", "--controller", nobody) == 0
    out, err = capsys.readouterr()
    assert "# binding 5 template 250\n" in out
    assert err.startswith(f"warning: cannot reach the dynprov controller at {nobody}")


def test_flows_of_a_bridge_the_controller_does_not_manage(controller, ovs, capsys):
    url, _ = controller
    assert run("flows", "s99", "--controller", url) == 0
    out, err = capsys.readouterr()
    assert "# binding 5 template 250\n" in out and "VM" not in out
    assert err == (f"warning: the dynprov controller at {url} does not manage bridge s99 "
                   "(datapath id 0000000000009999); flows are labelled from their cookies "
                   "only\n")


def test_flows_of_a_missing_bridge(nobody, ovs, capsys):
    assert run("flows", "nosuch", "--controller", nobody) == 1
    err = capsys.readouterr().err
    assert err.endswith("error: cannot read the flow table of bridge 'nosuch': "
                        "ovs-ofctl: nosuch is not a bridge or a socket\n")


def test_flows_without_ovs_ofctl(monkeypatch):
    def missing(argv, **_):
        raise FileNotFoundError(argv[0])
    monkeypatch.setattr(flow_listing.subprocess, "run", missing)
    with pytest.raises(flow_listing.FlowListingError, match="ovs-ofctl not found"):
        flow_listing.dump_flows("s11")


def test_main_parser_has_the_commands():
    from ryu_apps.cli.main import build_parser
    args = build_parser().parse_args(["flows", "br0", "--counters"])
    assert (args.bridge, args.counters, args.controller) == ("br0", True, None)
    args = build_parser().parse_args(["bindings"])
    assert args.controller is None   # DYNPROV_CONTROLLER, the config file, else the default
    assert rest_client.target_from_args(args, "reader").url == inspect.DEFAULT_CONTROLLER


# -- tokens ----------------------------------------------------------------------------
def test_without_a_token_the_error_says_where_to_put_one(controller, monkeypatch, capsys):
    monkeypatch.delenv("DYNPROV_TOKEN")
    url, _ = controller
    assert run("bindings", "--controller", url) == 1
    assert capsys.readouterr().err == (
        f"error: the dynprov controller at {url} needs a token (401: unknown token); give "
        "one with --token-file FILE, DYNPROV_TOKEN or DYNPROV_TOKEN_FILE (the controller's "
        "tokens file is [dynprov] rest_tokens)\n")


def test_a_wrong_token_is_reported_as_refused(controller, monkeypatch, capsys):
    monkeypatch.setenv("DYNPROV_TOKEN", "not-the-token-0123456789")
    url, _ = controller
    assert run("bindings", "--controller", url) == 1
    assert "refused the token (401: unknown token)" in capsys.readouterr().err


def test_token_from_a_file_given_on_the_command_line(controller, monkeypatch, tmp_path):
    monkeypatch.setenv("DYNPROV_TOKEN", "not-the-token-0123456789")   # the option wins
    token_file = tmp_path / "token"
    token_file.write_text(f"# the reader token\n{TOKEN}\n")
    assert run("bindings", "--controller", controller[0], "--token-file", str(token_file)) == 0


def test_token_and_url_from_the_controllers_config_file(controller, monkeypatch, tmp_path,
                                                         capsys):
    monkeypatch.delenv("DYNPROV_TOKEN")
    port = controller[0].rsplit(":", 1)[1]
    tokens = tmp_path / "rest-tokens"
    tokens.write_text(f"admin ops admin-token-0123456789abcdef\nreader mon {TOKEN}\n")
    config = tmp_path / "dynprov.conf"
    config.write_text(f"[DEFAULT]\nwsapi_host = 127.0.0.1\nwsapi_port = {port}\n"
                      f"[dynprov]\nrest_tokens = {tokens}\n")
    monkeypatch.setenv("DYNPROV_CONFIG", str(config))
    assert run("bindings") == 0   # the reader token: the least role that reads
    assert "00:fa:00:00:00:01" in capsys.readouterr().out
