"""Why a notification was refused, by type (pure).

The REST API picks its status from the type, never from the wording:
:class:`MalformedNotification` 400, :class:`UnknownVm` and
:class:`UnknownServer` 404, :class:`NotApplicable` and any other
:class:`NotificationError` 409.
"""

from __future__ import annotations


class NotificationError(ValueError):
    """A notification that names an unknown VM or server, or makes no sense now."""


class MalformedNotification(NotificationError):
    """The notification itself is incomplete or malformed (a bad MAC, no server)."""


class UnknownVm(NotificationError):
    """No binding of that MAC, and never seen by this controller."""


class UnknownServer(NotificationError):
    """No connected server bridge (or process in the store) has that name or id."""


class NotApplicable(NotificationError):
    """The VM and server are known, but the notification does not apply now."""
