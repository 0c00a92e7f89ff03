"""The store client's IDL yields to the hub by slices of work, not after idle time.

The client's clock is a fake one that only the test moves: the tests count
yields for a given amount of work, whatever the machine's load.
"""

from types import SimpleNamespace

import ovs.db.idl
import pytest

from ryu_apps.store import replica as store_replica
from ryu_apps.store.schema import TABLES, schema_helper


@pytest.fixture
def clock(monkeypatch):
    """The client's monotonic clock, moved by the test only."""
    fake = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(store_replica, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


@pytest.fixture
def idl(monkeypatch, clock):
    """A replica IDL (never connected) whose yields to the hub are counted."""
    replica = store_replica.ReplicaIdl("tcp:127.0.0.1:1", schema_helper(TABLES), False,
                                       slice_rows=100)
    replica.yields = 0

    def sleep(seconds):
        assert seconds == 0
        replica.yields += 1

    monkeypatch.setattr(store_replica.eventlet, "sleep", sleep)
    yield replica
    replica.close()


def _run_applying(idl, monkeypatch, rows: int, seconds_per_row: float = 0.0,
                  clock=None) -> int:
    """``idl.run()`` with the IDL's own run replaced by one applying ``rows`` rows, each
    taking ``seconds_per_row`` on ``clock``."""
    def applying(self):
        for _ in range(rows):
            if seconds_per_row:
                clock.now += seconds_per_row
            self.cooperative_yield()

    monkeypatch.setattr(ovs.db.idl.Idl, "run", applying)
    before = idl.yields
    idl.run()
    return idl.yields - before


def test_a_small_update_after_an_idle_time_does_not_yield(idl, monkeypatch, clock):
    clock.now += store_replica.SLICE_SECONDS * 3  # idle, as between two notices
    assert _run_applying(idl, monkeypatch, rows=2) == 0


def test_rows_are_applied_in_slices_of_slice_rows(idl, monkeypatch):
    assert _run_applying(idl, monkeypatch, rows=250) == 2
    # the count starts again with each run: 99 rows are one slice
    assert _run_applying(idl, monkeypatch, rows=99) == 0


def test_a_long_application_yields_every_slice_seconds(idl, monkeypatch, clock):
    # rows of 0.4 slice each: past a slice at the 3rd and the 6th row
    yields = _run_applying(idl, monkeypatch, rows=6,
                           seconds_per_row=store_replica.SLICE_SECONDS * 0.4, clock=clock)
    assert yields == 2
