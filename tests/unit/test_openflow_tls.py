"""OpenFlow TLS: Ryu's StreamServer, as fixed by the start-up hook, serves every switch.

The server is created with the keyword arguments Ryu 4.34's
``OpenFlowController.server_loop`` passes with ``--ctl-privkey/--ctl-cert/--ca-certs``
(its own SSLContext, certfile, keyfile, cert_reqs, ca_certs). Clients are green
threads on loopback: no root needed.
"""

from __future__ import annotations

import logging

import eventlet
import pytest
from eventlet.green import socket as green_socket
from eventlet.green import ssl as green_ssl
from ryu.lib import hub

from ryu_apps.tls import openflow_tls
from ryu_apps.tls import pki

OPENFLOW_HELLO = bytes.fromhex("0400000800000001")


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    return pki.init(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    return pki.init(tmp_path_factory.mktemp("foreign"))


class Server:
    """A hub.StreamServer on a free loopback port whose handler names the peer."""

    def __init__(self, **ssl_args) -> None:
        self.peers: list[str] = []
        self.server = hub.StreamServer(("127.0.0.1", 0), self._handle, **ssl_args)
        self.port = self.server.server.getsockname()[1]
        self.thread = eventlet.spawn(self.server.serve_forever)

    def _handle(self, sock, addr) -> None:
        try:
            subject = dict(item for rdn in (sock.getpeercert() or {}).get("subject", ())
                           for item in rdn)
            name = subject.get("commonName", "unverified")
            self.peers.append(name)
            sock.sendall(b"hello " + name.encode())
        finally:
            sock.close()

    def close(self) -> None:
        self.thread.kill()
        self.server.server.close()


def ryu_ssl_args(ours: pki.Pki, ca_certs: bool = True) -> dict:
    """What Ryu's server_loop passes to StreamServer (under monkey-patching: green)."""
    context = green_ssl.SSLContext(green_ssl.PROTOCOL_TLS_SERVER)  # Ryu: PROTOCOL_TLS
    context.options |= green_ssl.OP_NO_SSLv3 | green_ssl.OP_NO_SSLv2
    args = {"ssl_ctx": context, "keyfile": str(ours.key("controller")),
            "certfile": str(ours.cert("controller"))}
    if ca_certs:
        args.update(cert_reqs=green_ssl.CERT_REQUIRED, ca_certs=str(ours.switch_ca))
    return args


@pytest.fixture
def server(ours):
    running = Server(**ryu_ssl_args(ours))
    yield running
    running.close()


def switch(port: int, trusts, cert=None, key=None) -> bytes:
    """A TLS client like a switch; what the controller sent before closing (b'' if nothing)."""
    context = green_ssl.SSLContext(green_ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(trusts))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    with green_socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw) as tls:
                tls.settimeout(5)
                return _read_all(tls)
        except (green_ssl.SSLError, OSError):
            return b""


def _read_all(sock) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except (green_ssl.SSLError, OSError):
            return data
        if not chunk:
            return data
        data += chunk


def run(function, *args, **kwargs):
    return eventlet.spawn(function, *args, **kwargs).wait()


def test_every_switch_completes_the_handshake_not_only_the_first(server, ours, tmp_path):
    more = pki.init(ours.directory, switches=("switch", "hv2", "hv3"))
    answers = [run(switch, server.port, ours.controller_ca, more.cert(name), more.key(name))
               for name in ("switch", "hv2", "hv3", "switch", "hv2")]
    assert answers == [b"hello switch", b"hello hv2", b"hello hv3", b"hello switch",
                       b"hello hv2"]
    assert server.peers == ["switch", "hv2", "hv3", "switch", "hv2"]


def test_concurrent_switches_all_connect(server, ours):
    threads = [eventlet.spawn(switch, server.port, ours.controller_ca, ours.cert("switch"),
                              ours.key("switch")) for _ in range(8)]
    assert [t.wait() for t in threads] == [b"hello switch"] * 8


