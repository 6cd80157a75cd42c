"""What the pages show, decided without I/O: a job's badge, its sparkline, times in the
runner's zone. Time is an argument."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from jeeves_runner.models import JobState, RunStatus, parse_instant
from jeeves_runner.scheduling.cron import InvalidSchedule, parse, resolve_zone

# A fire this much overdue with no run started for it makes a job `late`: the loop's own
# lateness is milliseconds, a run that has not started after a minute did not start.
LATE_AFTER = timedelta(seconds=60)
SPARK_RUNS = 20
_FAILED = frozenset({RunStatus.ERROR.value, RunStatus.TIMEOUT.value, "cancelled"})


def job_state(row: dict[str, Any], now: datetime, default_zone: tzinfo) -> JobState:
    """The badge of a page_jobs row."""
    if not row["enabled"]:
        return JobState.DISABLED
    last = row.get("last_status")
    if last == RunStatus.RUNNING.value:
        return JobState.RUNNING
    if is_late(row, now, default_zone):
        return JobState.LATE
    if last is None:
        return JobState.NEW
    return JobState.FAILING if last in _FAILED else JobState.OK


def is_late(row: dict[str, Any], now: datetime, default_zone: tzinfo) -> bool:
    """The first fire after the last run started (or after the job was made) is more than
    LATE_AFTER in the past: the runner missed it, or is behind."""
    anchor_text = row.get("last_run") or row.get("created_at")
    if not anchor_text:
        return False
    try:
        schedule = parse(row["schedule"])
        zone = resolve_zone(row["timezone"]) if row.get("timezone") else default_zone
        anchor = parse_instant(anchor_text)
    except (InvalidSchedule, ValueError):
        return False
    fire = schedule.next_after(anchor, zone)
    return fire is not None and fire < now - LATE_AFTER


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    height: int
    status: str
    failed: bool
    title: str


@dataclass(frozen=True, slots=True)
class Sparkline:
    bars: list[Bar]
    label: str  # the same facts in words: status is never colour alone
    success_rate: str


def sparkline(runs: list[tuple[str, int]], height: int = 20, bar: int = 4) -> Sparkline:
    """Bars of the last runs' durations (oldest left), each with its status."""
    if not runs:
        return Sparkline([], "no runs yet", "–")
    longest = max(ms for _, ms in runs) or 1
    bars = []
    for i, (status, ms) in enumerate(runs):
        h = max(2, round(height * ms / longest))
        bars.append(Bar(i * (bar + 1), h, status, status in _FAILED, f"{status} {duration(ms)}"))
    failed = sum(1 for b in bars if b.failed)
    ok = sum(1 for s, _ in runs if s == RunStatus.OK.value)
    label = f"last {len(runs)} runs: {ok} ok, {failed} failed"
    return Sparkline(bars, label, f"{round(100 * ok / len(runs))} %")


def duration(ms: int | None) -> str:
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def local_time(instant: str | None, zone: tzinfo) -> str:
    """An instant as the runner's zone reads it, to the second."""
    if not instant:
        return "–"
    try:
        moment = parse_instant(instant).astimezone(zone)
    except ValueError:
        return instant
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def zone_offset_minutes(instant: str | None, zone: tzinfo) -> int | None:
    """The zone's offset from UTC at that instant, in minutes east (the page's script shows
    the browser's reading beside a time only where the browser's offset differs)."""
    if not instant:
        return None
    try:
        offset = parse_instant(instant).astimezone(zone).utcoffset()
    except ValueError:
        return None
    return None if offset is None else int(offset.total_seconds() // 60)
