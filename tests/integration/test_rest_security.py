"""The REST API as a stranger or a tenant would try it, on a real controller and real OVS.

Nobody without a token, and no reader, changes anything (bindings and switch
flows compared before and after); hostile bodies get a JSON 4xx and the
controller keeps serving; with the shipped config every listener is on
loopback; HTTPS works with a certificate made here, and plain HTTP is not
served on its port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ryu_apps.lab import testbed as lab
from ryu_apps.cli.rest_client import ControllerError, RestTarget, call
from tests.integration.conftest import OPEN_LIBRARY, start_datacenter, stop_datacenter

pytestmark = pytest.mark.integration

SHIPPED_CONFIG = lab.REPO_ROOT / "etc" / "dynprov.conf"
NOTIFY = "/dynprov/notifications"


@pytest.fixture(scope="module", name="dc")
def datacenter_with_own_library(tmp_path_factory):
    """(controller, net, library dir); VMs web1.. as in the default topology."""
    library = tmp_path_factory.mktemp("library") / "open"
    shutil.copytree(OPEN_LIBRARY, library)
    controller, net = start_datacenter(library, "u%03d" % (os.getpid() % 1000))
    yield controller, net, library
    stop_datacenter(controller, net)


def vm(net, name: str):
    return next(h for h in net.hosts if h.name.endswith(name))


def switch(net, name: str):
    return next(s for s in net.switches if s.name.endswith(name))


def state(controller, net) -> tuple:
    """Every binding (MAC, template, VLAN, state, server port) and every switch's flows."""
    status, bindings = controller.rest("GET", "/dynprov/bindings?counters=false",
                                       role="reader")
    assert status == 200, bindings
    flows = {s.name: sorted(lab.run_ofctl("dump-flows", s.name, "--no-stats").splitlines())
             for s in net.switches}
    return (sorted((b["mac"], b["template_id"], b["vlan"], b["state"],
                    b["server"]["name"], b["server"]["port"]) for b in bindings), flows)


def mutating_calls(net):
    web1 = vm(net, "web1").MAC()
    return [
        (NOTIFY, {"event": "shutdown", "mac": web1}),
        (NOTIFY, {"event": "suspended", "mac": web1}),
        (NOTIFY, {"event": "migrating", "mac": web1, "server": switch(net, "s21").name}),
        (NOTIFY, {"event": "template-change", "mac": web1, "template": 254}),
        ("/dynprov/library/reload", None),
    ]


# -- authentication ------------------------------------------------------------------------
def test_strangers_and_readers_change_nothing(dc):
    controller, net, library = dc
    source = library / "templates.yaml"
    good = source.read_text()
    source.write_text(good.replace("vlan: 100", "vlan: 150"))   # a reload would change flows
    try:
        before = state(controller, net)
        anonymous = RestTarget(controller.rest_url)
        forged = RestTarget(controller.rest_url, "x" * 43)
        for path, body in mutating_calls(net):
            for target, expected in ((anonymous, 401), (forged, 401),
                                     (controller.rest_target("reader"), 403)):
                status, answer = call(target, "POST", path, body)
                assert status == expected, (path, body, answer)
                assert set(answer) == {"error"} and answer["error"], answer
        time.sleep(1.0)   # anything that slipped through would be on the switches by now
        assert state(controller, net) == before
        assert controller.rest("GET", "/dynprov/templates/250", role="reader")[1]["vlan"] == 100
    finally:
        source.write_text(good)
    # the same calls with the admin token do change things: the check above can fail
    web1 = vm(net, "web1").MAC()
    status, answer = controller.rest("POST", NOTIFY, {"event": "suspended", "mac": web1})
    assert status == 200, answer
    assert state(controller, net) != before
    assert controller.rest("POST", NOTIFY, {"event": "resumed", "mac": web1})[0] == 200


def test_refusals_are_logged_without_the_token(dc):
    controller, _, _ = dc
    secret = "never-logged-" + "z" * 30
    for _ in range(5):
        status, _ = call(RestTarget(controller.rest_url, secret), "GET", "/dynprov")
        assert status == 401
    assert controller.wait_for_log("REST call refused: client 127.0.0.1: unknown token",
                                   timeout=5)
    log = controller.log()
    assert secret not in log and controller.tokens["admin"] not in log
    assert controller.tokens["reader"] not in log


