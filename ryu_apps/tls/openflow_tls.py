"""OpenFlow over TLS for every switch: Ryu 4.34's one-shot SSL context, fixed.

With ``--ctl-privkey/--ctl-cert/--ca-certs``, Ryu 4.34's ``hub.StreamServer``
builds its TLS settings lazily and *pops* them from a shared dict on the first
connection: the first switch gets the controller's certificate, every later
one a context with none (``NO_SHARED_CIPHER``). :func:`install` (called by the
start-up hook, ``dynprov_ryu_compat``, when ``ryu.lib.hub`` is imported)
replaces that: the context is built once, when the server is created, and
every accepted connection is wrapped with it by :class:`TlsAcceptor`, which
also bounds the handshake (time, and how many at once) and turns a refused
peer into one log line instead of a traceback.

Ryu listens for TLS *or* plain TCP, never both: with ``--ctl-privkey`` and
``--ctl-cert`` set it serves TLS on ``--ofp-ssl-listen-port`` only (default
6653) and ``--ofp-tcp-listen-port`` is ignored. With ``--ca-certs`` every
switch must present a certificate signed by that CA (mutual TLS); without it
switches are not verified, which is logged as a warning.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
import time
from typing import Callable, Dict, Optional, Tuple

LOG = logging.getLogger("dynprov.openflow_tls")
#: Longest a peer may take to complete the TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: Handshakes in progress at once; more connections are closed at once.
MAX_HANDSHAKES = 256
#: The same refusal (peer address, reason) is logged at most once per this many seconds.
LOG_INTERVAL = 10.0


class TlsSetupError(RuntimeError):
    """The controller's TLS files could not be loaded (the message names them)."""


def _text(ssl_args: Dict[str, object], key: str) -> Optional[str]:
    """A path argument of Ryu's StreamServer, or None."""
    value = ssl_args.get(key)
    return value if isinstance(value, str) else None


def server_context(ssl_args: Dict[str, object]) -> ssl.SSLContext:
    """One server context from Ryu's StreamServer keyword arguments.

    ``ssl_ctx`` (Ryu's own context, if given), ``certfile``, ``keyfile``,
    ``ca_certs`` and ``cert_reqs``; TLS 1.2 at least.
    """
    certfile, keyfile = _text(ssl_args, "certfile"), _text(ssl_args, "keyfile")
    ca_certs = _text(ssl_args, "ca_certs")
    given = ssl_args.get("ssl_ctx")
    context = given if isinstance(given, ssl.SSLContext) else \
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is None:
        raise TlsSetupError("OpenFlow TLS: --ctl-cert (and --ctl-privkey) must be given")
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        raise TlsSetupError(f"OpenFlow TLS: cannot load --ctl-cert {certfile} with "
                            f"--ctl-privkey {keyfile}: {_reason(error)}") from None
    if ca_certs:
        try:
            context.load_verify_locations(ca_certs)
        except (OSError, ssl.SSLError) as error:
            raise TlsSetupError(f"OpenFlow TLS: cannot load --ca-certs {ca_certs}: "
                                f"{_reason(error)}") from None
        cert_reqs = ssl_args.get("cert_reqs", ssl.CERT_REQUIRED)
        context.verify_mode = ssl.VerifyMode(cert_reqs) if isinstance(cert_reqs, int) \
            else ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


