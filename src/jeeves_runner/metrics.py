"""What /metrics shows, in the Prometheus text format (prometheus-client).

Events are counted as they happen (`run_finished`, `run_skipped`, `fire_lateness`) into plain
dicts: one dict update per run, no lock, on the event loop. Levels (runs in flight, waiting
for a slot, next fires, failed registrations, notification outcomes, database errors) are
read from the live objects at scrape time. A scrape takes a snapshot on the loop (copies of
dicts) and formats it in a thread, so 10,000 jobs' series never hold the loop for the whole
formatting.

Labels are bounded: job ids, queue ids, run statuses and notification outcomes; never run
ids, error texts or anything a job prints.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from jeeves_runner.clock import Clock
from jeeves_runner.models import parse_instant

PREFIX = "jeeves_runner"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Run durations, by job: few buckets, as every job has its own series.
DURATION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0)
# How long after its instant a fire started: the scheduler's own health.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
SUCCESS_STATUSES = frozenset({"ok"})
FAILURE_STATUSES = frozenset({"error", "timeout"})


class _Histogram:
    __slots__ = ("count", "counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * (size + 1)  # the last one is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect.bisect_left(bounds, value)] += 1
        self.total += value
        self.count += 1

    def copy(self) -> _Histogram:
        other = _Histogram(len(self.counts) - 1)
        other.counts = list(self.counts)
        other.total, other.count = self.total, self.count
        return other


# What the metrics read at scrape time, as little of each object as they need.


class SlotsView(Protocol):
    @property
    def waiting(self) -> int: ...


class DispatcherView(Protocol):
    @property
    def executing(self) -> int: ...

    @property
    def slots(self) -> SlotsView: ...


class FiresView(Protocol):
    def next_fires(self) -> dict[str, float]: ...


class SchedulerView(Protocol):
    @property
    def fires(self) -> FiresView: ...

    @property
    def failed_registrations(self) -> Mapping[str, object]: ...


class GatewayView(Protocol):
    @property
    def error_count(self) -> int: ...


class NotifierView(Protocol):
    @property
    def outcomes(self) -> Mapping[str, int]: ...


@dataclass(slots=True)
class Snapshot:
    """Everything one scrape shows, as plain values (safe to format in another thread)."""

    now: float
    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, _Histogram] = field(default_factory=dict)
    lateness: _Histogram = field(default_factory=lambda: _Histogram(len(LATENESS_BUCKETS)))
    last_success: dict[str, float] = field(default_factory=dict)
    last_failure: dict[str, float] = field(default_factory=dict)
    next_fires: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0
    waiting: int = 0
    failed_registrations: int = 0
    notifications: dict[str, int] = field(default_factory=dict)
    database_errors: int = 0
    queues: list[tuple[str, int, str | None]] = field(default_factory=list)


class RunnerMetrics:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._runs: dict[tuple[str, str], int] = {}
        self._durations: dict[str, _Histogram] = {}
        self._lateness = _Histogram(len(LATENESS_BUCKETS))
        self._last_success: dict[str, float] = {}
        self._last_failure: dict[str, float] = {}
        self._dispatcher: DispatcherView | None = None
        self._scheduler: SchedulerView | None = None
        self._gateway: GatewayView | None = None
        self._notifier: NotifierView | None = None

    # ---- events (called on the loop) ---------------------------------------------------

    def run_finished(self, job_id: str, status: str, duration_s: float) -> None:
        key = (job_id, status)
        self._runs[key] = self._runs.get(key, 0) + 1
        histogram = self._durations.get(job_id)
        if histogram is None:
            histogram = self._durations[job_id] = _Histogram(len(DURATION_BUCKETS))
        histogram.observe(DURATION_BUCKETS, duration_s)
        if status in SUCCESS_STATUSES:
            self._last_success[job_id] = self._clock.now().timestamp()
        elif status in FAILURE_STATUSES:
            self._last_failure[job_id] = self._clock.now().timestamp()

    def run_skipped(self, job_id: str) -> None:
        key = (job_id, "skipped")
        self._runs[key] = self._runs.get(key, 0) + 1

    def fire_lateness(self, seconds: float) -> None:
        self._lateness.observe(LATENESS_BUCKETS, max(seconds, 0.0))

    # ---- levels (read at scrape time) --------------------------------------------------

    def watch(
        self,
        dispatcher: DispatcherView | None = None,
        scheduler: SchedulerView | None = None,
        gateway: GatewayView | None = None,
        notifier: NotifierView | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._scheduler = scheduler
        self._gateway = gateway
        self._notifier = notifier

    def snapshot(self, queues: list[tuple[str, int, str | None]] | None = None) -> Snapshot:
        """On the loop: copies, so formatting can happen elsewhere while runs go on."""
        snap = Snapshot(
            now=self._clock.now().timestamp(),
            runs=dict(self._runs),
            durations={job: h.copy() for job, h in self._durations.items()},
            lateness=self._lateness.copy(),
            last_success=dict(self._last_success),
            last_failure=dict(self._last_failure),
            queues=list(queues or []),
        )
        if self._dispatcher is not None:
            snap.in_flight = self._dispatcher.executing
            snap.waiting = self._dispatcher.slots.waiting
        if self._scheduler is not None:
            snap.next_fires = self._scheduler.fires.next_fires()
            snap.failed_registrations = len(self._scheduler.failed_registrations)
        if self._gateway is not None:
            snap.database_errors = self._gateway.error_count
        if self._notifier is not None:
            snap.notifications = dict(self._notifier.outcomes)
        return snap


def render(snapshot: Snapshot) -> bytes:
    """The exposition text of one snapshot. Pure; may run in any thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


