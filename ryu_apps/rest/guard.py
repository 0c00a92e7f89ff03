"""The WSGI layer in front of the REST API: body cap, bearer tokens, JSON errors.

Every request goes through :class:`Guard` before Ryu's router sees it:

1. the body is read here, at most :data:`MAX_BODY` bytes (a larger
   ``Content-Length`` is not read at all; a chunked body is cut at the cap), so
   a handler only ever sees a complete, bounded body;
2. the bearer token is checked: 401 with ``WWW-Authenticate: Bearer`` when it
   is missing or unknown, 403 when its role is too low for the method
   (GET needs ``reader``, anything else ``admin``); refusals are logged once
   per (client, reason) and never with the token;
3. 413 for a body over the cap, 400 for one that could not be read;
4. 404 in JSON for a path no route serves;
5. any exception is a JSON 500 ``internal error, see the controller log``,
   its traceback logged once.

After a refusal whose body was not read to its end, the connection is closed
(the server puts a ``dynprov.close_connection`` callable in the environ), so
nothing of an unread body is ever parsed as a request.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, Optional

from ryu_apps.rest.auth import RefusalLog, Tokens, bearer_token, required_role

#: Largest request body accepted (bytes).
MAX_BODY = 64 * 1024
#: A refused body up to this size is still read (and dropped) so the client,
#: still sending, reads the answer instead of a reset connection.
DRAIN_LIMIT = 1024 * 1024
INTERNAL_ERROR = "internal error, see the controller log"
CLOSE_KEY = "dynprov.close_connection"
REALM = 'Bearer realm="dynprov"'

StartResponse = Callable[..., Any]


@dataclass
class _Body:
    """What was read of a request body."""

    data: bytes = b""
    complete: bool = True      # read to its end (nothing left on the connection)
    too_large: bool = False
    error: Optional[str] = None


class _Refusal(Exception):
    """An answer given by the guard itself."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None,
                 log_reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = headers or {}
        self.log_reason = log_reason


