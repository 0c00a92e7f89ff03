"""dynprov's own server for the REST API: where it listens, HTTPS, the guard.

Ryu 4.34's ``ryu-manager`` serves a ``WSGIApplication`` context on
``--wsapi-host``/``--wsapi-port`` with no TLS option and no way to put anything
in front of the application. The app declares its ``wsgi`` context as
:class:`RestApplication` instead; ``ryu-manager`` starts its server only for
a context of exactly ``WSGIApplication``, so it leaves this one alone and
:func:`start` serves it: on the same ``wsapi_host``/``wsapi_port`` options,
behind :class:`~ryu_apps.rest.guard.Guard` (tokens, body cap, JSON errors), with
eventlet's WSGI server (what Ryu's uses) on a listening socket wrapped in TLS
when ``[dynprov] rest_cert`` and ``rest_key`` are set (then it speaks only
HTTPS). Options, in ``[dynprov]``:

- ``rest_tokens``: the tokens file (``ryu_apps.rest.auth``); created with one
  admin token at first start if it does not exist; empty: every call is refused.
- ``rest_cert``, ``rest_key``: PEM certificate (chain) and private key for HTTPS.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import time
from http import HTTPStatus
from pathlib import Path
from typing import Optional

import eventlet
import eventlet.wsgi
from eventlet.green import ssl as green_ssl
from ryu_apps.app.framework import WSGIApplication, cfg, hub

from ryu_apps.rest.auth import (
    RefusalLog,
    TokenFileError,
    Tokens,
    create_tokens_file,
    load_tokens,
)
from ryu_apps.rest import live_view
from ryu_apps.rest.guard import CLOSE_KEY, Guard

CONF = cfg.CONF
CONF.register_opts([
    cfg.StrOpt("rest_tokens", default="",
               help="REST API tokens file (lines 'ROLE NAME TOKEN', roles reader and "
                    "admin, not accessible to other users); made with one admin token "
                    "if missing; empty: every REST call is refused."),
    cfg.StrOpt("rest_cert", default="",
               help="PEM certificate (chain) of the REST API; with rest_key, the API "
                    "speaks only HTTPS."),
    cfg.StrOpt("rest_key", default="",
               help="PEM private key of rest_cert."),
], group="dynprov")

LOG = logging.getLogger("dynprov.rest")
#: Seconds a client connection may stay silent in the middle of a request.
SOCKET_TIMEOUT = 30.0
#: Seconds an idle kept-alive connection waits for its next request.
KEEPALIVE = 5.0
#: Client connections served at once.
MAX_CONNECTIONS = 256


class RestApplication(WSGIApplication):
    """Ryu's WSGI application (routes, controllers), served by :func:`start`.

    Being a subclass keeps ``ryu-manager`` from starting a server of its own
    for it (it looks for a context whose class is exactly ``WSGIApplication``).
    """


class RestServerError(Exception):
    """The REST server cannot start; the message names the option and the problem."""


def start(app, wsgi: WSGIApplication) -> None:
    """Listen on ``wsapi_host:wsapi_port`` and serve ``wsgi`` behind the guard.

    Raises SystemExit (the controller does not start) on a configuration error.
    """
    if type(wsgi) is WSGIApplication:  # noqa: E721 (the exact class is the point)
        raise SystemExit("dynprov: cannot start: the app's 'wsgi' context must be "
                         "ryu_apps.rest.server.RestApplication (ryu-manager would serve a "
                         "plain WSGIApplication itself, without authentication)")
    options = CONF.dynprov
    try:
        tokens = tokens_in_force(options.rest_tokens, LOG)
        context = tls_context(options.rest_cert, options.rest_key)
        listener = listen(CONF.wsapi_host, CONF.wsapi_port, context)
    except (RestServerError, TokenFileError) as error:
        raise SystemExit(f"dynprov: cannot start: {error}") from None
    scheme = "https" if context else "http"
    LOG.info("REST API on %s://%s:%d, %s", scheme, CONF.wsapi_host, CONF.wsapi_port,
             "no tokens: every call refused" if tokens is None else
             ", ".join(f"{n} {role} token{'s' if n != 1 else ''}"
                       for role, n in tokens.roles().items()))
    if context is None and not _loopback(CONF.wsapi_host):
        LOG.warning("REST API listens on %s without HTTPS: tokens cross the network in "
                    "clear; set [dynprov] rest_cert and rest_key, or wsapi_host = "
                    "127.0.0.1", CONF.wsapi_host)
    guard = live_view.public_page(Guard(wsgi, tokens, LOG))   # the live view's page: no data
    protocol = _protocol(RefusalLog(LOG.warning, time.monotonic))
    app.rest_server_thread = hub.spawn(
        eventlet.wsgi.server, listener, guard, log=LOG, protocol=protocol,
        socket_timeout=SOCKET_TIMEOUT, keepalive=KEEPALIVE, max_size=MAX_CONNECTIONS,
        debug=False)


def tokens_in_force(path_text: str, logger: logging.Logger) -> Optional[Tokens]:
    """The tokens of ``[dynprov] rest_tokens``; the file is made if it does not exist.

    None when the option is empty (every call is then refused).
    """
    if not path_text:
        logger.warning("[dynprov] rest_tokens is not set: every REST call is refused")
        return None
    path = Path(path_text)
    if not path.exists():
        create_tokens_file(path)
        logger.warning("REST API: no tokens file at %s: made one with an admin token "
                       "(mode 0600); read the token there", path.resolve())
    return load_tokens(path)


def tls_context(cert: str, key: str) -> Optional[ssl.SSLContext]:
    """A server TLS context (TLS 1.2 or later) for ``cert``/``key``; None without them."""
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "rest_cert" if not cert else "rest_key"
        raise RestServerError(f"[dynprov] {missing} is not set: HTTPS needs both "
                              "rest_cert and rest_key")
    context = green_ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as error:
        raise RestServerError(f"[dynprov] rest_cert/rest_key: {error.filename}: no such "
                              "file") from None
    except (ssl.SSLError, OSError) as error:
        raise RestServerError(f"[dynprov] rest_cert = {cert}, rest_key = {key}: cannot "
                              f"load the certificate and key: {error}") from None
    return context


def listen(host: str, port: int, context: Optional[ssl.SSLContext]):
    """A listening (green) socket on ``host:port``, wrapped in TLS with ``context``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = eventlet.listen((host, port), family=family)
    except OSError as error:
        raise RestServerError(f"REST API cannot listen on {host}:{port} (wsapi_host, "
                              f"wsapi_port): {error.strerror or error}") from None
    if context is None:
        return listener
    return context.wrap_socket(listener, server_side=True)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _send_json_error(handler, code: int, message: Optional[str]) -> None:
    """Answer ``code`` on ``handler``'s connection with a JSON error body, then close."""
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "error"
    data = (json.dumps({"error": f"{phrase}: {message}" if message else phrase},
                       indent=2) + "\n").encode()
    handler.log_error("code %d, message %s", code, message)
    handler.send_response(code, phrase)
    handler.send_header("Connection", "close")
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD" and code >= 200 and code not in (204, 304):
        handler.wfile.write(data)


def _protocol(tls_refusals: RefusalLog):
    """eventlet's HttpProtocol that lets the guard close the connection after its
    answer, and completes the TLS handshake itself (a failed one is logged, rate
    limited, instead of a traceback)."""

    class _Protocol(eventlet.wsgi.HttpProtocol):
        def get_environ(self):
            environ = super().get_environ()
            environ[CLOSE_KEY] = self._close_after_reply
            return environ

        def _close_after_reply(self) -> None:
            self.close_connection = 1

        def handle(self):
            if hasattr(self.connection, "do_handshake"):
                try:
                    self.connection.do_handshake()
                except (ssl.SSLError, OSError) as error:
                    reason = getattr(error, "reason", None) or type(error).__name__
                    tls_refusals.refused(str(self.client_address[0]),
                                         f"TLS handshake failed ({reason})")
                    self.close_connection = 1
                    return
            super().handle()

        def send_error(self, code, message=None, explain=None):
            """An unparsable request line or header: the error in JSON, not HTML."""
            _send_json_error(self, code, message)

    return _Protocol
