"""The live view: ``GET /dynprov/view`` (a page) and ``GET /dynprov/view/events`` (its feed).

The page (``ryu_apps/rest/static/view.html``, one file, no framework, nothing
from the network) holds no data and is served without a token; its script
takes the reader token from the address's fragment (``#token=...``, which a
browser never sends) or asks for it, and reads the feed with that token as a
bearer header through the REST guard, like every other call.

The feed is Server-Sent Events over the REST server's WSGI: a ``state``
event (switches, links, VMs by server and template, quarantined MACs,
migrations under way, and the ``causes``: which kinds of change led to it)
whenever it changed, and a ``migration`` event when a VM's server changed.
It is pushed, not polled: the app tells its
:class:`~ryu_apps.app.state_changes.StateChanges` what each plan the engine
returned changed (and when a switch connects or leaves); the feed observes
that, and its one green thread (:class:`LiveFeed`) reads the engine only
after such a change while a client is connected (once per burst, at most
every :data:`MIN_GAP_SECONDS`; never while nothing changes), then hands each
client its events through a bounded queue: a queued ``state``
is replaced by a newer one; past :data:`QUEUE_CAP` events the oldest are
dropped and the client is sent ``resync`` (then the current state), so a slow
or stuck client costs a fixed amount of memory; its own WSGI green thread
writes to it (a stalled write ends at the server's socket timeout), so it
never blocks the controller. At most :data:`MAX_CLIENTS` feeds at once.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any, Deque, Dict, FrozenSet, Iterator, List, Optional, Set, Tuple

from ryu_apps.app.framework import ControllerBase, Response, hub, route
from ryu_apps.core import ipv6_guard
from ryu_apps.rest import views as rest_views
from ryu_apps.rest.openapi import described

PAGE_PATH = "/dynprov/view"
EVENTS_PATH = "/dynprov/view/events"
PAGE_FILE = Path(__file__).parent / "static" / "view.html"
#: Least seconds between two reads of the engine (a burst of changes is read once).
MIN_GAP_SECONDS = 0.1
KEEPALIVE_SECONDS = 10.0
QUEUE_CAP = 64
MAX_CLIENTS = 16
#: Migrations kept in the state (the most recent).
RECENT_MIGRATIONS = 20
#: A VM gone from one read that comes back at another server or port within this many
#: seconds moved (a packets-only move may end the binding at its old port's loss
#: before its first frame at the new one creates it again, and a read can fall between).
DEPARTED_SECONDS = 30.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                               "style-src 'unsafe-inline'; connect-src 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Json = Dict[str, Any]


# -- what the view shows (plain functions of the engine) -------------------------------
def state_of(engine, connected: Set[int]) -> Json:
    """Switches, links, VMs, quarantined MACs and migrations under way, as JSON."""
    switches = dict(engine.fabric.switches)
    fabric = engine.fabric
    return {
        "switches": [{"dpid": rest_views.dpid_text(d), "name": i.name, "role": i.role.value,
                      "connected": d in connected} for d, i in sorted(switches.items())],
        "links": [{"a": rest_views.port_ref(a, switches), "b": rest_views.port_ref(b, switches),
                   "on_tree": a.port in fabric.tree_ports(a.dpid)} for a, b in fabric.links()],
        "vms": sorted((_vm(engine, b, switches) for b in list(engine.bindings.values())),
                      key=lambda v: (v["server"] or "", v["port"], v["mac"])),
        "incoming": sorted((_vm(engine, b, switches)
                            for b in list(engine.incoming.values())),
                           key=lambda v: v["mac"]),
        "quarantined": [rest_views.refusal_view(r, switches)
                        for _, r in sorted(engine.refused.items())],
    }


def _vm(engine, binding, switches) -> Json:
    """One VM: where, its template and state, its IPv4, and its IPv6 addresses: the
    link-local one its template's IPv6 guard lets it send from (None when the template
    does not guard IPv6), and its bound global ones."""
    info = switches.get(binding.dpid)
    template = engine.template_of(binding)
    guarded = template is not None and ipv6_guard.guarded(template.virtual_switch)
    return {"mac": binding.mac, "server": info.name if info else None, "port": binding.port,
            "template_id": binding.template_id, "template": binding.template_name,
            "vlan": binding.vlan, "state": binding.state.value, "ip": binding.ip,
            "ipv6_link_local": ipv6_guard.link_local(binding.mac) if guarded else None,
            "ipv6": list(binding.ipv6)}


def migrations(old: Json, new: Json, now: float,
               departed: Optional[Dict[str, Json]] = None) -> List[Json]:
    """VMs whose server or port changed between two states, or since they left
    (``departed``: VMs by MAC that an earlier state had and a later one lost)."""
    before = {**(departed or {}), **{v["mac"]: v for v in old.get("vms", ())}}
    found = []
    for vm in new.get("vms", ()):
        was = before.get(vm["mac"])
        if was is not None and (was["server"], was["port"]) != (vm["server"], vm["port"]):
            found.append({"mac": vm["mac"], "template": vm["template"],
                          "from": {"server": was["server"], "port": was["port"]},
                          "to": {"server": vm["server"], "port": vm["port"]},
                          "at": rest_views.iso_utc(now)})
    return found


# -- clients ---------------------------------------------------------------------------
class Client:
    """One feed's queue: bounded; a newer state replaces a queued one."""

    def __init__(self, cap: int = QUEUE_CAP) -> None:
        self.cap = cap
        self.queue: Deque[Tuple[str, Json]] = collections.deque()
        self.wake = hub.Event()
        self.dropped = 0

    def drop_states(self) -> None:
        """Forget queued states (the client is being sent a newer one)."""
        self.queue = collections.deque(e for e in self.queue if e[0] != "state")

    def put(self, kind: str, data: Json) -> None:
        if kind == "state":
            self.drop_states()
        self.queue.append((kind, data))
        if len(self.queue) > self.cap:
            while len(self.queue) >= self.cap:
                self.queue.popleft()
                self.dropped += 1
            self.queue.appendleft(("resync", {"dropped": self.dropped}))
        self.wake.set()

    def take(self, timeout: float) -> Optional[Tuple[str, Json]]:
        """The next event; None after ``timeout`` s without one."""
        if not self.queue:
            self.wake.clear()
            self.wake.wait(timeout=timeout)
        return self.queue.popleft() if self.queue else None


