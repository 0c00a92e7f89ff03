"""The REST API from the client side: which controller, which token, which CA.

Every ``dynprov`` command that talks to a controller (``bindings``, ``flows``,
``notify``) takes ``--controller URL``, ``--token-file FILE``, ``--ca-cert
FILE`` and ``--config-file FILE``. What is not given comes from the
environment, then from the controller's config file, then the defaults:

===== ================== ========================= ===================================
what  option             environment               config file
===== ================== ========================= ===================================
URL   ``--controller``   ``DYNPROV_CONTROLLER``    ``wsapi_host``/``wsapi_port``,
                                                   https when ``rest_cert`` is set
token ``--token-file``   ``DYNPROV_TOKEN``, then   ``[dynprov] rest_tokens``
                         ``DYNPROV_TOKEN_FILE``
CA    ``--ca-cert``      ``DYNPROV_CA_CERT``       ``[dynprov] rest_cert``
                                                   (a self-signed certificate)
===== ================== ========================= ===================================

The config file is ``--config-file``, ``DYNPROV_CONFIG``, else the first of
``/etc/dynprov/dynprov.conf`` and ``etc/dynprov.conf`` (the checkout's) that
exists. A token file holds either one bare token or the controller's lines
``ROLE NAME TOKEN``; from the latter the least role that suffices is taken
(``reader`` for reading, ``admin`` for notifications).
"""

from __future__ import annotations

import argparse
import configparser
import http.client
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple

DEFAULT_CONTROLLER = "http://127.0.0.1:8080"
CONFIG_CANDIDATES = (Path("/etc/dynprov/dynprov.conf"), Path("etc/dynprov.conf"))
READER, ADMIN = "reader", "admin"
TOKEN_HELP = ("give one with --token-file FILE, DYNPROV_TOKEN or DYNPROV_TOKEN_FILE (the "
              "controller's tokens file is [dynprov] rest_tokens)")


class ControllerError(Exception):
    """The controller could not be reached or did not answer usefully."""


@dataclass(frozen=True)
class RestTarget:
    """A controller's REST API: base URL (no trailing slash), bearer token, CA file."""

    url: str
    token: Optional[str] = None
    ca_cert: Optional[str] = None

    def headers(self) -> dict:
        """The Authorization header, when there is a token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


# -- calls -------------------------------------------------------------------------
def call(target: RestTarget, method: str, path: str, body: Any = None,
         timeout: float = 15.0) -> Tuple[int, Any]:
    """(HTTP status, decoded JSON answer) of one request.

    Raises ControllerError when the controller cannot be reached (the message
    says why and what to try) or its answer is not JSON.
    """
    data = None if body is None else json.dumps(body).encode()
    headers = dict(target.headers())
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(target.url + path, data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout,
                                    context=_tls_context(target)) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise ControllerError(unreachable(target, error)) from None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        raise ControllerError(f"{target.url}{path} did not answer JSON: is {target.url} a "
                              "dynprov controller's REST API (ryu-manager "
                              "--wsapi-port)?") from None


def fetch_json(target: RestTarget, path: str, timeout: float = 15.0) -> Any:
    """GET ``path``: the JSON answer of a 200; ControllerError for anything else."""
    status, answer = call(target, "GET", path, timeout=timeout)
    if status != 200:
        raise ControllerError(refusal(target, status, path, answer))
    return answer


def refusal(target: RestTarget, status: int, path: str, answer: Any) -> str:
    """What an answer other than 200 means, and what to do about it."""
    error = answer.get("error", answer) if isinstance(answer, dict) else answer
    if status == 401 and target.token is None:
        return (f"the dynprov controller at {target.url} needs a token (401: {error}); "
                f"{TOKEN_HELP}")
    if status == 401:
        return (f"the dynprov controller at {target.url} refused the token (401: {error}); "
                f"{TOKEN_HELP}")
    if status == 403:
        return (f"the dynprov controller at {target.url} refused the call (403: {error}); "
                "use an admin token")
    return f"the dynprov controller at {target.url} answered {status} for {path}: {error}"


def unreachable(target: RestTarget, error: BaseException) -> str:
    """Why a controller could not be reached, with the likely fix."""
    reason = getattr(error, "reason", None) or error
    https = target.url.startswith("https:")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (f"cannot verify the TLS certificate of the dynprov controller at "
                f"{target.url}: {reason.verify_message}; give its certificate or CA with "
                "--ca-cert FILE or DYNPROV_CA_CERT")
    if isinstance(reason, ssl.SSLError) and https:
        return (f"TLS with the dynprov controller at {target.url} failed: {reason}; if it "
                "serves plain HTTP, use http://")
    if isinstance(reason, (http.client.RemoteDisconnected, ConnectionResetError)) \
            and not https:
        return (f"the dynprov controller at {target.url} closed the connection without "
                f"answering ({reason}); if it serves HTTPS ([dynprov] rest_cert), use "
                "https://")
    text = f"cannot reach the dynprov controller at {target.url}: {reason}"
    if isinstance(reason, ConnectionRefusedError):
        text += " (is it running, on this --wsapi-host and --wsapi-port?)"
    return text


def _tls_context(target: RestTarget) -> Optional[ssl.SSLContext]:
    if not target.url.startswith("https:"):
        return None
    try:
        return ssl.create_default_context(cafile=target.ca_cert)
    except (OSError, ssl.SSLError) as error:
        raise ControllerError(f"cannot use the CA certificate {target.ca_cert}: "
                              f"{getattr(error, 'strerror', None) or error}") from None


# -- which controller, which token ---------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, default_url: Optional[str]) -> None:
    """``--controller``, ``--token-file``, ``--ca-cert``, ``--config-file``."""
    parser.add_argument("--controller", metavar="URL", type=controller_url, default=default_url,
                        help=f"the controller's REST API (default: DYNPROV_CONTROLLER, the "
                             f"config file's wsapi_host/wsapi_port, else {DEFAULT_CONTROLLER})")
    parser.add_argument("--token-file", metavar="FILE",
                        help="file with the bearer token (default: DYNPROV_TOKEN, "
                             "DYNPROV_TOKEN_FILE, the config file's [dynprov] rest_tokens)")
    parser.add_argument("--ca-cert", metavar="FILE",
                        help="CA (or self-signed) certificate to verify an https:// "
                             "controller (default: DYNPROV_CA_CERT, the config file's "
                             "[dynprov] rest_cert)")
    parser.add_argument("--config-file", metavar="FILE",
                        help="the controller's config file (default: DYNPROV_CONFIG, "
                             "/etc/dynprov/dynprov.conf, etc/dynprov.conf)")


def controller_url(text: str) -> str:
    """argparse type: an http(s) URL without a trailing slash."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a controller URL: expected http://HOST:PORT or "
            f"https://HOST:PORT, like {DEFAULT_CONTROLLER}")
    return text.rstrip("/")


