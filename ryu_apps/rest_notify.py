"""``POST /dynprov/notifications``: the external management entity's channel.

Body: ``{"event": "migrating", "mac": "00:fa:...", "server": "s21",
"template": 252}`` where ``event`` is one of started, shutdown, suspended,
resumed, restarting, migrating, template-change; ``server`` is needed by
started and migrating, ``template`` by template-change. Answers 200
``{"acknowledged": "<what was done>"}``, 400 for a malformed request, 404 for
an unknown VM or server, 409 when the notification does not apply now.
"""

from __future__ import annotations

import json

from ryu.app.wsgi import ControllerBase, Response, route

from ryu_apps.core.lifecycle import Notice, NotificationError

PATH = "/dynprov/notifications"
EVENTS = ", ".join(n.value for n in Notice)


def register(app, wsgi) -> None:
    """Register the notifications route (before any catch-all route)."""
    wsgi.register(NotificationController, {"app": app})


def _reply(status: int, body: dict) -> Response:
    return Response(status=status, content_type="application/json",
                    body=(json.dumps(body, indent=2) + "\n").encode())


def parse_notification(body: bytes) -> tuple[Notice, str, str | None, int | None]:
    """(event, MAC, server, template id) from a request body; ValueError says what is wrong."""
    try:
        document = json.loads(body or b"{}")
    except ValueError as error:
        raise ValueError(f"body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("body: expected a JSON object")
    unknown = set(document) - {"event", "mac", "server", "template"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r} "
                         "(expected event, mac, server, template)")
    try:
        notice = Notice(document.get("event"))
    except ValueError:
        raise ValueError(f"event: expected one of {EVENTS}, got "
                         f"{document.get('event')!r}") from None
    mac = document.get("mac")
    if not isinstance(mac, str):
        raise ValueError(f"mac: expected a MAC address string, got {mac!r}")
    server = document.get("server")
    if server is not None and not isinstance(server, str):
        raise ValueError(f"server: expected a bridge name or datapath id, got {server!r}")
    template = document.get("template")
    if template is not None:
        try:
            template = int(template, 0) if isinstance(template, str) else int(template)
        except (TypeError, ValueError):
            raise ValueError(f"template: expected a template id, got {template!r}") from None
    return notice, mac, server, template


class NotificationController(ControllerBase):
    """The one route of the notifications channel."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.app = data["app"]

    @route("dynprov_notifications", PATH, methods=["POST"])
    def notify(self, req, **_kwargs):
        """Apply one notification and say what was done."""
        try:
            notice, mac, server, template = parse_notification(req.body)
        except ValueError as error:
            return _reply(400, {"error": str(error)})
        try:
            message = self.app.notify(notice, mac, server, template)
        except NotificationError as error:
            status = 404 if str(error).startswith(("unknown VM", "unknown server")) else 409
            return _reply(status, {"error": str(error)})
        return _reply(200, {"event": notice.value, "mac": mac, "acknowledged": message})
