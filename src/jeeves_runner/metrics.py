"""What /metrics shows, in the Prometheus text format.

Events are counted as they happen (`run_finished`, `run_skipped`, `fire_lateness`), on the
event loop, without locks. Levels (runs in flight, waiting for a slot, next fires, failed
registrations, notification outcomes, database errors) are read from the live objects at
scrape time.

Cost at 10,000 jobs (130,000 samples, 9.5 MB of text) is the design constraint:
- per-job values are immutable tuples, replaced on each run, so a snapshot on the loop is a
  few shallow dict copies (under a millisecond), and formatting happens in a thread;
- each job's run and duration lines are written as text when the job's run ends and kept, so
  a scrape joins strings already made (other lines are rebuilt only when their value changed);
- the text is written here rather than by prometheus-client's `generate_latest` (about 9 µs
  per sample, over a second here); tests hold the bytes equal to `generate_latest`'s over the
  same values and read them back with prometheus-client's parser.

Labels are bounded: job ids, queue ids, run statuses and notification outcomes; never run
ids, error texts or anything a job prints.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

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

T = TypeVar("T")


class Histogram(NamedTuple):
    """Immutable: each observation makes a new one, so a copied reference never changes."""

    counts: tuple[int, ...]  # per bucket, not cumulative; the last is +Inf
    total: float
    observations: int

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls((0,) * (len(bounds) + 1), 0.0, 0)

    def observe(self, bounds: tuple[float, ...], value: float) -> Histogram:
        index = bisect.bisect_left(bounds, value)
        counts = self.counts
        return Histogram(
            (*counts[:index], counts[index] + 1, *counts[index + 1 :]),
            self.total + value,
            self.observations + 1,
        )


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


RunCounts = tuple[tuple[str, int], ...]  # (status, count), by status


@dataclass(slots=True)
class Snapshot:
    """Everything one scrape shows, as immutable values (safe to format in another thread)."""

    now: float
    runs: dict[str, RunCounts] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=dict)
    lateness: Histogram = field(default_factory=lambda: Histogram.empty(LATENESS_BUCKETS))
    last_success: dict[str, float] = field(default_factory=dict)
    last_failure: dict[str, float] = field(default_factory=dict)
    next_fires: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0
    waiting: int = 0
    failed_registrations: int = 0
    notifications: dict[str, int] = field(default_factory=dict)
    database_errors: int = 0
    queues: list[tuple[str, int, str | None]] = field(default_factory=list)


class TextCache:
    """Each job's lines of one family, with the value they were made from."""

    def __init__(self) -> None:
        self._lines: dict[str, dict[str, tuple[object, str]]] = {}

    def lines(self, family: str, job: str, value: T, build: Callable[[str, T], str]) -> str:
        kept = self._lines.setdefault(family, {})
        hit = kept.get(job)
        if hit is not None and hit[0] == value:
            return hit[1]
        text = build(job, value)
        kept[job] = (value, text)
        return text

    def forget_missing(self, family: str, present: Mapping[str, object]) -> None:
        kept = self._lines.get(family)
        if kept is not None and len(kept) > len(present):
            for job in [j for j in kept if j not in present]:
                del kept[job]


