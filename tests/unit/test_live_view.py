"""The live view's parts (rest/live_view.py): bounded client queues, migrations seen
between two states, the feed's first event, the page served without a token."""

from __future__ import annotations

import json

from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.identifiers import PrefixScheme
from ryu_apps.loaders.library_files import load_library
from ryu_apps.rest import live_view
from ryu_apps.rest.live_view import Client, LiveFeed, migrations, state_of, stream
from tests.support.fake_switches import FakeSwitches
from tests.support.small_fabric import S11, S12, bring_up

LIBRARY = load_library("templates")
WEB = "00:fa:00:00:00:01"


class _App:
    def __init__(self):
        self.engine = ProvisioningEngine(LIBRARY, PrefixScheme(16))
        self.switches = FakeSwitches()
        bring_up(self.engine, self.switches.apply)
        self.datapaths = {S11: object()}

    def vm(self, dpid, port, mac, now=0.0):
        self.switches.apply(self.engine.packet_in(dpid, port, mac, b"x", now=now).plan)


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
