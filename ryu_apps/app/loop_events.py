"""What reaches the app's event loop besides OpenFlow, and the green threads that post it.

One thread changes the engine: the app's Ryu event loop. Timers, the end of
the warm start, the servers' OVSDB, REST mutations and SIGHUP do not call the
engine from their own green threads; they post one of these events to the
app's queue (a REST caller waits for the reply of a request event). Every
green thread here either posts and ends, or is a loop that logs an exception
and goes on: none stays dead.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Set, Tuple

from ryu_apps.app.framework import event
from ryu_apps.app.framework import hub

from ryu_apps.core.lifecycle import Notice

#: Seconds a forever-loop waits after its step raised, before trying again.
RETRY_SECONDS = 1.0


class ProbeRound(event.EventBase):
    """Time for a round of LLDP probes."""


class Tick(event.EventBase):
    """A second passed."""


class AnnounceRound(event.EventBase):
    """Time to announce again, to the shared fabric, the VMs that arrived lately."""


class Audit(event.EventBase):
    """Time to read every switch back and reconcile it."""


class GraceOver(event.EventBase):
    """The warm start that began at ``started`` is over: reconcile every switch in full."""

    def __init__(self, started: float) -> None:
        super().__init__()
        self.started = started


class OvsdbChange(event.EventBase):
    """A server's OVSDB reported a VM attached to (or detached from) a port; the
    hypervisor's ``iface_id`` for the port as the watcher saw it then."""

    def __init__(self, attached: bool, dpid: int, port: int, mac: str,
                 iface_id: Optional[str] = None) -> None:
        super().__init__()
        self.attached, self.dpid, self.port, self.mac = attached, dpid, port, mac
        self.iface_id = iface_id


class StoreWork(event.EventBase):
    """Engine work the store sync asks for, run in the app's event loop."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__()
        self.work = work


class PutLibraries(event.EventRequestBase):
    """Put validated libraries (main and per domain) in force."""

    def __init__(self, dst: str, library: Any, domain_libraries: Dict[str, Any]) -> None:
        super().__init__()
        self.dst = dst
        self.library, self.domain_libraries = library, domain_libraries


class LibrariesPut(event.EventReplyBase):
    """(ok, message) of a PutLibraries."""

    def __init__(self, dst: Optional[str], result: Tuple[bool, str]) -> None:
        super().__init__(dst)
        self.result = result


class ApplyNotice(event.EventRequestBase):
    """A notification from the management entity, to apply to the engine."""

    def __init__(self, dst: str, notice: Notice, mac: str, server: Optional[str],
                 template_id: Optional[int]) -> None:
        super().__init__()
        self.dst = dst
        self.notice, self.mac = notice, mac
        self.server, self.template_id = server, template_id


class NoticeApplied(event.EventReplyBase):
    """What an ApplyNotice did: the engine's message and an event set once every switch
    confirmed the plan; or the error that refused it."""

    def __init__(self, dst: Optional[str], message: str = "",
                 confirmed: Optional[hub.Event] = None,
                 error: Optional[Exception] = None) -> None:
        super().__init__(dst)
        self.message, self.confirmed, self.error = message, confirmed, error


def forever(step: Callable[[], None], what: str, logger,
            retry: float = RETRY_SECONDS) -> None:
    """Run ``step`` again and again; an exception is logged and the loop goes on."""
    while True:
        try:
            step()
        except Exception:  # noqa: BLE001 - a loop of the app must outlive any failure
            logger.exception("dynprov: %s raised; going on in %.0f s", what, retry)
            hub.sleep(retry)


def post(app, ev: event.EventBase, logger) -> bool:
    """Post ``ev`` to ``app``'s own event queue; whether it was (else it is logged)."""
    try:
        app.send_event(app.name, ev)
    except Exception:  # noqa: BLE001 - the poster must survive the queue
        logger.exception("dynprov: could not post %s", type(ev).__name__)
        return False
    return True


class Timers:
    """The app's periodic events, one green thread each; at most one of each kind
    waits in the queue (a busy app is not buried under ticks)."""

    def __init__(self, app, logger) -> None:
        self.app, self.logger = app, logger
        self._due: Set[type] = set()
        self.threads: list = []

    def every(self, seconds: float, event_class: type) -> None:
        """Post ``event_class()`` every ``seconds``, from now on."""
        def step() -> None:
            hub.sleep(seconds)
            if event_class not in self._due:
                self._due.add(event_class)
                if not post(self.app, event_class(), self.logger):
                    self._due.discard(event_class)

        self.threads.append(hub.spawn(forever, step, f"timer {event_class.__name__}",
                                      self.logger))

    def handled(self, event_class: type) -> None:
        """The event of this kind left the queue: the next one may be posted."""
        self._due.discard(event_class)

    def once(self, seconds: float, ev: event.EventBase) -> None:
        """Post ``ev`` once, ``seconds`` from now."""
        self.threads = [thread for thread in self.threads if not thread.dead]
        self.threads.append(hub.spawn_after(max(seconds, 0.0), post, self.app, ev,
                                            self.logger))

    def stop(self) -> None:
        """Kill every timer thread."""
        for thread in self.threads:
            hub.kill(thread)
        self.threads.clear()
