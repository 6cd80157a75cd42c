"""Catch-up decisions: which scheduled instants were missed (the runner was stopped, the
machine suspended, the wall clock stepped forward) and which of them run now. Pure: the
schedule comes in as a function, the time as an argument.

Every missed instant is recorded (one `missed` row per job and gap); what runs depends on
the job's `catchup`: `skip` runs none, `once` runs the latest, `all` runs each in order, at
most `catchup_max` (the latest ones). Only instants within `catchup_window_ms` of now run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

# A gap longer than this many instants is counted no further (a job firing every second,
# down for a month): the row says "at least".
COUNT_CAP = 100_000


@dataclass(frozen=True, slots=True)
class MissedInstants:
    """The instants of one schedule in a gap: how many, the first and the last, and the
    latest `keep` of them (oldest first)."""

    count: int
    first: datetime | None
    last: datetime | None
    latest: tuple[datetime, ...]
    capped: bool = False


@dataclass(frozen=True, slots=True)
class CatchupPlan:
    missed: MissedInstants
    run: tuple[datetime, ...]  # instants to run now, oldest first


NextAfter = Callable[[datetime], datetime | None]


def missed_instants(
    next_after: NextAfter, after: datetime, until: datetime, keep: int, cap: int = COUNT_CAP
) -> MissedInstants:
    """The instants strictly after `after` and at or before `until`."""
    count = 0
    first: datetime | None = None
    last: datetime | None = None
    latest: list[datetime] = []
    at = next_after(after)
    while at is not None and at <= until:
        if count >= cap:
            return MissedInstants(count, first, last, tuple(latest), capped=True)
        count += 1
        first = first or at
        last = at
        latest.append(at)
        if len(latest) > keep:
            del latest[0]
        at = next_after(at)
    return MissedInstants(count, first, last, tuple(latest))


def plan_catchup(
    policy: str, most: int, window_ms: int, missed: MissedInstants, now: datetime
) -> CatchupPlan:
    """What runs for `missed`: none (`skip`), the latest (`once`) or the latest `most`
    (`all`), of those at most `window_ms` old (an instant exactly at the window's edge
    still runs)."""
    oldest = now - timedelta(milliseconds=window_ms)
    eligible = [at for at in missed.latest if at >= oldest]
    if policy == "once":
        run = eligible[-1:]
    elif policy == "all":
        run = eligible[-most:] if most > 0 else []
    else:
        run = []
    return CatchupPlan(missed, tuple(run))


def split_gap(
    next_after: NextAfter, due: datetime, now: datetime, on_time_s: float
) -> tuple[datetime | None, datetime | None]:
    """A fire taken up at `now` for the instant `due`: when the job's next instant after
    `due` is also past, the loop slept through a gap (a suspend, a wall clock stepped
    forward). Returns (the end of the gap: the last missed instant, or None when there is
    no gap; the instant to fire as usual: the latest past one if it is within `on_time_s`
    of now, else None)."""
    following = next_after(due)
    if following is None or following > now:
        return None, due  # no gap: `due` is an ordinary (maybe late) fire
    latest = due
    at: datetime | None = following
    steps = 0
    while at is not None and at <= now and steps < COUNT_CAP:
        latest = at
        at = next_after(at)
        steps += 1
    if (now - latest).total_seconds() <= on_time_s:
        # The latest instant is on time: it fires as usual; the gap ends just before it.
        return latest - timedelta(microseconds=1), latest
    return latest, None
