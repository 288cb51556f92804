"""The throughput rows every task's report section shares (``evaluation.report``)."""

from __future__ import annotations

from coffea_mlreco.evaluation.report import event_rates, throughput_table


def test_event_rates_skip_methods_without_events_or_time() -> None:
    counts = {"a": 100, "b": 0, "c": 50}
    seconds = {"a": 2.0, "b": 1.0, "c": 0.0}
    assert event_rates(counts, seconds, ["c", "b", "a", "d"]) == {"a": 50.0}


def test_throughput_table_rows() -> None:
    table = throughput_table({"a": 12345.6, "b": 2.25}, {"a": "Method A"}, "Rates", digits=1)
    assert "<caption>Rates</caption>" in table
    assert "<th>Method</th><th>Events / s</th>" in table
    assert "<td>Method A</td><td>12,345.6</td>" in table and "<td>b</td><td>2.2</td>" in table
