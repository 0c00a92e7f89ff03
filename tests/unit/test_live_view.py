"""The live view's parts (rest/live_view.py): bounded client queues, migrations seen
between two states, the feed's first event, the page served without a token; the feed
pushed on the engine's changes (app/state_changes.py), never reading it while idle."""

from __future__ import annotations

import json
import time

from ryu_apps.app import state_changes
from ryu_apps.app.framework import hub
from ryu_apps.app.plan_sender import Dispatcher
from ryu_apps.app.provisioning_times import ProvisioningTimes
from ryu_apps.app.state_changes import StateChanges, kinds_of
from ryu_apps.core import ipv6_guard
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library
from ryu_apps.rest import live_view
from ryu_apps.rest.live_view import PAGE_FILE, Client, LiveFeed, migrations, state_of, stream
from tests.support.fake_switches import FakeSwitches
from tests.support.headless import Browser
from tests.support.small_fabric import S11, S12, bring_up

LIBRARY = load_library("templates")
WEB = "00:fa:00:00:00:01"
MANAGEMENT = "00:fe:00:00:00:01"


class _CountingEngine:
    """The engine, counting the reads of its state (what the live view reads)."""

    def __init__(self, engine):
        self.__dict__["inner"], self.__dict__["reads"] = engine, 0

    def __getattr__(self, name):
        self.__dict__["reads"] += 1
        return getattr(self.__dict__["inner"], name)


class _Sender:
    """Applies each plan to the fake switches at once and confirms it."""

    def __init__(self, switches):
        self.switches = switches

    def send(self, plan, on_confirmed=None):
        self.switches.apply(plan)
        if on_confirmed is not None:
            on_confirmed()


class _App:
    def __init__(self):
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
        self.switches = FakeSwitches()
        bring_up(self.engine, self.switches.apply)
        self.datapaths = {S11: object()}
        self.state_changes = StateChanges()
        self.dispatcher = Dispatcher(_Sender(self.switches), self.engine, None,
                                     ProvisioningTimes(), lambda: None, self.state_changes)

    def vm(self, dpid, port, mac, now=0.0):
        self.dispatcher.send(self.engine.packet_in(dpid, port, mac, b"x", now=now).plan, now)


