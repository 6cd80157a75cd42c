"""scheduling/catchup.py: missed instants and what runs for them, in tables: window edges,
DST gaps and repeats, `all` capped, clock jumps (the gap a late fire stands for)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from jeeves_runner.scheduling.catchup import (
    MissedInstants,
    missed_instants,
    plan_catchup,
    split_gap,
)
from jeeves_runner.scheduling.cron import parse

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def every(expression: str, zone: tzinfo = UTC) -> Callable[[datetime], datetime | None]:
    parsed = parse(expression)
    return lambda after: parsed.next_after(after, zone)


def minutes(*values: int) -> tuple[datetime, ...]:
    return tuple(T0 + timedelta(minutes=m) for m in values)


@pytest.mark.parametrize(
    ("after", "until", "keep", "count", "latest"),
    [
        (T0, T0 + timedelta(minutes=3), 10, 3, minutes(1, 2, 3)),  # `until` is inclusive
        (T0, T0 + timedelta(minutes=3, seconds=-1), 10, 2, minutes(1, 2)),
        (T0, T0 + timedelta(minutes=30), 2, 30, minutes(29, 30)),  # only the latest kept
        (T0, T0 + timedelta(seconds=59), 10, 0, ()),
        (T0 - timedelta(microseconds=1), T0, 10, 1, minutes(0)),  # `after` is exclusive
    ],
)
def test_missed_instants_of_a_gap(
    after: datetime, until: datetime, keep: int, count: int, latest: tuple[datetime, ...]
) -> None:
    found = missed_instants(every("* * * * *"), after, until, keep)
    assert (found.count, found.latest) == (count, latest)
    if count:
        assert found.first == T0 + timedelta(minutes=1) or after < T0
        assert found.last == latest[-1]


def test_a_huge_gap_is_counted_up_to_the_cap() -> None:
    found = missed_instants(every("* * * * * *"), T0, T0 + timedelta(hours=1), 1, cap=500)
    assert (found.count, found.capped) == (500, True)


def test_dst_gap_and_repeat_neither_skip_nor_double() -> None:
    # Berlin 2026-03-29: 02:00-03:00 does not exist; a job at 02:30 fires once, at 03:30 CEST
    # (croner's rule). New York 2026-11-01: 01:30 exists twice; the job fires once.
    night = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    found = missed_instants(every("30 2 * * *", BERLIN), night, night + timedelta(days=2), 10)
    assert found.count == 2
    assert [at.astimezone(BERLIN).strftime("%d %H:%M") for at in found.latest] == [
        "29 03:30",
        "30 02:30",
    ]
    fall = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    hourly = missed_instants(every("30 * * * *", NEW_YORK), fall, fall + timedelta(days=1), 30)
    assert hourly.count == 23  # 24 real hours; 01:30 is on the wall twice, fires once
    assert len(set(hourly.latest)) == hourly.count


def gap(*instants: datetime) -> MissedInstants:
    return MissedInstants(len(instants), instants[0], instants[-1], instants)


NOW = T0 + timedelta(hours=2)


@pytest.mark.parametrize(
    ("policy", "most", "window_ms", "missed", "runs"),
    [
        ("skip", 10, 86_400_000, gap(*minutes(1, 2, 3)), ()),
        ("once", 10, 86_400_000, gap(*minutes(1, 2, 3)), minutes(3)),
        ("all", 10, 86_400_000, gap(*minutes(1, 2, 3)), minutes(1, 2, 3)),
        ("all", 2, 86_400_000, gap(*minutes(1, 2, 3)), minutes(2, 3)),  # capped: the latest
        # The window: 60 min before NOW is T0 + 60 min; an instant exactly there still runs.
        ("all", 10, 3_600_000, gap(*minutes(59, 60, 61)), minutes(60, 61)),
        ("once", 10, 3_600_000, gap(*minutes(30, 59)), ()),  # all too old
        ("once", 10, 3_600_000, gap(*minutes(30, 60)), minutes(60)),
        ("all", 10, 1, gap(*minutes(119)), ()),
    ],
)
def test_what_runs_for_a_gap(
    policy: str,
    most: int,
    window_ms: int,
    missed: MissedInstants,
    runs: tuple[datetime, ...],
) -> None:
    plan = plan_catchup(policy, most, window_ms, missed, NOW)
    assert plan.run == runs
    assert plan.missed is missed  # every missed instant is recorded, whatever runs


@pytest.mark.parametrize(
    ("expression", "due", "now", "until", "fire"),
    [
        # On time or a little late, the next instant not yet due: an ordinary fire.
        ("* * * * *", T0, T0 + timedelta(seconds=0.3), None, T0),
        ("0 3 * * *", T0, T0 + timedelta(hours=5), None, T0),  # late, but not a gap
        # A wall clock stepped an hour forward on a per-second job: the latest second is on
        # time and fires; the 3,600 before it are the gap.
        (
            "* * * * * *",
            T0,
            T0 + timedelta(hours=1, milliseconds=400),
            T0 + timedelta(hours=1, microseconds=-1),
            T0 + timedelta(hours=1),
        ),
        # Resumed 10 min after a suspend over three fires of a 5-minute job: all missed, the
        # latest is not on time.
        (
            "*/5 * * * *",
            T0,
            T0 + timedelta(minutes=10, seconds=30),
            T0 + timedelta(minutes=10),
            None,
        ),
    ],
)
def test_a_late_fire_splits_into_its_gap_and_an_on_time_fire(
    expression: str, due: datetime, now: datetime, until: datetime | None, fire: datetime | None
) -> None:
    assert split_gap(every(expression), due, now, 1.0) == (until, fire)


def test_a_step_gap_counts_every_instant_from_the_one_taken_up() -> None:
    instants = every("*/5 * * * *")
    until, _ = split_gap(instants, T0, T0 + timedelta(minutes=10, seconds=30), 1.0)
    assert until is not None
    found = missed_instants(instants, T0 - timedelta(microseconds=1), until, 10)
    assert found.latest == minutes(0, 5, 10)
