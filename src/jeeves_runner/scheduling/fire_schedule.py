"""Which job fires next: one heap of next-fire instants for every registered job.

Pure: given schedules and instants, it answers; no clock, no I/O. The scheduler loop only
peeks at the top, so idle time costs nothing and 100,000 jobs cost one tuple and one small
record each.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from jeeves_runner.models import ScheduleEntry
from jeeves_runner.scheduling.cron import InvalidSchedule, parse, resolve_zone


@dataclass(slots=True)
class _Registered:
    schedule: str
    generation: int
    zone: tzinfo
    zone_name: str | None  # the job's own zone; None: the runner's
    next_ts: float  # the instant its heap entry stands for


@dataclass(frozen=True, slots=True)
class FailedRegistration:
    schedule: str
    reason: str
    zone_name: str | None = None


@dataclass(frozen=True, slots=True)
class FirePlan:
    """Each scheduled job's next fire (UTC timestamp), as the scheduler will fire it, at one
    `version` of the plan: equal versions, equal answers. A job missing here does not fire
    (disabled, deleted, a schedule that never fires or failed to register)."""

    version: int
    next: Mapping[str, float]


@dataclass(slots=True)
class ReconcileReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.failed)


class FireSchedule:
    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        # (fire instant as a UTC timestamp, generation, job id). An entry whose generation
        # is not the job's current one is stale and dropped when it reaches the top.
        self._heap: list[tuple[float, int, str]] = []
        self._jobs: dict[str, _Registered] = {}
        self.failed: dict[str, FailedRegistration] = {}
        self._generation = 0
        # Jobs taken by pop_due whose fire has not happened yet (its rows are being prepared),
        # with the instant they fire at: still their "next" fire until `fired`.
        self._firing: dict[str, float] = {}
        # Moves whenever any job's next fire may have moved (see plan()).
        self.version = 0
        self._plan: FirePlan | None = None
        # The version at which each job was last registered afresh or removed (an edit, a
        # disable, a delete): a fire taken up before then is not the job's any more.
        self._changes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._jobs

    def reconcile(self, entries: Iterable[ScheduleEntry], now: datetime) -> ReconcileReport:
        """Bring the heap in line with the enabled jobs. A job whose schedule did not change
        keeps its next fire, so a wall clock stepped back never repeats a run. A schedule
        that failed is retried only when it changes."""
        report = ReconcileReport()
        seen: set[str] = set()
        for entry in entries:
            seen.add(entry.id)
            current = self._jobs.get(entry.id)
            if current is not None and _same(current, entry):
                continue
            failed = self.failed.get(entry.id)
            if failed is not None and _same(failed, entry):
                continue
            if self._register(entry.id, entry.schedule, now, entry.timezone):
                (report.changed if current is not None else report.added).append(entry.id)
            else:
                report.failed.append(entry.id)
        for job_id in [j for j in self._jobs if j not in seen]:
            del self._jobs[job_id]
            self._firing.pop(job_id, None)
            self.version += 1
            self._changes[job_id] = self.version
            report.removed.append(job_id)
        for job_id in [j for j in self.failed if j not in seen]:
            del self.failed[job_id]
        self._compact()
        if report.touched:
            self.version += 1
        return report

    def update_one(self, job_id: str, entry: ScheduleEntry | None, now: datetime) -> None:
        """Reconcile a single job (None: disabled or deleted) without touching the others,
        so enabling one job among 100,000 costs one lookup, not a full re-read."""
        if entry is None:
            self._jobs.pop(job_id, None)
            self.failed.pop(job_id, None)
            self._firing.pop(job_id, None)
            self.version += 1
            self._changes[job_id] = self.version
            return
        current = self._jobs.get(job_id)
        if current is not None and _same(current, entry):
            return
        failed = self.failed.get(job_id)
        if failed is not None and _same(failed, entry):
            return
        self._register(job_id, entry.schedule, now, entry.timezone)

    def _register(
        self, job_id: str, schedule: str, now: datetime, zone_name: str | None = None
    ) -> bool:
        self._jobs.pop(job_id, None)
        self.failed.pop(job_id, None)
        self._firing.pop(job_id, None)
        self.version += 1
        self._changes[job_id] = self.version
        try:
            parsed = parse(schedule)
            zone = resolve_zone(zone_name) if zone_name is not None else self.zone
            first = parsed.next_after(now, zone)
        except InvalidSchedule as exc:
            self.failed[job_id] = FailedRegistration(schedule, str(exc), zone_name)
            return False
        if first is None:
            self.failed[job_id] = FailedRegistration(
                schedule, "the schedule never fires", zone_name
            )
            return False
        self._generation += 1
        first_ts = first.timestamp()
        self._jobs[job_id] = _Registered(schedule, self._generation, zone, zone_name, first_ts)
        heapq.heappush(self._heap, (first_ts, self._generation, job_id))
        return True

    def changed_since(self, job_id: str, version: int) -> bool:
        """Was the job registered afresh (edited), disabled or deleted after `version`?"""
        return self._changes.get(job_id, -1) > version

    def fire_after(self, job_id: str, instant: datetime) -> float | None:
        """The job's first fire strictly after `instant` by its current schedule (None: not
        scheduled any more, or it never fires again)."""
        current = self._jobs.get(job_id)
        if current is None:
            return None
        nxt = parse(current.schedule).next_after(instant, current.zone)
        return None if nxt is None else nxt.timestamp()

    def instants(self, job_id: str) -> Callable[[datetime], datetime | None] | None:
        """The job's schedule as "first fire strictly after", for the catch-up decisions
        (None: not scheduled)."""
        current = self._jobs.get(job_id)
        if current is None:
            return None
        parsed = parse(current.schedule)
        zone = current.zone
        return lambda after: parsed.next_after(after, zone)

    def recompute_all(self, now: datetime) -> None:
        """Every job's next fire from `now` afresh: after the wall clock was stepped back, the
        instants on the heap lie far ahead and would silence each job for the step's length."""
        self._heap = []
        self.version += 1
        for job_id, current in list(self._jobs.items()):
            nxt = parse(current.schedule).next_after(now, current.zone)
            self._generation += 1
            current.generation = self._generation
            if nxt is None:
                del self._jobs[job_id]
                continue
            current.next_ts = nxt.timestamp()
            self._heap.append((current.next_ts, self._generation, job_id))
        heapq.heapify(self._heap)

    def next_due(self) -> float | None:
        """The earliest fire instant (UTC timestamp), or None when nothing is scheduled."""
        heap = self._heap
        while heap:
            ts, generation, job_id = heap[0]
            current = self._jobs.get(job_id)
            if current is not None and current.generation == generation:
                return ts
            heapq.heappop(heap)
        return None

    def next_fires(self) -> dict[str, float]:
        """Each scheduled job's next fire instant (UTC timestamp); for a job whose fire is
        under way (rows being prepared), the instant of that fire."""
        return dict(self.plan().next)

    def next_fire(self, job_id: str) -> float | None:
        """One job's entry of plan(), without building the plan."""
        firing = self._firing.get(job_id)
        if firing is not None:
            return firing
        current = self._jobs.get(job_id)
        return None if current is None else current.next_ts

    def plan(self) -> FirePlan:
        """Every job's next fire, built once per version: asking again while nothing moved
        costs nothing, so a GET /jobs per request does not walk 100,000 jobs."""
        plan = self._plan
        if plan is None or plan.version != self.version:
            found = {job_id: current.next_ts for job_id, current in self._jobs.items()}
            found.update(self._firing)
            plan = self._plan = FirePlan(self.version, found)
        return plan

    def pop_due(self, instant: float) -> list[str]:
        """Take every job due at or before `instant`, earliest first. Each leaves the heap
        until `reschedule` puts it back."""
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= instant:
            ts, generation, job_id = heapq.heappop(heap)
            current = self._jobs.get(job_id)
            if current is not None and current.generation == generation:
                due.append(job_id)
                self._firing[job_id] = ts
        if due:
            self.version += 1
        return due

    def move_past(self, now: datetime) -> list[str]:
        """Every job due at or before `now` moved to its first fire after `now`: fires that
        fell before the scheduler started (the plan is made before the API is up, which
        takes seconds on a busy host) were never due to a running scheduler."""
        moved = self.pop_due(now.timestamp())
        for job_id in moved:
            self._firing.pop(job_id, None)
            self.reschedule(job_id, now)
        return moved

    def fired(self, job_ids: Iterable[str], instant: float) -> None:
        """The fire at `instant` of these jobs happened (or was given up): their next fire is
        the one `reschedule` put on the heap."""
        for job_id in job_ids:
            if self._firing.get(job_id) == instant:
                del self._firing[job_id]
        self.version += 1

    def reschedule(self, job_id: str, after: datetime) -> None:
        """Put a fired job back at its first fire strictly after `after`. The caller passes
        the later of the fire instant and now, so a wall clock stepped forward fires once
        for the missed time, not once per missed slot. The fire under way stays the job's
        next fire (plan()) until `fired`."""
        current = self._jobs.get(job_id)
        if current is None:
            return
        self.version += 1
        nxt = parse(current.schedule).next_after(after, current.zone)
        if nxt is None:
            del self._jobs[job_id]
            return
        current.next_ts = nxt.timestamp()
        heapq.heappush(self._heap, (current.next_ts, current.generation, job_id))

    def _compact(self) -> None:
        # Stale entries are dropped lazily at the top; rebuild when they dominate.
        if len(self._heap) > 2 * len(self._jobs) + 64:
            self._heap = [e for e in self._heap if self._is_current(e)]
            heapq.heapify(self._heap)

    def _is_current(self, entry: tuple[float, int, str]) -> bool:
        current = self._jobs.get(entry[2])
        return current is not None and current.generation == entry[1]


def _same(known: _Registered | FailedRegistration, entry: ScheduleEntry) -> bool:
    return known.schedule == entry.schedule and known.zone_name == entry.timezone


def utc_from_timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
