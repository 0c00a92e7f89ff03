"""``POST /dynprov/notifications``: the external management entity's channel.

Body: ``{"event": "migrating", "mac": "00:fa:...", "server": "s21",
"template": 252}`` where ``event`` is one of started, shutdown, suspended,
resumed, restarting, migrating, template-change; ``server`` is needed by
started and migrating, ``template`` (an integer 0..65535, or a string in
decimal or hex) by template-change. Answers 200 ``{"acknowledged": "<what was
done>"}``, 400 for a malformed request (the field, what was expected, what was
found), 404 for an unknown VM or server, 409 when the notification does not
apply now; the status comes from the error's type
(``ryu_apps.core.notification_errors``).
"""

from __future__ import annotations

import json
from typing import Any

from ryu_apps.app.framework import ControllerBase, Response, route

from ryu_apps.core.identifiers import Mac, normalise_mac
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.notification_errors import (
    MalformedNotification,
    NotificationError,
    UnknownServer,
    UnknownVm,
)
from ryu_apps.rest.guard import INTERNAL_ERROR
from ryu_apps.rest.input import parse_json
from ryu_apps.rest.openapi import described
from ryu_apps.rest.views import ViewError, parse_template_id

PATH = "/dynprov/notifications"
EVENTS = ", ".join(n.value for n in Notice)
FIELDS = ("event", "mac", "server", "template")
NEEDS_SERVER = (Notice.STARTED, Notice.MIGRATING)
#: Longest server name accepted (a bridge name, or a datapath id in decimal or hex).
MAX_SERVER = 64


def register(app, wsgi) -> None:
    """Register the notifications route (before any catch-all route)."""
    wsgi.register(NotificationController, {"app": app})


def _reply(status: int, body: dict) -> Response:
    return Response(status=status, content_type="application/json",
                    body=(json.dumps(body, indent=2) + "\n").encode())


def parse_notification(body: bytes) -> tuple[Notice, Mac, str | None, int | None]:
    """(event, canonical MAC, server, template id) from a request body.

    Raises ValueError (rest_input.JsonInputError for the JSON itself) naming
    the field, what was expected and what was found.
    """
    document = parse_json(body) if body.strip() else None
    if not isinstance(document, dict):
        raise ValueError("body: expected a JSON object like "
                         '{"event": "shutdown", "mac": "00:fa:00:00:00:01"}')
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (expected {', '.join(FIELDS)})")
    event = document.get("event")
    notice = next((n for n in Notice if isinstance(event, str) and n.value == event), None)
    if notice is None:
        raise ValueError(f"event: expected one of {EVENTS}, got {_shown(event)}")
    text = document.get("mac")
    if not isinstance(text, str):
        raise ValueError(f"mac: expected a MAC address string, got {_shown(text)}")
    mac = normalise_mac(text, "mac")
    server = document.get("server")
    if server is not None and (not isinstance(server, str) or not server
                               or len(server) > MAX_SERVER):
        raise ValueError(f"server: expected a bridge name or datapath id (a string of 1 to "
                         f"{MAX_SERVER} characters), got {_shown(server)}")
    if server is None and notice in NEEDS_SERVER:
        raise ValueError(f"server: event {notice.value} needs the server (bridge name or "
                         "datapath id)")
    template = _template(document.get("template"))
    if template is None and notice is Notice.TEMPLATE_CHANGE:
        raise ValueError("template: event template-change needs the new template id")
    return notice, mac, server, template


def _template(value: Any) -> int | None:
    """A template id from an integer 0..65535 or a string "250" / "0x00FA"."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_template_id(value)
        except ViewError as error:
            raise ValueError(f"template: {error}") from None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF:
        return value
    raise ValueError("template: expected a template id, an integer 0..65535 or a string "
                     f"like \"250\" or \"0x00FA\", got {_shown(value)}")


def _shown(value: Any) -> str:
    """A client's value in an error message: a string quoted, anything else as JSON,
    cut at 60 characters."""
    text = repr(value) if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def status_of(error: NotificationError) -> int:
    """The HTTP status of a refused notification, from its type."""
    if isinstance(error, MalformedNotification):
        return 400
    if isinstance(error, (UnknownVm, UnknownServer)):
        return 404
    return 409


class NotificationController(ControllerBase):
    """The one route of the notifications channel."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.app = data["app"]

    @route("dynprov_notifications", PATH, methods=["POST"])
    @described("A VM lifecycle notification from the management entity",
               body={"event": "migrating", "mac": "00:fa:00:00:00:01", "server": "s21"},
               responses={400: "malformed notification (the field, expected, found)",
                          404: "unknown VM or server", 409: "does not apply now"})
    def notify(self, req, **_kwargs):
        """Apply one notification and say what was done."""
        try:
            notice, mac, server, template = parse_notification(req.body)
        except ValueError as error:
            return _reply(400, {"error": str(error)})
        try:
            message = self.app.notify(notice, mac, server, template)
        except NotificationError as error:
            return _reply(status_of(error), {"error": str(error)})
        except Exception:  # a bug: say so in JSON, log the traceback
            self.app.logger.exception("REST notification %s %s failed", notice.value, mac)
            return _reply(500, {"error": INTERNAL_ERROR})
        return _reply(200, {"event": notice.value, "mac": mac, "acknowledged": message})