def _next_event(client, kind, within=5.0):
    """The next queued event of ``kind`` (skipping others), waiting at most ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        item = client.take(deadline - time.monotonic())
        if item is not None and item[0] == kind:
            return item[1]
    return None


def test_the_state_shows_each_vms_ipv4_and_ipv6_link_local_and_bound():
    app = _App()
    app.dispatcher.send(app.engine.expect_ip(WEB, "10.0.100.1", ("2001:db8::1",)), 0.0)
    app.vm(S11, 1, WEB)                                  # web: IPv6 guarded (link_local)
    app.vm(S12, 2, MANAGEMENT)                           # management: IPv6 unguarded
    vms = {v["mac"]: v for v in state_of(app.engine, set(app.datapaths))["vms"]}
    assert (vms[WEB]["ip"], vms[WEB]["ipv6_link_local"], vms[WEB]["ipv6"]) == \
        ("10.0.100.1", ipv6_guard.link_local(WEB), ["2001:db8::1"])
    assert vms[WEB]["ipv6_link_local"] == "fe80::2fa:ff:fe00:1"
    assert (vms[MANAGEMENT]["ipv6_link_local"], vms[MANAGEMENT]["ipv6"]) == (None, [])


def test_the_page_shows_the_ipv6_addresses_it_is_sent():
    """The page (in headless Chromium, from its file) renders the feed's state: each VM's
    row has its IPv4 and, in the IPv6 column, its link-local then its bound addresses."""
    app = _App()
    app.dispatcher.send(app.engine.expect_ip(WEB, "10.0.100.1", ("2001:db8::1",)), 0.0)
    app.vm(S11, 1, WEB)
    app.vm(S12, 2, MANAGEMENT)
    state = {**state_of(app.engine, set(app.datapaths)), "migrations": []}
    browser = Browser()
    try:
        browser.open(PAGE_FILE.as_uri())
        assert browser.wait_for("document.readyState === 'complete'", 10.0)
        browser.evaluate(f"render({json.dumps(state)})")
        cells = browser.evaluate(
            "[...document.querySelectorAll('#vms tr')].map(r => [...r.children]"
            ".map(c => c.innerText))")
    finally:
        browser.close()
    assert cells[0][-2:] == ["IPv4", "IPv6"]
    rows = {row[0]: row for row in cells if len(row) == 7}
    assert rows[WEB][-2:] == ["10.0.100.1", "fe80::2fa:ff:fe00:1\n2001:db8::1"]
    assert rows[MANAGEMENT][-1] == ""


def test_a_stuck_client_holds_at_most_its_cap_and_is_told_to_resync():
    client = Client(cap=8)
    for i in range(1000):
        client.put("migration", {"n": i})
        client.put("state", {"n": i})
    assert len(client.queue) <= 8
    kinds = [kind for kind, _ in client.queue]
    assert kinds[0] == "resync" and kinds.count("state") == 1
    assert client.queue[-1] == ("state", {"n": 999})   # the newest state is kept
    assert client.take(0.0) == ("resync", {"dropped": client.dropped})


def test_a_newer_state_replaces_a_queued_one():
    client = Client()
    client.put("state", {"n": 1})
    client.put("migration", {"mac": "m"})
    client.put("state", {"n": 2})
    assert list(client.queue) == [("migration", {"mac": "m"}), ("state", {"n": 2})]
    assert client.take(0.0)[0] == "migration" and client.take(0.0) == ("state", {"n": 2})
    assert client.take(0.0) is None


def test_the_state_shows_switches_links_and_vms_and_a_move_is_a_migration():
    app = _App()
    app.vm(S11, 1, WEB)
    before = state_of(app.engine, set(app.datapaths))
    assert {s["name"] for s in before["switches"]} == {hex(d) for d in app.engine.fabric.switches}
    assert [s["connected"] for s in before["switches"] if s["name"] == hex(S11)] == [True]
    assert len(before["links"]) == 3
    (vm,) = before["vms"]
    assert (vm["mac"], vm["server"], vm["template_id"]) == (WEB, hex(S11), 0x00FA)
    assert migrations(before, before, 1.0) == []
    moved = {**before, "vms": [{**vm, "server": hex(S12), "port": 4}]}
    (migration,) = migrations(before, moved, 1.0)
    assert migration["from"] == {"server": hex(S11), "port": 1}
    assert migration["to"] == {"server": hex(S12), "port": 4}


def test_the_feed_starts_with_the_current_state_and_releases_its_client():
    app = _App()
    app.vm(S11, 1, WEB)
    feed = LiveFeed(app)
    client = feed.join()
    events = stream(feed, client, keepalive=0.0)
    first = next(events).decode()
    assert first.startswith("retry: 2000\n\nevent: state\ndata: ")
    state = json.loads(first.split("data: ", 1)[1])
    assert [v["mac"] for v in state["vms"]] == [WEB] and state["migrations"] == []
    assert next(events) == b": keepalive\n\n"
    events.close()
    assert feed.clients == []


def test_the_feed_refuses_clients_past_its_limit():
    feed = LiveFeed(_App())
    clients = [feed.join() for _ in range(live_view.MAX_CLIENTS)]
    assert all(clients) and feed.join() is None
    feed.leave(clients[0])
    assert feed.join() is not None
    feed.clients.clear()


def test_the_page_needs_no_token_and_everything_else_goes_to_the_guard():
    seen = []

    def guard(environ, start_response):
        seen.append(environ["PATH_INFO"])
        start_response("401 Unauthorized", [])
        return [b"{}"]

    serve = live_view.public_page(guard)
    answers = []
    body = b"".join(serve({"PATH_INFO": "/dynprov/view", "REQUEST_METHOD": "GET"},
                          lambda status, headers: answers.append((status, dict(headers)))))
    assert answers[0][0] == "200 OK" and b"<title>dynprov live view</title>" in body
    assert "connect-src 'self'" in answers[0][1]["Content-Security-Policy"]
    assert b"Bearer" in body and b"http" not in body.replace(b"http://www.w3.org", b"")
    for path, method in (("/dynprov/view/events", "GET"), ("/dynprov/view", "POST"),
                         ("/dynprov/bindings", "GET")):
        serve({"PATH_INFO": path, "REQUEST_METHOD": method}, lambda *a: None)
    assert seen == ["/dynprov/view/events", "/dynprov/view", "/dynprov/bindings"]


def test_a_plan_tells_what_it_changed_and_an_idle_one_tells_nothing():
    app = _App()
    told = []
    app.state_changes.subscribe(told.append)
    app.dispatcher.send(app.engine.tick(1.0), 1.0)             # nothing happened
    app.dispatcher.send(app.engine.probe_round(1.0), 1.0)
    assert told == []
    app.vm(S11, 1, WEB)                                         # flows, then confirmed
    assert sorted(told, key=sorted) == [frozenset({state_changes.CONFIRMED}),
                                        frozenset({state_changes.FLOWS})]
    assert kinds_of(app.engine.packet_in(S11, 1, WEB, b"x", now=2.0).plan) == frozenset()


def test_with_a_view_open_and_nothing_happening_the_engine_is_not_read():
    app = _App()
    app.vm(S11, 1, WEB)
    counting = app.engine = _CountingEngine(app.engine)
    feed = LiveFeed(app)
    app.state_changes.subscribe(feed.changed)
    client = feed.join()
    events = stream(feed, client, keepalive=0.0)
    assert next(events).startswith(b"retry: 2000\n\nevent: state")
    read_at_join = counting.reads
    assert read_at_join > 0 and feed.reads == 1
    for now in range(2, 12):        # idle ticks, a known VM's frames, time passing
        app.dispatcher.send(counting.inner.tick(float(now)), float(now))
        app.dispatcher.send(counting.inner.packet_in(S11, 1, WEB, b"x", now=now).plan, now)
        hub.sleep(0.05)
    assert (counting.reads, feed.reads) == (read_at_join, 1)
    assert client.take(0.0) is None
    events.close()
    assert feed.clients == [] and feed.changed(frozenset({"flows"})) is None
    assert feed.causes == set()              # nobody watches: a change is not even kept


def test_with_a_view_open_a_migration_is_pushed_as_it_happens():
    app = _App()
    app.vm(S11, 1, WEB)
    feed = LiveFeed(app)
    app.state_changes.subscribe(feed.changed)
    client = feed.join()
    feed.current()
    app.vm(S12, 2, WEB, now=1.0)              # seen elsewhere: not believed yet
    app.dispatcher.send(app.engine.port_down(S11, 1, now=1.0), 1.0)   # now it moved
    migration = _next_event(client, "migration")
    assert migration is not None, "no migration event within 5 s"
    assert (migration["mac"], migration["from"], migration["to"]) == (
        WEB, {"server": hex(S11), "port": 1}, {"server": hex(S12), "port": 2})
    state = _next_event(client, "state")
    assert [(v["server"], v["port"]) for v in state["vms"]] == [(hex(S12), 2)]
    assert state_changes.FLOWS in state["causes"]
    feed.leave(client)


def test_a_vm_gone_from_one_read_and_back_elsewhere_in_the_next_is_a_migration():
    # A packets-only move may end the binding at its old port's loss before the VM's
    # first frame at the new port makes it again: a read between sees no VM.
    app = _App()
    app.vm(S11, 1, WEB)
    feed = LiveFeed(app)
    at_source = state_of(app.engine, set(app.datapaths))
    (vm,) = at_source["vms"]
    gone = {**at_source, "vms": []}
    back = {**at_source, "vms": [{**vm, "server": hex(S12), "port": 4}]}
    feed.state = at_source
    assert migrations(feed.state, gone, 1.0, feed._departed(gone)) == []
    feed.state = gone
    (migration,) = migrations(feed.state, back, 2.0, feed._departed(back))
    assert migration["from"] == {"server": hex(S11), "port": 1}
    assert migration["to"] == {"server": hex(S12), "port": 4}
    feed.state = back
    assert feed.departed == {}   # back: forgotten, so a later read repeats nothing
    assert migrations(feed.state, back, 3.0, feed._departed(back)) == []