class Guard:
    """WSGI middleware around Ryu's WSGIApplication (``app``)."""

    def __init__(self, app, tokens: Optional[Tokens], logger: logging.Logger,
                 tokens_source: str = "[dynprov] rest_tokens",
                 clock: Callable[[], float] = time.monotonic,
                 max_body: int = MAX_BODY) -> None:
        self.app, self.tokens, self.logger = app, tokens, logger
        self.tokens_source = tokens_source
        self.max_body = max_body
        self.refusals = RefusalLog(logger.warning, clock)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self._serve(environ, start_response)
        except _Refusal as refusal:
            return self._refuse(environ, start_response, refusal)
        except Exception:  # a bug: one traceback in the log, none to the client
            self.logger.exception("REST %s %s failed", environ.get("REQUEST_METHOD"),
                                  environ.get("PATH_INFO"))
            _close(environ)
            return json_reply(start_response, 500, {"error": INTERNAL_ERROR})

    def _serve(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        body = self._read_body(environ)
        if not body.complete:
            _close(environ)
        who = self._authorize(environ, method, path)
        if body.too_large:
            raise _Refusal(413, f"request body larger than {self.max_body} bytes",
                           log_reason=f"body over {self.max_body} bytes")
        if body.error:
            raise _Refusal(400, body.error)
        if not self._routed(environ):
            raise _Refusal(404, f"no endpoint {path} (GET /dynprov lists the endpoints)")
        if method not in ("GET", "HEAD"):
            self.logger.info("REST %s %s by token '%s' from %s", method, path, who,
                             _client(environ))
        environ["wsgi.input"] = io.BytesIO(body.data)
        environ["CONTENT_LENGTH"] = str(len(body.data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)

    # -- the token ------------------------------------------------------------------
    def _authorize(self, environ: dict, method: str, path: str) -> str:
        """The name of the caller's token; _Refusal (401, 403) otherwise."""
        if self.tokens is None:
            raise _Refusal(401, f"this controller has no REST tokens ({self.tokens_source} "
                                "is not set): every call is refused",
                           {"WWW-Authenticate": REALM}, "no tokens configured")
        header = environ.get("HTTP_AUTHORIZATION")
        presented = bearer_token(header)
        if presented is None:
            what = "no Authorization header" if not header else \
                "Authorization header is not 'Bearer TOKEN'"
            raise _Refusal(401, f"{what}: send 'Authorization: Bearer TOKEN' with a token "
                                f"from the controller's {self.tokens_source} file",
                           {"WWW-Authenticate": REALM if not header else
                            REALM + ', error="invalid_request"'}, what)
        token = self.tokens.identify(presented)
        if token is None:
            raise _Refusal(401, "unknown token",
                           {"WWW-Authenticate": REALM + ', error="invalid_token"'},
                           "unknown token")
        needed = required_role(method)
        if token.role < needed:
            raise _Refusal(403, f"token '{token.name}' has role {token.role.label}: "
                                f"{method} needs {needed.label}",
                           log_reason=f"token '{token.name}' ({token.role.label}) may not "
                                      f"{method} {path}")
        return token.name

    # -- the body ------------------------------------------------------------------
    def _read_body(self, environ: dict) -> _Body:
        stream = environ.get("wsgi.input")
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        length_text = environ.get("CONTENT_LENGTH") or ""
        if stream is None or (not chunked and length_text in ("", "0")):
            return _Body()
        try:
            length = None if chunked else int(length_text)
        except ValueError:
            return _Body(complete=False, error=f"Content-Length is not a number: "
                                               f"{length_text[:20]!r}")
        if length is not None and length > self.max_body:
            if length > DRAIN_LIMIT or "100-continue" in environ.get("HTTP_EXPECT", ""):
                return _Body(complete=False, too_large=True)
            return _Body(complete=_drain(stream, length), too_large=True)
        try:
            data = _read_up_to(stream, self.max_body + 1 if length is None else length)
        except (OSError, ValueError) as error:
            return _Body(complete=False, error=f"request body could not be read: {error}")
        if len(data) > self.max_body:
            return _Body(complete=_drain(stream, DRAIN_LIMIT), too_large=True)
        if length is not None and len(data) < length:   # None: chunked
            return _Body(complete=False, error=f"request body ended after {len(data)} of "
                                               f"{length} bytes")
        return _Body(data)

    # -- the route ------------------------------------------------------------------
    def _routed(self, environ: dict) -> bool:
        mapper = getattr(self.app, "mapper", None)
        return mapper is None or mapper.match(environ=environ) is not None

    def _refuse(self, environ: dict, start_response: StartResponse,
                refusal: _Refusal) -> Iterable[bytes]:
        if refusal.log_reason:
            self.refusals.refused(_client(environ), refusal.log_reason)
        return json_reply(start_response, refusal.status, {"error": refusal.message},
                          refusal.headers)


def json_reply(start_response: StartResponse, status: int, body: Any,
               headers: Optional[Dict[str, str]] = None) -> List[bytes]:
    """A JSON response (indented, newline-terminated) through ``start_response``."""
    data = (json.dumps(body, indent=2) + "\n").encode()
    phrase = HTTPStatus(status).phrase
    start_response(f"{status} {phrase}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data))),
                                          *(headers or {}).items()])
    return [data]


def _client(environ: dict) -> str:
    return environ.get("REMOTE_ADDR") or "unknown"


def _close(environ: dict) -> None:
    close = environ.get(CLOSE_KEY)
    if close is not None:
        close()


def _read_up_to(stream, limit: int) -> bytes:
    parts, size = [], 0
    while size < limit:
        part = stream.read(min(16384, limit - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _drain(stream, limit: int) -> bool:
    """Read and drop up to ``limit`` bytes; True when the body ended within them."""
    try:
        dropped = 0
        while dropped <= limit:
            part = stream.read(16384)
            if not part:
                return True
            dropped += len(part)
    except (OSError, ValueError):
        pass
    return False
