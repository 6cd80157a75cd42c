"""metrics.py: events counted, levels read at scrape time, the text read back by
prometheus-client's own parser."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any, ClassVar

from prometheus_client.parser import text_string_to_metric_families

from jeeves_runner.clock import FakeClock
from jeeves_runner.metrics import RunnerMetrics, render

NOW = datetime(2026, 3, 2, 1, 0, 0, tzinfo=UTC)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


class _Slots:
    waiting = 3


class _Dispatcher:
    executing = 2
    slots = _Slots()


class _Fires:
    def next_fires(self) -> dict[str, float]:
        return {"a": NOW.timestamp() + 60}


class _Scheduler:
    fires = _Fires()
    failed_registrations: ClassVar[dict[str, object]] = {"bad": object()}


class _Gateway:
    error_count = 4


class _Notifier:
    outcomes: ClassVar[Counter[str]] = Counter({"sent": 5, "failed": 1})


def test_events_and_levels_as_prometheus_reads_them() -> None:
    clock = FakeClock(NOW)
    metrics = RunnerMetrics(clock)
    metrics.run_finished("a", "ok", 0.5)
    clock.advance(10)
    metrics.run_finished("a", "error", 70.0)
    metrics.run_finished("b", "timeout", 4000.0)
    metrics.run_skipped("a")
    metrics.fire_lateness(0.002)
    metrics.fire_lateness(-0.001)  # the clock said "early": counted as on time
    metrics.watch(_Dispatcher(), _Scheduler(), _Gateway(), _Notifier())
    oldest = "2026-03-02T00:59:00.000Z"
    found = samples(render(metrics.snapshot([("mail", 7, oldest), ("idle", 0, None)])))

    assert value(found, "jeeves_runner_runs_finished_total", job="a", status="ok") == 1
    assert value(found, "jeeves_runner_runs_finished_total", job="a", status="error") == 1
    assert value(found, "jeeves_runner_runs_finished_total", job="a", status="skipped") == 1
    assert value(found, "jeeves_runner_runs_finished_total", job="b", status="timeout") == 1
    assert value(found, "jeeves_runner_run_duration_seconds_count", job="a") == 2
    assert value(found, "jeeves_runner_run_duration_seconds_sum", job="a") == 70.5
    assert value(found, "jeeves_runner_run_duration_seconds_bucket", job="a", le="1.0") == 1
    assert value(found, "jeeves_runner_run_duration_seconds_bucket", job="a", le="60.0") == 1
    assert value(found, "jeeves_runner_run_duration_seconds_bucket", job="a", le="300.0") == 2
    assert value(found, "jeeves_runner_run_duration_seconds_bucket", job="b", le="3600.0") == 0
    assert value(found, "jeeves_runner_run_duration_seconds_bucket", job="b", le="+Inf") == 1
    assert value(found, "jeeves_runner_fire_lateness_seconds_count") == 2
    assert value(found, "jeeves_runner_fire_lateness_seconds_bucket", le="0.001") == 1
    assert value(found, "jeeves_runner_fire_lateness_seconds_bucket", le="0.005") == 2
    assert value(found, "jeeves_runner_job_last_success_timestamp_seconds", job="a") == (
        NOW.timestamp()
    )
    assert value(found, "jeeves_runner_job_last_failure_timestamp_seconds", job="a") == (
        NOW.timestamp() + 10
    )
    assert value(found, "jeeves_runner_job_last_failure_timestamp_seconds", job="b") == (
        NOW.timestamp() + 10
    )
    assert ("jeeves_runner_job_last_success_timestamp_seconds", (("job", "b"),)) not in found
    assert value(found, "jeeves_runner_job_next_fire_timestamp_seconds", job="a") == (
        NOW.timestamp() + 60
    )
    assert value(found, "jeeves_runner_runs_in_flight") == 2
    assert value(found, "jeeves_runner_runs_waiting") == 3
    assert value(found, "jeeves_runner_failed_registrations") == 1
    assert value(found, "jeeves_runner_queue_depth", queue="mail") == 7
    assert value(found, "jeeves_runner_queue_depth", queue="idle") == 0
    # now is NOW + 10 s; the oldest item was made at NOW - 60 s
    assert value(found, "jeeves_runner_queue_oldest_pending_age_seconds", queue="mail") == 70
    assert value(found, "jeeves_runner_queue_oldest_pending_age_seconds", queue="idle") == 0
    assert value(found, "jeeves_runner_notifications_total", outcome="sent") == 5
    assert value(found, "jeeves_runner_notifications_total", outcome="failed") == 1
    assert value(found, "jeeves_runner_database_errors_total") == 4


def test_an_idle_runner_shows_every_family_with_zero_levels() -> None:
    metrics = RunnerMetrics(FakeClock(NOW))
    text = render(metrics.snapshot())
    names = {f.name for f in text_string_to_metric_families(text.decode())}
    assert names == {
        "jeeves_runner_runs_finished",
        "jeeves_runner_run_duration_seconds",
        "jeeves_runner_fire_lateness_seconds",
        "jeeves_runner_runs_in_flight",
        "jeeves_runner_runs_waiting",
        "jeeves_runner_job_last_success_timestamp_seconds",
        "jeeves_runner_job_last_failure_timestamp_seconds",
        "jeeves_runner_job_next_fire_timestamp_seconds",
        "jeeves_runner_failed_registrations",
        "jeeves_runner_queue_depth",
        "jeeves_runner_queue_oldest_pending_age_seconds",
        "jeeves_runner_notifications",
        "jeeves_runner_database_errors",
    }
    found = samples(text)
    assert value(found, "jeeves_runner_runs_in_flight") == 0
    assert value(found, "jeeves_runner_database_errors_total") == 0


def test_a_snapshot_is_not_changed_by_later_events() -> None:
    metrics = RunnerMetrics(FakeClock(NOW))
    metrics.run_finished("a", "ok", 1.0)
    snapshot = metrics.snapshot()
    metrics.run_finished("a", "ok", 1.0)
    found = samples(render(snapshot))
    assert value(found, "jeeves_runner_runs_finished_total", job="a", status="ok") == 1
    assert value(found, "jeeves_runner_run_duration_seconds_count", job="a") == 1
