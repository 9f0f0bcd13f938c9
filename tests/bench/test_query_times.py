"""bench.query_times: the histogram read from /metrics text, differences of two readings,
and percentiles interpolated as Prometheus's histogram_quantile does."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench import query_times

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def _text(*processes: list[tuple[str, float]]) -> str:
    """/metrics text as several processes would give it (one registry each, concatenated
    samples summed by the reader as a multiprocess collector sums them)."""
    texts = []
    for observations in processes:
        registry = CollectorRegistry()
        histogram = Histogram(
            query_times.HISTOGRAM, "q", ["query"], buckets=BUCKETS, registry=registry
        )
        for query, seconds in observations:
            histogram.labels(query).observe(seconds)
        texts.append(generate_latest(registry).decode())
    return "".join(texts)


def test_buckets_are_summed_over_processes_and_differenced() -> None:
    before = query_times.read_buckets(_text([("select request", 0.002)]))
    after = query_times.read_buckets(
        _text(
            [("select request", 0.002), ("select request", 0.004)],
            [("insert request", 0.03), ("select request", 0.0005)],
        )
    )
    assert after["select request"]["+Inf"] == 3
    moved = query_times.moved(after, before)
    assert moved["select request"]["+Inf"] == 2
    assert moved["select request"]["0.001"] == 1
    assert moved["insert request"]["+Inf"] == 1
    assert query_times.moved(before, before) == {}
    assert query_times.total([moved, moved])["insert request"]["+Inf"] == 2


def test_quantiles_interpolate_within_the_bucket_like_prometheus() -> None:
    # 100 observations: 50 under 1 ms, 40 between 1 and 2.5 ms, 10 between 5 and 10 ms.
    counts = {"0.001": 50, "0.0025": 90, "0.005": 90, "0.01": 100, "+Inf": 100}
    assert query_times.quantile(0.5, counts) == pytest.approx(0.001)
    assert query_times.quantile(0.25, counts) == pytest.approx(0.0005)
    assert query_times.quantile(0.7, counts) == pytest.approx(0.001 + 0.0015 * 0.5)
    assert query_times.quantile(0.95, counts) == pytest.approx(0.005 + 0.005 * 0.5)
    # Past the last finite bound the histogram can only say "at least that".
    assert query_times.quantile(0.99, {"0.1": 0, "+Inf": 10}) == pytest.approx(0.1)


def test_the_table_names_the_busiest_query_first_and_judges_the_objective() -> None:
    buckets = query_times.read_buckets(
        _text([("select request", 0.002)] * 5 + [("insert request", 0.2)])
    )
    rows = query_times.rows(buckets)
    assert [row["query"] for row in rows] == ["select request", "insert request"]
    lines = query_times.markdown({"submit": buckets})
    assert any("`select request` | 5 |" in line for line in lines)
    assert "NOT met" in lines[-1]
    # A bulk statement (many records each) is shown but judged apart.
    judged = query_times.markdown({"import": buckets}, bulk={"insert request"})
    assert " met (the highest: `select request`" in judged[-1]
    assert "Judged apart, as bulk statements of many records each: `insert request`." in judged[-1]