def test_refused_peers_get_nothing_and_the_next_switch_still_connects(server, ours, foreign,
                                                                      caplog):
    caplog.set_level(logging.INFO, logger=openflow_tls.LOG.name)
    no_certificate = run(switch, server.port, ours.controller_ca)
    other_ca = run(switch, server.port, ours.controller_ca, foreign.cert("switch"),
                   foreign.key("switch"))
    # a controller's certificate is signed by the other CA of our own PKI: not a switch
    controller_as_switch = run(switch, server.port, ours.controller_ca,
                               ours.cert("controller"), ours.key("controller"))
    assert (no_certificate, other_ca, controller_as_switch) == (b"", b"", b"")
    assert server.peers == []
    assert run(switch, server.port, ours.controller_ca, ours.cert("switch"),
               ours.key("switch")) == b"hello switch"
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) >= 2, caplog.text
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in refusals[0]
    assert "certificate verify failed" in refusals[1]


def test_the_switch_refuses_a_controller_of_another_pki(ours, foreign):
    running = Server(**ryu_ssl_args(foreign))
    try:
        assert run(switch, running.port, ours.controller_ca, ours.cert("switch"),
                   ours.key("switch")) == b""
    finally:
        running.close()
    assert running.peers == []


def test_plain_openflow_to_the_tls_port_gets_no_openflow_back(server):
    def plain_hello() -> bytes:
        with green_socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(OPENFLOW_HELLO)
            return _read_all(raw)

    answer = run(plain_hello)
    assert not answer.startswith(b"\x04"), answer   # at most a TLS alert (0x15), then EOF
    assert server.peers == []


def test_a_silent_peer_is_dropped_after_the_handshake_timeout(server, monkeypatch, caplog):
    monkeypatch.setattr(openflow_tls, "HANDSHAKE_TIMEOUT", 0.2)

    def silent() -> str:
        with green_socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            try:
                return "closed" if raw.recv(16) == b"" else "answered"
            except TimeoutError:
                return "still open after 10 s"

    assert run(silent) == "closed"
    assert "no TLS handshake within 0.2 s" in caplog.text


def test_without_ca_certs_switches_are_not_verified_and_that_is_logged(ours, foreign, caplog):
    running = Server(**ryu_ssl_args(ours, ca_certs=False))
    try:
        assert run(switch, running.port, ours.controller_ca, foreign.cert("switch"),
                   foreign.key("switch")) == b"hello unverified"
    finally:
        running.close()
    assert "without --ca-certs: switches are not verified" in caplog.text


def test_unreadable_controller_files_are_named(ours, tmp_path):
    args = ryu_ssl_args(ours)
    args["certfile"] = str(tmp_path / "missing-cert.pem")
    with pytest.raises(openflow_tls.TlsSetupError,
                       match=r"cannot load --ctl-cert .*missing-cert.pem with --ctl-privkey"):
        openflow_tls.server_context(args)
    args = ryu_ssl_args(ours)
    args["ca_certs"] = str(ours.key("switch"))   # a key is not a CA certificate
    with pytest.raises(openflow_tls.TlsSetupError, match=r"cannot load --ca-certs .*switch-"):
        openflow_tls.server_context(args)


class _Refusing:
    """A context whose handshakes all fail the same way."""

    def wrap_socket(self, sock, server_side, do_handshake_on_connect):
        raise green_ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")


class _Socket:
    closed = False

    def settimeout(self, value):
        pass

    def close(self):
        self.closed = True


def test_the_same_refusal_is_logged_once_per_interval(caplog):
    now = [100.0]
    acceptor = openflow_tls.TlsAcceptor(_Refusing(), handle=None, clock=lambda: now[0])
    sockets = [_Socket() for _ in range(4)]
    acceptor(sockets[0], ("192.0.2.1", 1000))
    acceptor(sockets[1], ("192.0.2.1", 1001))
    acceptor(sockets[2], ("192.0.2.2", 1000))
    now[0] += openflow_tls.LOG_INTERVAL
    acceptor(sockets[3], ("192.0.2.1", 1002))
    lines = [r.getMessage() for r in caplog.records]
    assert all(s.closed for s in sockets) and acceptor.refused == 4
    assert [line.split(":")[1].strip() + ":" + line.split(":")[2].split()[0]
            for line in lines] == ["refused 192.0.2.1:1000", "refused 192.0.2.2:1000",
                                   "refused 192.0.2.1:1002"]
    assert "(4 refused so far)" in lines[-1]
