"""When the app repairs after a failure: at once, or postponed, never dropped."""

from types import SimpleNamespace

from ryu_apps.app.repairs import RepairSchedule, guarded


def test_a_resync_within_the_interval_is_postponed_not_dropped():
    schedule = RepairSchedule(5.0)
    assert schedule.resync_now("a raised", 100.0)
    assert schedule.resync_due(101.0) is None
    assert not schedule.resync_now("b raised", 102.0)
    assert schedule.resync_due(104.9) is None
    assert schedule.resync_due(105.0) == "b raised"
    assert schedule.resync_now("b raised", 105.0)
    assert schedule.resync_due(200.0) is None


def test_each_switch_is_reconciled_at_once_then_at_most_every_interval():
    schedule = RepairSchedule(5.0)
    schedule.switch_refused(1, "error 1")
    schedule.switch_refused(2, "error 2")
    assert schedule.reconciles_due(10.0) == [(1, "error 1"), (2, "error 2")]
    schedule.switch_refused(1, "error 3")
    assert schedule.reconciles_due(12.0) == []
    assert schedule.reconciles_due(15.0) == [(1, "error 3")]
    assert schedule.reconciles_due(30.0) == []


def test_a_disconnected_switch_has_nothing_due():
    schedule = RepairSchedule(5.0)
    schedule.switch_refused(1, "error")
    schedule.forget(1)
    assert schedule.reconciles_due(10.0) == []


def test_a_failure_is_first_again_after_a_quiet_minute():
    schedule = RepairSchedule(5.0)
    assert schedule.first_failure("tick", 0.0)
    assert not schedule.first_failure("tick", 30.0)
    assert schedule.first_failure("packet_in", 31.0)
    assert not schedule.first_failure("tick", 89.0)
    assert schedule.first_failure("tick", 150.0)


class _App:
    def __init__(self):
        self.failed, self.malformed_seen, self.handled = [], [], []

    def handler_failed(self, where):
        self.failed.append(where)

    def malformed(self, dpid, what):
        self.malformed_seen.append((dpid, what))


def _message(version):
    datapath = SimpleNamespace(id=7, ofproto=SimpleNamespace(OFP_VERSION=4))
    return SimpleNamespace(msg=SimpleNamespace(version=version, datapath=datapath))


def test_a_handler_that_raises_makes_the_app_resynchronise():
    @guarded
    def _packet_in(app, ev):
        app.handled.append(ev)
        raise RuntimeError("half-changed")

    app = _App()
    _packet_in(app, _message(4))
    assert app.failed == ["_packet_in"] and len(app.handled) == 1


def test_a_message_of_another_openflow_version_is_not_handled():
    @guarded
    def _packet_in(app, ev):
        app.handled.append(ev)

    app = _App()
    _packet_in(app, _message(1))
    assert app.handled == [] and app.failed == []
    assert app.malformed_seen == [(7, "OpenFlow version 1 message on an OpenFlow 1.3 "
                                      "connection")]
    _packet_in(app, SimpleNamespace())   # no OpenFlow message (a posted event)
    assert len(app.handled) == 1
