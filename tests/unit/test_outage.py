"""Loss runs and outages from hand-made prober records, and properties of them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryu_apps.lab.outage import Probe, analyse, probes_from_document

MS = 1_000_000


def record(pattern: str, interval_ns: int = MS, latency_ns: int = 200_000) -> list:
    """Probes on a perfect schedule: '.' answered, 'x' lost."""
    return [Probe(seq, seq * interval_ns, None if mark == "x" else seq * interval_ns + latency_ns)
            for seq, mark in enumerate(pattern)]


def test_no_loss_means_no_outage():
    report = analyse(record("....."), MS)
    assert (report.sent, report.answered, report.lost) == (5, 5, 0)
    assert report.runs == () and report.outage_run is None
    assert report.outage_ns == 0 and report.recovered
    assert report.max_latency_ns == report.median_latency_ns == 200_000
    assert report.expected_probes == 5 and report.max_send_gap_ns == MS


def test_one_run_lasts_from_first_lost_to_first_answered_by_send_time():
    report = analyse(record("..xxx.."), MS)
    (run,) = report.runs
    assert (run.first_seq, run.last_seq, run.count) == (2, 4, 3)
    assert (run.start_ns, run.end_ns) == (2 * MS, 5 * MS)
    assert report.outage_ns == 3 * MS and report.recovered and run.recovered


def test_the_outage_is_the_longest_of_several_runs():
    report = analyse(record(".x..xxxx.xx."), MS)
    assert [(r.first_seq, r.count) for r in report.runs] == [(1, 1), (4, 4), (9, 2)]
    assert report.outage_run.first_seq == 4 and report.outage_ns == 4 * MS
    assert report.lost == 7


def test_a_tie_goes_to_the_earliest_run():
    report = analyse(record(".xx..xx."), MS)
    assert report.outage_run.first_seq == 1


def test_loss_at_the_end_is_not_recovered_and_a_lower_bound():
    report = analyse(record("...xxx"), MS)
    (run,) = report.runs
    assert not report.recovered and not run.recovered and run.end_ns is None
    assert run.duration_ns == 3 * MS  # last lost send - first lost send + interval


def test_a_longer_earlier_run_stays_the_outage_when_the_end_is_lost():
    report = analyse(record(".xxxx..x"), MS)
    assert not report.recovered
    assert report.outage_run.first_seq == 1 and report.outage_ns == 4 * MS


def test_everything_lost():
    report = analyse(record("xxxx"), MS)
    assert report.answered == 0 and not report.recovered
    assert report.max_latency_ns is None and report.median_latency_ns is None
    assert report.outage_ns == 4 * MS


def test_loss_at_the_start_counts_as_a_run():
    report = analyse(record("xx..."), MS)
    assert report.runs[0].start_ns == 0 and report.outage_ns == 2 * MS


def test_outage_uses_actual_send_times_not_the_schedule():
    probes = [Probe(0, 0, 100), Probe(1, MS, None), Probe(2, 9 * MS, 9 * MS + 5)]
    report = analyse(probes, MS)
    assert report.outage_ns == 8 * MS
    assert report.max_send_gap_ns == 8 * MS and report.expected_probes == 10


def test_slow_replies_count_as_lost_with_a_latency_limit():
    probes = record("....") + [Probe(4, 4 * MS, 60 * MS), Probe(5, 5 * MS, 5 * MS + 1)]
    assert analyse(probes, MS).lost == 0
    report = analyse(probes, MS, max_latency_ns=50 * MS)
    assert report.lost == 1 and report.late == 1 and report.outage_ns == MS
    assert report.max_latency_ns == 56 * MS  # every reply still counts for latency


def test_probes_may_come_in_any_order_and_as_plain_tuples():
    shuffled = [tuple(p) for p in reversed(record("..x."))]
    assert analyse(shuffled, MS).runs[0].first_seq == 2


def test_median_of_an_even_count():
    probes = [Probe(0, 0, 1), Probe(1, MS, MS + 3)]
    assert analyse(probes, MS).median_latency_ns == 2


@pytest.mark.parametrize("probes, message", [
    ([], "no probes"),
    ([Probe(0, 0, None), Probe(0, 1, None)], "appears twice"),
    ([Probe(0, 5, None), Probe(1, 1, None)], "sent before"),
    ([Probe(0, 5, 4)], "answered before"),
])
def test_invalid_records_are_refused(probes, message):
    with pytest.raises(ValueError, match=message):
        analyse(probes, MS)


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval"):
        analyse(record("."), 0)


def test_summary_names_the_figures():
    text = analyse(record("..xxx.x"), MS).summary()
    assert "lost 4 in 2 run(s)" in text and "outage 3.0 ms" in text
    assert "NOT recovered" in text


def test_probes_from_the_prober_document():
    document = {"interval_ns": MS, "probes": [
        {"seq": 0, "sent_ns": 10, "received_ns": 20},
        {"seq": 1, "sent_ns": 20, "received_ns": None}]}
    assert probes_from_document(document) == (MS, [Probe(0, 10, 20), Probe(1, 20, None)])
    with pytest.raises(ValueError, match="not a prober document"):
        probes_from_document({"probes": []})


patterns = st.lists(st.booleans(), min_size=1, max_size=200)


@given(patterns, st.integers(min_value=1, max_value=10 * MS))
def test_properties_of_any_record(answered, interval_ns):
    probes = record("".join("." if ok else "x" for ok in answered), interval_ns)
    report = analyse(probes, interval_ns)
    assert report.sent == len(answered) == report.answered + report.lost
    assert report.lost == sum(run.count for run in report.runs)
    assert report.recovered == answered[-1]
    assert report.outage_ns == max((r.duration_ns for r in report.runs), default=0)
    for run in report.runs:
        assert run.duration_ns == run.count * interval_ns  # perfect schedule
        assert run.recovered == (run.last_seq != len(answered) - 1)
    for before, after in zip(report.runs, report.runs[1:]):
        assert after.first_seq > before.last_seq + 1  # an answered probe between runs
    lost_seqs = {seq for run in report.runs for seq in range(run.first_seq, run.last_seq + 1)}
    assert lost_seqs == {seq for seq, ok in enumerate(answered) if not ok}