def target_from_args(args: argparse.Namespace, role: str,
                     environ: Mapping[str, str] = os.environ) -> RestTarget:
    """The controller, token and CA the arguments, environment and config file name.

    Raises ControllerError for a token or config file that cannot be used.
    """
    config = _ControllerConfig.find(getattr(args, "config_file", None), environ)
    url = args.controller or environ.get("DYNPROV_CONTROLLER") or config.url() \
        or DEFAULT_CONTROLLER
    url = controller_url_or_error(url)
    token = _token(args, role, environ, config)
    ca_cert = getattr(args, "ca_cert", None) or environ.get("DYNPROV_CA_CERT") or \
        (config.get("dynprov", "rest_cert") if url.startswith("https:") else None)
    return RestTarget(url, token, ca_cert or None)


def controller_url_or_error(text: str) -> str:
    try:
        return controller_url(text)
    except argparse.ArgumentTypeError as error:
        raise ControllerError(str(error)) from None


def _token(args, role: str, environ: Mapping[str, str], config: "_ControllerConfig"
           ) -> Optional[str]:
    if getattr(args, "token_file", None):
        return read_token_file(Path(args.token_file), role)
    if environ.get("DYNPROV_TOKEN"):
        return environ["DYNPROV_TOKEN"].strip()
    if environ.get("DYNPROV_TOKEN_FILE"):
        return read_token_file(Path(environ["DYNPROV_TOKEN_FILE"]), role)
    tokens = config.get("dynprov", "rest_tokens")
    if tokens and Path(tokens).exists():
        return read_token_file(Path(tokens), role, source=f"{config.path}: rest_tokens")
    return None


def read_token_file(path: Path, role: str, source: Optional[str] = None) -> str:
    """A token from a file: its one bare token, or the least role that does ``role``."""
    where = f"{source} = {path}" if source else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ControllerError(f"cannot read the token file {where}: "
                              f"{getattr(error, 'strerror', None) or error}") from None
    lines = [line.split() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) == 1 and len(lines[0]) == 1:
        return lines[0][0]
    roles = [ADMIN] if role == ADMIN else [READER, ADMIN]
    for wanted in roles:
        for fields in lines:
            if len(fields) == 3 and fields[0].lower() == wanted:
                return fields[2]
    raise ControllerError(f"no {' or '.join(roles)} token in {where} (expected one bare "
                          "token, or lines 'ROLE NAME TOKEN')")


class _ControllerConfig:
    """The few options a client needs from the controller's config file."""

    def __init__(self, path: Optional[Path], parser: configparser.ConfigParser) -> None:
        self.path, self.parser = path, parser

    @classmethod
    def find(cls, explicit: Optional[str], environ: Mapping[str, str]) -> "_ControllerConfig":
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        named = explicit or environ.get("DYNPROV_CONFIG")
        candidates: Sequence[Path] = [Path(named)] if named else \
            [p for p in CONFIG_CANDIDATES if p.is_file()][:1]
        for path in candidates:
            try:
                with open(path, encoding="utf-8") as config:
                    parser.read_file(config)
            except (OSError, UnicodeDecodeError, configparser.Error) as error:
                raise ControllerError(f"cannot read the config file {path}: "
                                      f"{getattr(error, 'strerror', None) or error}") from None
            return cls(path, parser)
        return cls(None, parser)

    def get(self, section: str, option: str) -> Optional[str]:
        value = self.parser.get(section, option, fallback=None)
        return value.strip() if value else None

    def url(self) -> Optional[str]:
        """The REST API the config file describes, if it says anything about it."""
        host = self.get("DEFAULT", "wsapi_host")
        port = self.get("DEFAULT", "wsapi_port")
        cert = self.get("dynprov", "rest_cert")
        if not (host or port or cert):
            return None
        if not host or host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if cert else 'http'}://{host}:{port or 8080}"
