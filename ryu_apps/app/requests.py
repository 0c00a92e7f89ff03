"""REST and SIGHUP reach the engine through the app's event loop.

The REST API's WSGI green threads and the SIGHUP reloader call
:meth:`Requests.notify` and :meth:`Requests.reload_library`. Those post a
request event to the app's own queue and wait for its reply, so the caller
still gets its answer (status, message) at once while only the event loop
changes the engine. A library is read and validated before, in the checker
process, so the event loop never waits for it.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Tuple

from ryu_apps.app.framework import hub

from ryu_apps.app import loop_events as loop
from ryu_apps.core.lifecycle import Notice, NotificationError
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.store import hook as store_hook

#: Seconds a notification waits for the switches to confirm its changes.
NOTIFY_CONFIRM_SECONDS = 5.0


class Requests:
    """The caller's side (any green thread) and the event loop's side of each request."""

    def __init__(self, app) -> None:
        self.app = app
        #: Set by the SIGHUP handler (it may not block): the reloader waits for it.
        self.reload_wanted = hub.Event()
        self._reload_lock = hub.BoundedSemaphore(1)
        self._threads: List[Any] = []

    def start(self) -> None:
        """Start the SIGHUP reloader (a loop that outlives any failure)."""
        self._threads.append(hub.spawn(loop.forever, self._reload_on_signal,
                                       "SIGHUP reload", self.app.logger))

    def stop(self) -> None:
        for thread in self._threads:
            hub.kill(thread)
        self._threads.clear()

    def _reload_on_signal(self) -> None:
        self.reload_wanted.wait()
        self.reload_wanted.clear()
        self.reload_library()

    # -- the caller's side -------------------------------------------------------------
    def notify(self, notice: Notice, mac: str, server: str | None,
               template_id: int | None) -> str:
        """Apply a notification in the event loop; what was done, once confirmed (or
        said unconfirmed after NOTIFY_CONFIRM_SECONDS). Raises NotificationError."""
        store = self.app.store_sync
        if (store is not None and notice is Notice.MIGRATING and server
                and not store.manages_server(server)):
            return str(store.hand_off(mac, server))  # another process's server
        reply = self.app.send_request(loop.ApplyNotice(self.app.name, notice, mac, server,
                                                       template_id))
        if reply.error is not None:
            raise reply.error
        if not reply.confirmed.wait(timeout=NOTIFY_CONFIRM_SECONDS):
            return f"{reply.message} (not yet confirmed by every switch)"
        return str(reply.message)

    def reload_library(self) -> Tuple[bool, str]:
        """Read and validate the library (here, off the event loop), then put it in force
        in the event loop: (True, summary), or (False, every validation error) with
        the previous library in force. Store mode: (False, why and what to do)."""
        app = self.app
        if app.options.store:  # store mode: the library is the store's
            refusal = store_hook.reload_refusal(app.options,
                                                getattr(app, "store_sync", None))
            app.logger.warning("%s", refusal)
            return False, refusal
        with self._reload_lock:
            try:   # read and validated in the checker process; this green thread waits
                library = app.library_keeper.candidate()
                domain_libraries = {name: keeper.candidate()
                                    for name, keeper in app.domain_keepers.items()}
            except TemplateValidationError as error:
                app.logger.error("library reload refused, previous library stays:\n%s",
                                 error)
                return False, str(error)
            request = loop.PutLibraries(app.name, library, domain_libraries)
            result: Tuple[bool, str] = app.send_request(request).result
            return result

    # -- the event loop's side -----------------------------------------------------------
    def apply_notice(self, request: loop.ApplyNotice) -> None:
        """Apply a notification to the engine, send its plan and answer the caller."""
        app = self.app
        reply = loop.NoticeApplied(request.src)
        try:
            ack = app.engine.notify(request.notice, request.mac, request.server,
                                    request.template_id, now=time.time())
            confirmed = hub.Event()
            app.send_plan(ack.plan, on_confirmed=confirmed.set)
            reply = loop.NoticeApplied(request.src, ack.message, confirmed)
        except NotificationError as error:
            reply.error = error
        except Exception:  # noqa: BLE001 - answer, then resynchronise
            app.handler_failed("notification")
            reply.error = RuntimeError("internal error while applying the notification; "
                                       "resynchronising (see the controller log)")
        finally:
            app.reply_to_request(request, reply)

    def put_libraries(self, request: loop.PutLibraries) -> List[int]:
        """Every library (main and domains) in force at once; answer the caller. The
        switches whose flows changed (to read back)."""
        app = self.app
        result: Tuple[bool, str] = (False, "internal error")
        changed: List[int] = []
        try:
            result, changed = self._put_in_force(request.library, request.domain_libraries)
        except Exception:  # noqa: BLE001 - answer, then resynchronise
            app.handler_failed("library reload")
            result = (False, "internal error while putting the library in force; "
                             "resynchronising (see the controller log)")
        finally:
            app.reply_to_request(request, loop.LibrariesPut(request.src, result))
        return changed

    def _put_in_force(self, library, domain_libraries: Dict[str, Any]
                      ) -> Tuple[Tuple[bool, str], List[int]]:
        app = self.app
        conflicts = app.engine.reload_conflicts(library) + [
            line for name, domain_library in domain_libraries.items()
            for line in app.engine.reload_conflicts(domain_library, name)]
        if conflicts:   # core/datapath_support.py: stateful where a bridge has no ct
            message = "\n".join(conflicts)
            app.logger.error("library reload refused, previous library stays:\n%s", message)
            return (False, message), []
        app.library_keeper.accept(library)
        for name, domain_library in domain_libraries.items():
            app.domain_keepers[name].accept(domain_library)
        plan = app.engine.set_library(library)
        for name, domain_library in domain_libraries.items():
            plan.extend(app.engine.set_library(domain_library, domain=name))
        message = (f"library reloaded: {len(library)} templates, "
                   f"{plan.flow_count()} flow changes")
        app.logger.info("%s", message)
        app.send_plan(plan)
        return (True, message), sorted(dpid for dpid, changes in plan.changes.items()
                                       if changes)
