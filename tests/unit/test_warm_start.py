"""The warm-start grace policy shared by the app and the store."""

from ryu_apps.core.warm_start import WarmStart


def test_only_adds_during_the_grace_then_reconciles_in_full():
    warm = WarmStart(grace=5.0)
    warm.begin(100.0)
    assert warm.adds_only(104.9) and not warm.adds_only(105.0)
    assert warm.ready(104.0, set()) == (False, False)
    assert warm.ready(105.0, set()) == (True, False)


def test_missing_servers_are_waited_for_until_the_deadline():
    warm = WarmStart(grace=5.0, deadline=60.0)
    warm.begin(100.0)
    assert warm.ready(120.0, {"s11"}) == (False, False)
    assert warm.ready(160.5, {"s11"}) == (True, True)


def test_a_restart_begins_a_new_grace():
    warm = WarmStart(grace=5.0)
    warm.begin(100.0)
    warm.begin(200.0)
    assert warm.adds_only(203.0) and warm.ends_at() == 205.0


def test_before_any_start_nothing_waits():
    assert not WarmStart(grace=5.0).adds_only(0.0)