# -- hostile bodies --------------------------------------------------------------------------
def _raw(controller, head: bytes, body_chunks=(), timeout: float = 20.0) -> bytes:
    """Send a request head, then the body chunks from another thread (they may be
    refused half-way); everything the controller answers until it closes."""
    sock = socket.create_connection(("127.0.0.1", controller.wsapi_port), timeout=timeout)

    def send_body():
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass   # refused: the controller closed the connection

    sender = threading.Thread(target=send_body, daemon=True)
    sock.sendall(head)
    sender.start()
    answer = b""
    try:
        while True:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    sender.join(timeout)
    return answer


def _head(controller, extra: str) -> bytes:
    return (f"POST {NOTIFY} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Authorization: Bearer {controller.tokens['admin']}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


def _status_and_body(answer: bytes) -> tuple:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body)


def test_hostile_bodies_get_a_json_4xx_and_the_controller_keeps_serving(dc):
    controller, net, _ = dc
    before = state(controller, net)
    megabyte = b"x" * (1 << 20)
    nested = b"[" * 30000 + b"]" * 30000
    huge = b'{"event": "template-change", "mac": "00:fa:00:00:00:01", "template": 1e400}'
    junk = bytes(range(256)) * 40
    chunks = [b"%x\r\n%s\r\n" % (len(megabyte[:8192]), megabyte[:8192])] * 40 + [b"0\r\n\r\n"]
    cases = [
        ("60 MB body", _head(controller, f"Content-Length: {60 << 20}\r\n"), [megabyte] * 60,
         413, "request body larger than 65536 bytes"),
        ("320 KB chunked", _head(controller, "Transfer-Encoding: chunked\r\n"), chunks,
         413, "request body larger than 65536 bytes"),
        ("1e400", _head(controller, f"Content-Length: {len(huge)}\r\n"), [huge],
         400, "template: number out of range, got 1e400"),
        ("nested", _head(controller, f"Content-Length: {len(nested)}\r\n"), [nested],
         400, "body: JSON nested more than 32 levels deep"),
        ("junk", _head(controller, f"Content-Length: {len(junk)}\r\n"), [junk],
         400, "body is not UTF-8 text (byte 128)"),
        ("junk request line", b"\x16\x03\x01\x00\xff junk\r\n\r\n", [],
         400, "Bad Request: Bad HTTP/0.9 request type"),
    ]
    for name, head, body, expected, message in cases:
        answer = _raw(controller, head, body)
        if name == "junk request line":   # no HTTP version: HTTP/0.9, a body and no head
            status, text = 400, json.loads(answer)
        else:
            status, text = _status_and_body(answer)
        assert status == expected, (name, answer[:300])
        assert text["error"].startswith(message), (name, text)
        served, switches = controller.rest("GET", "/dynprov/switches", role="reader")
        assert served == 200 and all(s["connected"] for s in switches), name
    assert controller.process.poll() is None
    assert "Traceback" not in controller.log()
    assert state(controller, net) == before


# -- where it listens ----------------------------------------------------------------------
def _listening(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[3] for line in out.splitlines() if f"pid={pid}," in line)