class TlsAcceptor:
    """``handle(sock, addr)`` for a StreamServer: handshake with one shared context.

    Runs in the green thread the server spawned for the connection. A peer
    that fails the handshake (no certificate, another CA's, not TLS at all,
    too slow) is closed and logged, at most once per LOG_INTERVAL for the same
    address and reason; the server goes on serving the others.
    """

    def __init__(self, context: ssl.SSLContext, handle: Callable,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.context = context
        self.handle = handle
        self.in_progress = 0
        self.refused = 0
        self._clock = clock
        self._logged: Dict[Tuple[str, str], float] = {}

    def __call__(self, sock, addr) -> None:
        if self.in_progress >= MAX_HANDSHAKES:
            self._refuse(sock, addr, f"more than {MAX_HANDSHAKES} TLS handshakes in progress")
            return
        self.in_progress += 1
        tls = None
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            # The wrapped socket owns the descriptor: close it, not ``sock``, on failure.
            tls = self.context.wrap_socket(sock, server_side=True,
                                           do_handshake_on_connect=False)
            tls.do_handshake()
            tls.settimeout(None)
        except (OSError, ssl.SSLError, ValueError) as error:
            self._refuse(tls if tls is not None else sock, addr, _reason(error))
            return
        finally:
            self.in_progress -= 1
        LOG.info("OpenFlow TLS: %s verified: %s", _peer(addr), _subject(tls))
        self.handle(tls, addr)

    def _refuse(self, sock, addr, reason: str) -> None:
        self.refused += 1
        try:
            sock.close()
        except OSError:
            pass
        key = (_peer(addr).rsplit(":", 1)[0], reason)
        now = self._clock()
        if now - self._logged.get(key, -LOG_INTERVAL) >= LOG_INTERVAL:
            self._logged[key] = now
            if len(self._logged) > 4096:   # a scan from many addresses: forget the oldest
                self._logged = dict(sorted(self._logged.items(), key=lambda kv: kv[1])[-1024:])
            # A peer that hung up (a port probe, a switch going away) is not worth a warning.
            level = logging.INFO if reason == CLOSED else logging.WARNING
            LOG.log(level, "OpenFlow TLS: refused %s: %s (%d refused so far)",
                    _peer(addr), reason, self.refused)


#: What a peer that hung up during the handshake is refused for (logged at INFO only).
CLOSED = "closed the connection during the TLS handshake"


def _reason(error: BaseException) -> str:
    if isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError,
                          BrokenPipeError)) or "EOF" in str(error):
        return CLOSED
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and getattr(error, "reason", None):
        return error.reason
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return f"no TLS handshake within {HANDSHAKE_TIMEOUT:g} s"
    return str(error) or type(error).__name__


def _peer(addr) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


def _subject(tls) -> str:
    try:
        fields = dict(item for rdn in tls.getpeercert().get("subject", ()) for item in rdn)
    except (AttributeError, ValueError, TypeError):
        return "no certificate (switches are not verified: no --ca-certs)"
    return ", ".join(f"{k}={fields[k]}" for k in ("organizationName", "organizationalUnitName",
                                                   "commonName") if k in fields) \
        or "certificate without a subject"


def install(hub_module) -> None:
    """Make ``hub_module.StreamServer`` build its TLS context once (idempotent)."""
    server_class = getattr(hub_module, "StreamServer", None)
    if server_class is None or getattr(server_class, "_dynprov_tls", False):
        return
    plain_init = server_class.__init__

    def __init__(self, listen_info, handle=None, backlog=None, spawn="default", **ssl_args):
        plain_init(self, listen_info, handle, backlog, spawn)
        if ssl_args:
            try:
                context = server_context(ssl_args)
            except TlsSetupError as error:
                self.server.close()
                _fail(str(error))
            if context.verify_mode == ssl.CERT_NONE:
                LOG.warning("OpenFlow TLS on %s without --ca-certs: switches are not "
                            "verified", listen_info)
            self.handle = TlsAcceptor(context, handle)

    server_class.__init__ = __init__
    server_class._dynprov_tls = True


def _fail(message: str) -> None:
    """A controller that cannot serve OpenFlow at all stops, saying why.

    Ryu creates the server in a green thread whose exceptions are only
    logged, which would leave a process running with no OpenFlow listener.
    """
    LOG.critical("%s; stopping", message)
    print(f"dynprov: cannot start: {message}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(2)


def listen_port(conf) -> int:
    """The port ryu-manager serves OpenFlow on (TLS when --ctl-privkey and --ctl-cert are set).

    ``--ofp-tcp-listen-port`` is ignored with TLS on; with neither port given Ryu uses 6653.
    """
    tls = conf.ctl_privkey is not None and conf.ctl_cert is not None
    return (conf.ofp_ssl_listen_port if tls else conf.ofp_tcp_listen_port) or 6653
