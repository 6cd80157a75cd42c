"""metrics.py: events counted, levels read at scrape time, the text read back by
prometheus-client's own parser."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families

from jeeves_runner.clock import FakeClock
from jeeves_runner.metrics import (
    DURATION_BUCKETS,
    LATENESS_BUCKETS,
    Histogram,
    RunnerMetrics,
    Snapshot,
    render,
)

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


def reference(s: Snapshot) -> bytes:
    """The same snapshot through prometheus-client's own families and `generate_latest`."""

    def cumulative(le: list[str], h: Histogram) -> list[tuple[str, float]]:
        return list(zip(le, itertools.accumulate(h.counts), strict=True))

    duration_le = [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
    lateness_le = [repr(b) for b in LATENESS_BUCKETS] + ["+Inf"]
    families: list[Metric] = []
    runs = CounterMetricFamily(
        "jeeves_runner_runs_finished", "Runs ended, by job and status", labels=["job", "status"]
    )
    for job in sorted(s.runs):
        for status, count in s.runs[job]:
            runs.add_metric([job, status], count)
    families.append(runs)
    durations = HistogramMetricFamily(
        "jeeves_runner_run_duration_seconds", "How long runs took, by job", labels=["job"]
    )
    for job in sorted(s.durations):
        h = s.durations[job]
        durations.add_metric([job], cumulative(duration_le, h), h.total)
    families.append(durations)
    lateness = HistogramMetricFamily(
        "jeeves_runner_fire_lateness_seconds",
        "How long after its scheduled instant a fire started",
    )
    lateness.add_metric([], cumulative(lateness_le, s.lateness), s.lateness.total)
    families.append(lateness)
    families.append(
        GaugeMetricFamily("jeeves_runner_runs_in_flight", "Runs executing now", value=s.in_flight)
    )
    families.append(
        GaugeMetricFamily(
            "jeeves_runner_runs_waiting",
            "Runs waiting for a free slot (maxConcurrency)",
            value=s.waiting,
        )
    )
    for name, doc, values in (
        (
            "job_last_success_timestamp_seconds",
            "When each job last ended ok (since this runner started)",
            s.last_success,
        ),
        (
            "job_last_failure_timestamp_seconds",
            "When each job last ended in error or timeout (since this runner started)",
            s.last_failure,
        ),
        ("job_next_fire_timestamp_seconds", "When each job fires next", s.next_fires),
    ):
        family = GaugeMetricFamily(f"jeeves_runner_{name}", doc, labels=["job"])
        for job in sorted(values):
            family.add_metric([job], values[job])
        families.append(family)
    families.append(
        GaugeMetricFamily(
            "jeeves_runner_failed_registrations",
            "Enabled jobs whose schedule could not be registered",
            value=s.failed_registrations,
        )
    )
    depth = GaugeMetricFamily(
        "jeeves_runner_queue_depth", "Pending items, by queue", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "jeeves_runner_queue_oldest_pending_age_seconds",
        "Age of the oldest pending item, by queue (0 when none)",
        labels=["queue"],
    )
    for queue, pending, oldest in s.queues:
        depth.add_metric([queue], pending)
        waited = 0.0 if oldest is None else s.now - datetime.fromisoformat(oldest).timestamp()
        age.add_metric([queue], round(max(waited, 0.0), 3))
    families += [depth, age]
    notifications = CounterMetricFamily(
        "jeeves_runner_notifications",
        "Slack messages due, by outcome (sent, failed, no_token)",
        labels=["outcome"],
    )
    for outcome, count in sorted(s.notifications.items()):
        notifications.add_metric([outcome], count)
    families.append(notifications)
    families.append(
        CounterMetricFamily(
            "jeeves_runner_database_errors",
            "Database reads and writes that failed (busy, full disk, damaged file)",
            value=s.database_errors,
        )
    )

    class Collector:
        def collect(self) -> list[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())  # type: ignore[arg-type]
    return generate_latest(registry)


def busy_metrics() -> RunnerMetrics:
    clock = FakeClock(NOW)
    metrics = RunnerMetrics(clock)
    for n, job in enumerate(["a", "b.c", 'odd"\\name\n', "z-9", "big"]):
        metrics.run_finished(job, "ok", 0.25 * n)
        clock.advance(1234.5678)
        metrics.run_finished(job, ("error", "timeout", "ok")[n % 3], 7.5e3 * n + 0.1)
        metrics.run_skipped(job)
    metrics.fire_lateness(0.0005)
    metrics.fire_lateness(123.456)
    metrics.watch(_Dispatcher(), _Scheduler(), _Gateway(), _Notifier())
    return metrics


def test_the_text_is_byte_for_byte_what_prometheus_client_writes() -> None:
    metrics = busy_metrics()
    snapshot = metrics.snapshot([("mail", 7, "2026-03-02T00:59:00.000Z"), ("q\\2", 0, None)])
    assert render(snapshot) == reference(snapshot)
    # counts beyond the short path for small ones, and sums Go writes with an exponent
    big = (1_000_123, *(0,) * len(LATENESS_BUCKETS))
    snapshot.lateness = Histogram(big, 12_345_678.9, 1_000_123)
    assert render(snapshot) == reference(snapshot)


def test_kept_lines_are_reused_only_while_their_values_hold() -> None:
    metrics = busy_metrics()
    first = metrics.snapshot()
    assert metrics.render(first) == reference(first)
    metrics.run_finished("a", "ok", 99.0)
    metrics.run_finished("new", "error", 1.0)
    second = metrics.snapshot()
    assert metrics.render(second) == reference(second)
    # a job that is gone (its values dropped) is dropped from the text as well
    third = metrics.snapshot()
    del third.runs["new"], third.durations["new"], third.last_failure["new"]
    assert metrics.render(third) == reference(third)
    assert b'job="new"' not in metrics.render(third)


def test_a_forgotten_job_leaves_every_family() -> None:
    metrics = busy_metrics()
    metrics.render(metrics.snapshot())
    metrics.forget_job("b.c")
    text = metrics.render(metrics.snapshot())
    assert b'job="b.c"' not in text
    assert b'job="z-9"' in text
