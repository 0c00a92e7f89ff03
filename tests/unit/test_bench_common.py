"""The statistics every benchmark reports."""

import pytest

from benchmarks.common import format_table, percentile, summary


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([3, 1, 2], 0.5) == 2


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_summary_of_a_sample_and_of_nothing():
    figures = summary([4.0, 1.0, 3.0, 2.0])
    assert figures["n"] == 4 and figures["min"] == 1.0 and figures["max"] == 4.0
    assert figures["p50"] == 2.5
    assert summary([]) == {"n": 0}


def test_table_aligns_columns():
    text = format_table(["name", "ms"], [["a", 1.234], ["bb", 10]])
    assert text.splitlines()[2].endswith("1.23")
    assert len({len(line) for line in text.splitlines()}) == 1