def _name(short: str) -> str:
    return f"{PREFIX}_{short}"


_DURATION_LE = [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
_LATENESS_LE = [repr(b) for b in LATENESS_BUCKETS] + ["+Inf"]


def _cumulative(le: list[str], histogram: _Histogram) -> list[tuple[str, float]]:
    running = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(le, histogram.counts, strict=True):
        running += count
        buckets.append((bound, running))
    return buckets


class _SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        runs = CounterMetricFamily(
            _name("runs_finished"), "Runs ended, by job and status", labels=["job", "status"]
        )
        for (job, status), count in sorted(s.runs.items()):
            runs.add_metric([job, status], count)
        yield runs

        durations = HistogramMetricFamily(
            _name("run_duration_seconds"), "How long runs took, by job", labels=["job"]
        )
        for job in sorted(s.durations):
            h = s.durations[job]
            durations.add_metric([job], _cumulative(_DURATION_LE, h), h.total)
        yield durations

        lateness = HistogramMetricFamily(
            _name("fire_lateness_seconds"), "How long after its scheduled instant a fire started"
        )
        lateness.add_metric([], _cumulative(_LATENESS_LE, s.lateness), s.lateness.total)
        yield lateness

        yield GaugeMetricFamily(_name("runs_in_flight"), "Runs executing now", value=s.in_flight)
        yield GaugeMetricFamily(
            _name("runs_waiting"), "Runs waiting for a free slot (maxConcurrency)", value=s.waiting
        )
        yield _by_job(
            "job_last_success_timestamp_seconds",
            "When each job last ended ok (since this runner started)",
            s.last_success,
        )
        yield _by_job(
            "job_last_failure_timestamp_seconds",
            "When each job last ended in error or timeout (since this runner started)",
            s.last_failure,
        )
        yield _by_job("job_next_fire_timestamp_seconds", "When each job fires next", s.next_fires)
        yield GaugeMetricFamily(
            _name("failed_registrations"),
            "Enabled jobs whose schedule could not be registered",
            value=s.failed_registrations,
        )

        depth = GaugeMetricFamily(_name("queue_depth"), "Pending items, by queue", labels=["queue"])
        age = GaugeMetricFamily(
            _name("queue_oldest_pending_age_seconds"),
            "Age of the oldest pending item, by queue (0 when none)",
            labels=["queue"],
        )
        for queue, pending, oldest in s.queues:
            depth.add_metric([queue], pending)
            waited = 0.0 if oldest is None else s.now - parse_instant(oldest).timestamp()
            age.add_metric([queue], round(max(waited, 0.0), 3))
        yield depth
        yield age

        notifications = CounterMetricFamily(
            _name("notifications"),
            "Slack messages due, by outcome (sent, failed, no_token)",
            labels=["outcome"],
        )
        for outcome, count in sorted(s.notifications.items()):
            notifications.add_metric([outcome], count)
        yield notifications

        yield CounterMetricFamily(
            _name("database_errors"),
            "Database reads and writes that failed (busy, full disk, damaged file)",
            value=s.database_errors,
        )


def _by_job(short: str, documentation: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(_name(short), documentation, labels=["job"])
    for job in sorted(values):
        family.add_metric([job], values[job])
    return family