class RunnerMetrics:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._runs: dict[str, RunCounts] = {}
        self._durations: dict[str, Histogram] = {}
        self._lateness = Histogram.empty(LATENESS_BUCKETS)
        self._last_success: dict[str, float] = {}
        self._last_failure: dict[str, float] = {}
        self._dispatcher: DispatcherView | None = None
        self._scheduler: SchedulerView | None = None
        self._gateway: GatewayView | None = None
        self._notifier: NotifierView | None = None
        self.text_cache = TextCache()

    # ---- events (called on the loop) ---------------------------------------------------

    def run_finished(self, job_id: str, status: str, duration_s: float) -> None:
        self._count(job_id, status)
        histogram = self._durations.get(job_id) or Histogram.empty(DURATION_BUCKETS)
        histogram = self._durations[job_id] = histogram.observe(DURATION_BUCKETS, duration_s)
        # The job's lines are written now (about 10 µs, beside a run's milliseconds), so a
        # scrape after 10,000 jobs ran only joins them.
        self.text_cache.lines("durations", job_id, histogram, _duration_lines)
        if status in SUCCESS_STATUSES:
            self._last_success[job_id] = self._clock.now().timestamp()
        elif status in FAILURE_STATUSES:
            self._last_failure[job_id] = self._clock.now().timestamp()

    def run_skipped(self, job_id: str) -> None:
        self._count(job_id, "skipped")

    def fire_lateness(self, seconds: float) -> None:
        self._lateness = self._lateness.observe(LATENESS_BUCKETS, max(seconds, 0.0))

    def forget_job(self, job_id: str) -> None:
        """A job deleted: its series leave /metrics (call from where jobs are removed)."""
        for values in (self._runs, self._durations, self._last_success, self._last_failure):
            values.pop(job_id, None)

    def _count(self, job_id: str, status: str) -> None:
        counts = dict(self._runs.get(job_id, ()))
        counts[status] = counts.get(status, 0) + 1
        runs = self._runs[job_id] = tuple(sorted(counts.items()))
        self.text_cache.lines("runs", job_id, runs, _runs_lines)

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
        """On the loop: shallow copies of immutable values, so formatting can happen in
        another thread while runs go on."""
        snap = Snapshot(
            now=self._clock.now().timestamp(),
            runs=dict(self._runs),
            durations=dict(self._durations),
            lateness=self._lateness,
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

    def render(self, snapshot: Snapshot) -> bytes:
        """The text of a snapshot, reusing each job's lines while its values are unchanged.
        One scrape at a time per cache (the /metrics route sees to it)."""
        return render(snapshot, self.text_cache)


# ---- the text format --------------------------------------------------------------------

_RUNS = f"{PREFIX}_runs_finished_total"
_DURATION = f"{PREFIX}_run_duration_seconds"
_DURATION_TAILS = [f'",le="{b!r}"}} ' for b in DURATION_BUCKETS] + ['",le="+Inf"} ']
_LATENESS_LE = [repr(b) for b in LATENESS_BUCKETS] + ["+Inf"]


def render(snapshot: Snapshot, cache: TextCache | None = None) -> bytes:
    """The exposition text (Prometheus text format 0.0.4) of one snapshot."""
    s = snapshot
    cache = cache if cache is not None else TextCache()
    out: list[str] = []
    add = out.append

    _header(out, "runs_finished_total", "Runs ended, by job and status", "counter")
    for job in sorted(s.runs):
        add(cache.lines("runs", job, s.runs[job], _runs_lines))
    cache.forget_missing("runs", s.runs)

    _header(out, "run_duration_seconds", "How long runs took, by job", "histogram")
    for job in sorted(s.durations):
        add(cache.lines("durations", job, s.durations[job], _duration_lines))
    cache.forget_missing("durations", s.durations)

    name = f"{PREFIX}_fire_lateness_seconds"
    _header(
        out,
        "fire_lateness_seconds",
        "How long after its scheduled instant a fire started",
        "histogram",
    )
    running = 0
    for le, count in zip(_LATENESS_LE, s.lateness.counts, strict=True):
        running += count
        add(f'{name}_bucket{{le="{le}"}} {_number(running)}\n')
    add(f"{name}_count {_number(s.lateness.observations)}\n")
    add(f"{name}_sum {_number(s.lateness.total)}\n")

    _gauge(out, "runs_in_flight", "Runs executing now", s.in_flight)
    _gauge(out, "runs_waiting", "Runs waiting for a free slot (maxConcurrency)", s.waiting)
    for short, documentation, values in (
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
        _header(out, short, documentation, "gauge")
        build = _gauge_line(f"{PREFIX}_{short}")
        for job in sorted(values):
            add(cache.lines(short, job, values[job], build))
        cache.forget_missing(short, values)
    _gauge(
        out,
        "failed_registrations",
        "Enabled jobs whose schedule could not be registered",
        s.failed_registrations,
    )

    _header(out, "queue_depth", "Pending items, by queue", "gauge")
    for queue, pending, _ in s.queues:
        add(f'{PREFIX}_queue_depth{{queue="{_escape(queue)}"}} {_number(pending)}\n')
    _header(
        out,
        "queue_oldest_pending_age_seconds",
        "Age of the oldest pending item, by queue (0 when none)",
        "gauge",
    )
    for queue, _, oldest in s.queues:
        waited = 0.0 if oldest is None else s.now - parse_instant(oldest).timestamp()
        add(
            f'{PREFIX}_queue_oldest_pending_age_seconds{{queue="{_escape(queue)}"}} '
            f"{_number(round(max(waited, 0.0), 3))}\n"
        )

    _header(
        out,
        "notifications_total",
        "Slack messages due, by outcome (sent, failed, no_token)",
        "counter",
    )
    for outcome, count in sorted(s.notifications.items()):
        add(f'{PREFIX}_notifications_total{{outcome="{_escape(outcome)}"}} {_number(count)}\n')
    _header(
        out,
        "database_errors_total",
        "Database reads and writes that failed (busy, full disk, damaged file)",
        "counter",
    )
    add(f"{PREFIX}_database_errors_total {_number(s.database_errors)}\n")
    return "".join(out).encode("utf-8")


def _gauge_line(metric: str) -> Callable[[str, float], str]:
    def build(job: str, value: float) -> str:
        return f'{metric}{{job="{_escape(job)}"}} {_number(value)}\n'

    return build


def _runs_lines(job: str, counts: RunCounts) -> str:
    label = _escape(job)
    return "".join(
        f'{_RUNS}{{job="{label}",status="{_escape(status)}"}} {_number(count)}\n'
        for status, count in counts
    )


def _duration_lines(job: str, h: Histogram) -> str:
    label = _escape(job)
    head = f'{_DURATION}_bucket{{job="{label}'
    lines = []
    running = 0
    for tail, count in zip(_DURATION_TAILS, h.counts, strict=True):
        running += count
        # Inline for the usual count: a call per sample is a third of a cold render.
        shown = f"{running}.0" if running < 1_000_000 else _number(running)
        lines.append(f"{head}{tail}{shown}\n")
    lines.append(f'{_DURATION}_count{{job="{label}"}} {_number(h.observations)}\n')
    lines.append(f'{_DURATION}_sum{{job="{label}"}} {_number(h.total)}\n')
    return "".join(lines)


def _escape(value: str) -> str:
    """A label value as the text format quotes it."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _number(value: float) -> str:
    """Go's float formatting, as Prometheus and prometheus-client write it."""
    if isinstance(value, int) and 0 <= value < 1_000_000:
        return f"{value}.0"  # the common case: a count
    f = float(value)
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    text = repr(f)
    dot = text.find(".")
    if f > 0 and dot > 6:  # Go switches to an exponent sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _header(out: list[str], short: str, documentation: str, kind: str) -> None:
    out.append(f"# HELP {PREFIX}_{short} {documentation}\n# TYPE {PREFIX}_{short} {kind}\n")


def _gauge(out: list[str], short: str, documentation: str, value: float) -> None:
    _header(out, short, documentation, "gauge")
    out.append(f"{PREFIX}_{short} {_number(value)}\n")