class _ShippedConfigController(lab.ControllerProcess):
    """The launch of the README: the shipped config first, then this test's own
    options (templates, tokens; no OVSDB; nothing about listening)."""

    def __init__(self, workdir: Path, shipped: bool) -> None:
        super().__init__(workdir=workdir)
        self.shipped = shipped
        self.config_file.write_text(f"[dynprov]\ntemplates = {lab.DEFAULT_TEMPLATES}\n"
                                    f"ovsdb =\nrest_tokens = {self.tokens_file}\n"
                                    f"metrics_port = {self.metrics_port}\n")

    def command(self) -> list[str]:
        argv = super().command()
        return [argv[0], "--config-file", str(SHIPPED_CONFIG), *argv[1:]] if self.shipped \
            else argv


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped config", "Ryu defaults"])
def test_listeners_are_on_loopback_with_the_shipped_config(tmp_path, shipped):
    controller = _ShippedConfigController(tmp_path, shipped).start()
    try:
        assert controller.rest("GET", "/dynprov", role="reader")[0] == 200
        listening = _listening(controller.process.pid)
    finally:
        controller.stop()
    metrics = f"127.0.0.1:{controller.metrics_port}"   # loopback by default, either way
    ports = {f":{controller.of_port}", f":{controller.wsapi_port}"}
    assert metrics in listening, listening
    others = [a for a in listening if a != metrics]
    assert {address[address.rindex(":"):] for address in others} == ports, listening
    if shipped:
        assert all(a.startswith("127.0.0.1:") for a in others), listening
    else:   # what the shipped config prevents: Ryu's defaults listen on every address
        assert all(a.startswith(("0.0.0.0:", "*:")) for a in others), listening


# -- the tokens file ---------------------------------------------------------------------
def test_a_missing_tokens_file_is_made_at_first_start(tmp_path):
    path = tmp_path / "etc" / "rest-tokens"
    controller = lab.ControllerProcess(workdir=tmp_path,
                                       extra_options=f"rest_tokens = {path}\n").start()
    try:
        assert controller.wait_for_log(f"no tokens file at {path}: made one with an admin "
                                       "token (mode 0600)", timeout=10), controller.log()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        (line,) = [x for x in path.read_text().splitlines() if not x.startswith("#")]
        role, name, secret = line.split()
        assert role == "admin" and secret not in controller.log()
        status, _ = call(RestTarget(controller.rest_url, secret), "POST",
                         "/dynprov/library/reload")
        assert status == 200
        assert call(controller.rest_target("admin"), "GET", "/dynprov")[0] == 401  # not in it
    finally:
        controller.stop()


def test_a_tokens_file_other_users_can_read_stops_the_controller(tmp_path):
    controller = lab.ControllerProcess(workdir=tmp_path)
    os.chmod(controller.tokens_file, 0o644)
    with pytest.raises(RuntimeError, match=re.escape(
            f"{controller.tokens_file}: tokens file is accessible to other users (mode "
            f"0644); run: chmod 600 {controller.tokens_file}")):
        controller.start(timeout=20)


# -- HTTPS ----------------------------------------------------------------------------------
def test_https_with_a_certificate_made_by_openssl_and_no_plain_http(tmp_path):
    controller = lab.ControllerProcess(workdir=tmp_path, rest_https=True)
    cert = controller.rest_cert      # openssl req -x509 ..., subjectAltName IP:127.0.0.1
    assert "BEGIN CERTIFICATE" in cert.read_text()
    controller.start()
    https = f"https://127.0.0.1:{controller.wsapi_port}"
    plain = f"http://127.0.0.1:{controller.wsapi_port}"
    try:
        assert controller.rest_url == https
        assert controller.rest("GET", "/dynprov/switches", role="reader") == (200, [])
        assert call(RestTarget(https, None, str(cert)), "GET", "/dynprov")[0] == 401
        with pytest.raises(ControllerError, match="closed the connection without answering"
                                                  ".*use https://"):
            call(RestTarget(plain, controller.tokens["reader"]), "GET", "/dynprov")
        with pytest.raises(ControllerError, match="cannot verify the TLS certificate"):
            call(RestTarget(https, controller.tokens["reader"]), "GET", "/dynprov")
        listing = subprocess.run(
            [sys.executable, "-m", "ryu_apps.cli.main", "bindings",
             *controller.rest_cli_args("reader")],   # --controller https://... --ca-cert
            capture_output=True, text=True, cwd=str(lab.REPO_ROOT), timeout=60)
        assert listing.returncode == 0, listing.stderr
        assert "(no VM is provisioned)" in listing.stdout
        assert controller.wait_for_log("TLS handshake failed", timeout=5)
    finally:
        controller.stop()
    assert "Traceback" not in controller.log()
    assert f"REST API on https://127.0.0.1:{controller.wsapi_port}" in controller.log()
