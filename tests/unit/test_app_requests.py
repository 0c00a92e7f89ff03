"""REST and SIGHUP requests: the caller's side posts and waits, the loop's side changes the
engine and always answers (on a fake app whose event loop runs the request at once)."""

import logging
from types import SimpleNamespace

import pytest

from ryu_apps.core.flow_plan import Plan
from ryu_apps.core.flowspec import flow, make_match
from ryu_apps.core.lifecycle import Notice
from ryu_apps.core.notification_errors import UnknownVm

requests = pytest.importorskip("ryu_apps.app.requests")
loop = pytest.importorskip("ryu_apps.app.loop_events")

MAC = "00:fa:00:00:00:01"


class FakeEngine:
    def __init__(self):
        self.notices, self.libraries = [], []

    def notify(self, notice, mac, server, template_id, now):
        if mac != MAC:
            raise UnknownVm(f"unknown VM {mac}")
        self.notices.append((notice, mac, server, template_id))
        return SimpleNamespace(plan=Plan(), message="traffic stopped, binding kept")

    def reload_conflicts(self, library, domain=None):
        return []   # every bridge has connection tracking

    def set_library(self, library, domain=None):
        self.libraries.append((library, domain))
        plan = Plan()
        if library == "changed":
            plan.for_switch(5).add(flow(5, 4, 100, make_match(in_port=1), 0xD9F0000000000000))
            plan.for_switch(6)   # a switch with no change is not read back
        return plan


class FakeApp:
    """The event loop runs each request at once; plans are confirmed (or not) at once."""

    name = "dynprov"

    def __init__(self, confirm=True):
        self.engine, self.confirm = FakeEngine(), confirm
        self.logger = logging.getLogger("test.requests")
        self.store_sync, self.failed, self.sent = None, [], []
        self.options = SimpleNamespace(store="")
        self.library_keeper = SimpleNamespace(accept=lambda library: None,
                                              candidate=lambda: "changed")
        self.domain_keepers = {}
        self.requests = requests.Requests(self)
        self._reply = None

    def send_request(self, request):
        request.src = self.name
        handle = (self.requests.apply_notice if isinstance(request, loop.ApplyNotice)
                  else self.requests.put_libraries)
        handle(request)
        return self._reply

    def reply_to_request(self, request, reply):
        self._reply = reply

    def send_plan(self, plan, on_confirmed=None):
        self.sent.append(plan)
        if self.confirm and on_confirmed is not None:
            on_confirmed()

    def handler_failed(self, where):
        self.failed.append(where)


def test_a_notification_is_applied_and_answered_once_confirmed():
    app = FakeApp()
    assert app.requests.notify(Notice.SUSPENDED, MAC, None, None) == \
        "traffic stopped, binding kept"
    assert app.engine.notices == [(Notice.SUSPENDED, MAC, None, None)]
    assert len(app.sent) == 1


def test_an_unconfirmed_notification_says_so(monkeypatch):
    monkeypatch.setattr(requests, "NOTIFY_CONFIRM_SECONDS", 0.01)
    app = FakeApp(confirm=False)
    assert app.requests.notify(Notice.SUSPENDED, MAC, None, None) == \
        "traffic stopped, binding kept (not yet confirmed by every switch)"


def test_a_refused_notification_raises_its_error_in_the_caller():
    app = FakeApp()
    with pytest.raises(UnknownVm, match="unknown VM 00:fa:00:00:00:02"):
        app.requests.notify(Notice.SUSPENDED, "00:fa:00:00:00:02", None, None)
    assert app.failed == []


def test_a_notification_that_breaks_the_engine_is_answered_and_resynchronises():
    app = FakeApp()
    app.engine.notify = lambda *args, **kwargs: 1 / 0
    with pytest.raises(RuntimeError, match="internal error while applying the notification"):
        app.requests.notify(Notice.SUSPENDED, MAC, None, None)
    assert app.failed == ["notification"]


def test_a_reload_answers_and_names_the_switches_whose_flows_changed():
    app = FakeApp()
    templates = len("changed")   # the fake library is a string
    assert app.requests.reload_library() == (True, f"library reloaded: {templates} templates, "
                                                   "1 flow changes")
    request = loop.PutLibraries("dynprov", "changed", {})
    assert app.requests.put_libraries(request) == [5]


def test_a_reload_that_breaks_the_engine_is_answered_and_resynchronises():
    app = FakeApp()
    app.engine.set_library = lambda *args, **kwargs: 1 / 0
    ok, message = app.requests.reload_library()
    assert not ok and "internal error while putting the library in force" in message
    assert app.failed == ["library reload"]


def test_sighup_only_wakes_the_reloader():
    app = FakeApp()
    app.requests.reload_wanted.set()
    app.requests._reload_on_signal()   # one round of the reloader's loop
    assert app.engine.libraries == [("changed", None)]
    assert not app.requests.reload_wanted.is_set()