class LiveFeed:
    """Reads the app's state when it changed, while clients watch, and fans it out.

    :meth:`changed` is the observer of the app's
    :class:`~ryu_apps.app.state_changes.StateChanges` (called in the event loop):
    it only notes the change and wakes the feed's green thread, which reads the
    engine once for every burst of changes (at most once per :data:`MIN_GAP_SECONDS`)
    and sends what differs. While nothing changes, or nobody watches, the thread
    sleeps on its event and the engine is not read.
    """

    def __init__(self, app, min_gap: float = MIN_GAP_SECONDS) -> None:
        self.app, self.min_gap = app, min_gap
        self.clients: List[Client] = []
        self.state: Json = {}
        self.recent: Deque[Json] = collections.deque(maxlen=RECENT_MIGRATIONS)
        self.departed: Dict[str, Tuple[Json, float]] = {}   # MAC: (VM, when it left)
        self.causes: Set[str] = set()      # kinds of change not sent yet
        self.wake = hub.Event()
        self.reads = 0                     # times the engine was read (for tests)
        self._last_read = float("-inf")
        self._thread = None

    def changed(self, kinds: FrozenSet[str]) -> None:
        """The engine's state changed (these kinds): wake the feed if anyone watches."""
        if self.clients:
            self.causes |= kinds
            self.wake.set()

    def current(self) -> Json:
        """The state now (read afresh) with the recent migrations."""
        self._read()
        return {**self.state, "migrations": list(self.recent)}

    def join(self) -> Optional[Client]:
        """A new client (None when :data:`MAX_CLIENTS` are watching)."""
        if len(self.clients) >= MAX_CLIENTS:
            return None
        client = Client()
        self.clients.append(client)
        if self._thread is None or self._thread.dead:
            self._thread = hub.spawn(self._watch)
        return client

    def leave(self, client: Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
        if not self.clients:
            self.wake.set()   # the thread ends

    def _watch(self) -> None:
        while self.clients:
            self.wake.wait()
            self.wake.clear()
            if not self.clients or not self.causes:
                continue
            gap = self._last_read + self.min_gap - time.monotonic()
            if gap > 0:
                hub.sleep(gap)   # a burst of changes: one read for all of it
            try:
                self._read()
            except Exception:  # noqa: BLE001 - the feed must outlive a bad read
                self.app.logger.exception("live view: reading the state failed")

    def _departed(self, new: Json) -> Dict[str, Json]:
        """VMs that left within :data:`DEPARTED_SECONDS` (by MAC), noting those the
        previous state had and ``new`` lacks; a VM back in ``new`` is forgotten."""
        now = time.monotonic()
        present = {v["mac"] for v in new.get("vms", ())}
        for vm in self.state.get("vms", ()):
            if vm["mac"] not in present:
                self.departed[vm["mac"]] = (vm, now)
        recent = {mac: vm for mac, (vm, left) in self.departed.items()
                  if now - left <= DEPARTED_SECONDS}
        self.departed = {mac: entry for mac, entry in self.departed.items()
                         if mac in recent and mac not in present}
        return recent

    def _read(self) -> None:
        causes, self.causes = sorted(self.causes), set()
        self.reads += 1
        self._last_read = time.monotonic()
        new = state_of(self.app.engine, set(self.app.datapaths))
        if new == self.state:
            return
        moved = migrations(self.state, new, time.time(), self._departed(new)) \
            if self.state else []
        self.state = new
        self.recent.extend(moved)
        for client in list(self.clients):
            for migration in moved:
                client.put("migration", migration)
            client.put("state", {**new, "migrations": list(self.recent), "causes": causes})


def sse(kind: str, data: Json) -> bytes:
    """One Server-Sent Event."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stream(feed: LiveFeed, client: Client, keepalive: float = KEEPALIVE_SECONDS
           ) -> Iterator[bytes]:
    """The bytes of one feed: the state now, then events as they come."""
    try:
        state = feed.current()
        client.drop_states()
        yield b"retry: 2000\n\n" + sse("state", state)
        while True:
            item = client.take(keepalive)
            if item is None:
                yield b": keepalive\n\n"
            elif item[0] == "resync":
                state = feed.current()
                client.drop_states()
                yield sse("resync", item[1]) + sse("state", state)
            else:
                yield sse(*item)
    finally:
        feed.leave(client)


# -- WSGI --------------------------------------------------------------------------
def register(app, wsgi) -> None:
    """Serve the feed (before the API's catch-all route); the page is served by
    :func:`public_page` in front of the guard."""
    feed = LiveFeed(app)
    changes = getattr(app, "state_changes", None)
    if changes is not None:
        changes.subscribe(feed.changed)
    wsgi.register(LiveViewController, {"feed": feed})


class LiveViewController(ControllerBase):
    """The feed's route (behind the guard: a reader token)."""

    def __init__(self, req, link, data, **config) -> None:
        super().__init__(req, link, data, **config)
        self.feed: LiveFeed = data["feed"]

    @route("dynprov_view_events", EVENTS_PATH, methods=["GET"])
    @described("The live view's feed: Server-Sent Events (state, migration, resync; a "
               "keepalive every 10 s). The page itself, GET /dynprov/view, needs no token",
               responses={503: f"{MAX_CLIENTS} live views are open already"})
    def events(self, req, **_):
        client = self.feed.join()
        if client is None:
            body = {"error": f"{MAX_CLIENTS} live views are open already; close one"}
            return Response(status=503, content_type="application/json",
                            body=(json.dumps(body) + "\n").encode())
        req.environ["eventlet.minimum_write_chunk_size"] = 0   # each event at once
        response = Response(status=200, content_type="text/event-stream",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        response.app_iter = stream(self.feed, client)
        return response


def public_page(inner):
    """WSGI middleware: ``GET``/``HEAD /dynprov/view`` answers the page (no data, no
    token needed); anything else goes to ``inner`` (the guard)."""
    def serve(environ: dict, start_response) -> Any:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if environ.get("PATH_INFO") != PAGE_PATH or method not in ("GET", "HEAD"):
            return inner(environ, start_response)
        page = PAGE_FILE.read_bytes()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(page))),
                                  *SECURITY_HEADERS.items()])
        return [b""] if method == "HEAD" else [page]
    return serve
