"""``bench send`` says which of the fast-send-path issue's goals a run meets (its figures beside
each bound), from the same cases its table prints."""

from __future__ import annotations

from bench.send import Case, goal_verdicts


def _production(rate: float, cpu: dict[str, float], feed_p99: float, *, senders: int = 16) -> Case:
    count = 800
    return Case(
        what="production",
        concurrency=senders,
        count=count,
        seconds=count / rate,
        latencies_ms=[50.0] * count,
        cpu_ms={**cpu, "postgres": 9.0, "rabbitmq": 9.0, "bench": 9.0},  # not LienThong's: not counted
        feed_seconds=count / rate,
        feed_ms=[100.0] * (count - 16) + [feed_p99] * 16,  # 2 %: the p99 is feed_p99
    )


def test_a_run_meeting_every_goal_is_said_met_with_its_figures() -> None:
    cpu = {"gateway": 0.9, "registry": 0.2, "exchange": 3.7, "signature": 0.01, "archive": 1.1, "hub": 0.01}
    embedded = Case("embedded", 16, 800, 800 / 141.3, [100.0] * 784 + [180.0] * 16, {"embedded": 7.5, "bench": 1.0})
    lines = goal_verdicts([_production(203.3, cpu, 185.0), _production(230.0, cpu, 900.0, senders=64), embedded])
    assert lines == [
        "production, 16 senders: 5.92 ms of LienThong CPU a document (≤ 6) met; 203.3 documents/s accepted (≥ 200)"
        " met; 203.3 documents/s in the feed (≥ 200) met; the feed's p99 185 ms (< 250) met",
        "embedded, 16 senders: 141.3 documents/s accepted (≥ 120) met; p99 180 ms (< 500) met",
    ]


def test_a_total_the_table_rounds_to_six_is_said_missed_when_above() -> None:
    cpu = {"gateway": 0.92, "registry": 0.2, "exchange": 3.82, "archive": 1.1}  # 6.04: "6.0" in the table
    [line] = goal_verdicts([_production(196.3, cpu, 260.0)])
    assert line == (
        "production, 16 senders: 6.04 ms of LienThong CPU a document (≤ 6) MISSED; 196.3 documents/s accepted"
        " (≥ 200) MISSED; 196.3 documents/s in the feed (≥ 200) MISSED; the feed's p99 260 ms (< 250) MISSED"
    )


def test_a_production_run_without_the_feed_does_not_meet_its_goal() -> None:
    case = _production(210.0, {"exchange": 4.0}, 100.0)
    case.feed_ms = []
    [line] = goal_verdicts([case])
    assert line.endswith("the feed not measured MISSED")
