"""Tests for jeeves_runner.scheduling.cron: croner 10.0.1 semantics minus three croner bugs.

The conformance cases come from /work/shared/conformance/cron (see its README): fire times
recorded from croner 10.0.1, with the cases that show croner's bugs left out.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jeeves_runner.scheduling.cron import (
    CronSchedule,
    InvalidSchedule,
    next_runs,
    parse,
    resolve_zone,
)

CASES_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "cron_cases.jsonl"

SetTz = Callable[[str | None], None]


@pytest.fixture
def set_process_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[SetTz]:
    """Switch the process zone (TZ + tzset); both are restored after the test."""

    def apply(name: str | None) -> None:
        if name is None:
            monkeypatch.delenv("TZ", raising=False)
        else:
            monkeypatch.setenv("TZ", name)
        time.tzset()

    yield apply
    monkeypatch.undo()
    time.tzset()


def _utc(values: list[datetime]) -> list[datetime]:
    # Compare instants: `==` on datetimes sharing a tzinfo ignores fold, so 01:30 EDT would
    # equal 01:30 EST. Converting to UTC first avoids that trap.
    return [v.astimezone(UTC) for v in values]


def _iso(values: list[str]) -> list[datetime]:
    return _utc([datetime.fromisoformat(v) for v in values])


def _runs(expr: str, start: str, count: int, tz: str | None) -> list[datetime]:
    return next_runs(expr, after=datetime.fromisoformat(start), count=count, tz=tz)


# --------------------------------------------------------------------------------------------
# Conformance cases (croner 10.0.1 recordings)
# --------------------------------------------------------------------------------------------


def _load_cases() -> list[Any]:
    params = []
    with CASES_FILE.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            case = json.loads(line)
            expr_id = "_".join(case["expr"].split()) or "empty"
            case_id = f"{case['cat']}-{expr_id}-{case.get('start_label', 'error')}"
            params.append(pytest.param(case, id=case_id))
    return params


CASES = _load_cases()


def test_cases_file_is_complete() -> None:
    assert len(CASES) == 583


@pytest.mark.parametrize("case", CASES)
def test_conformance_case(case: dict[str, Any], set_process_tz: SetTz) -> None:
    if case.get("expect_error"):
        with pytest.raises(InvalidSchedule):
            next_runs(case["expr"], after=datetime(2026, 1, 1, tzinfo=UTC), count=1, tz="UTC")
        return
    if case["tz"] is None:
        set_process_tz(case["local_tz"])
    got = _runs(case["expr"], case["start"], case["n"], case["tz"])
    assert _utc(got) == _iso(case["expect"])


# --------------------------------------------------------------------------------------------
# DST transitions (in the spirit of cronsim's TestDstTransitions), 2027 so they differ from
# the conformance file's 2026 starts.
# --------------------------------------------------------------------------------------------

NY = "America/New_York"  # 2027-03-14 02:00 EST -> 03:00 EDT; 2027-11-07 02:00 EDT -> 01:00 EST
LON = "Europe/London"  # 2027-03-28 01:00 GMT -> 02:00 BST; 2027-10-31 02:00 BST -> 01:00 GMT
SYD = "Australia/Sydney"  # 2027-04-04 03:00 AEDT -> 02:00 AEST; 2027-10-03 02:00 -> 03:00

DST_TABLE = [
    # --- New York, spring forward: 02:00-02:59 does not exist ---------------------------
    # README: a gap time fires shifted by the gap length, then at 02:30 on later days.
    ("ny-spring-fixed-in-gap", NY, "30 2 * * *", "2027-03-13T12:00:00-05:00",
     ["2027-03-14T03:30:00-04:00", "2027-03-15T02:30:00-04:00", "2027-03-16T02:30:00-04:00"]),
    ("ny-spring-fixed-before-gap", NY, "30 1 * * *", "2027-03-13T12:00:00-05:00",
     ["2027-03-14T01:30:00-05:00", "2027-03-15T01:30:00-04:00"]),
    ("ny-spring-fixed-after-gap", NY, "30 3 * * *", "2027-03-13T12:00:00-05:00",
     ["2027-03-14T03:30:00-04:00", "2027-03-15T03:30:00-04:00"]),
    # README: an interval job fires only its first slot inside the gap.
    ("ny-spring-every-15", NY, "*/15 * * * *", "2027-03-14T01:40:00-05:00",
     ["2027-03-14T01:45:00-05:00", "2027-03-14T03:00:00-04:00", "2027-03-14T03:15:00-04:00"]),
    ("ny-spring-hourly", NY, "0 * * * *", "2027-03-14T00:30:00-05:00",
     ["2027-03-14T01:00:00-05:00", "2027-03-14T03:00:00-04:00", "2027-03-14T04:00:00-04:00"]),
    # --- New York, fall back: 01:00-01:59 happens twice ---------------------------------
    # README: each wall time fires once, at its first occurrence.
    ("ny-fall-fixed-in-overlap", NY, "30 1 * * *", "2027-11-06T12:00:00-04:00",
     ["2027-11-07T01:30:00-04:00", "2027-11-08T01:30:00-05:00"]),
    ("ny-fall-fixed-after-overlap", NY, "30 2 * * *", "2027-11-06T12:00:00-04:00",
     ["2027-11-07T02:30:00-05:00", "2027-11-08T02:30:00-05:00"]),
    ("ny-fall-every-30", NY, "*/30 * * * *", "2027-11-07T00:50:00-04:00",
     ["2027-11-07T01:00:00-04:00", "2027-11-07T01:30:00-04:00", "2027-11-07T02:00:00-05:00"]),
    ("ny-fall-every-15", NY, "*/15 * * * *", "2027-11-07T01:40:00-04:00",
     ["2027-11-07T01:45:00-04:00", "2027-11-07T02:00:00-05:00", "2027-11-07T02:15:00-05:00"]),
    ("ny-fall-hourly", NY, "0 * * * *", "2027-11-07T00:30:00-04:00",
     ["2027-11-07T01:00:00-04:00", "2027-11-07T02:00:00-05:00", "2027-11-07T03:00:00-05:00"]),
    # README bug 3: a start in the second pass never yields an instant at or before it.
    ("ny-fall-start-2nd-pass-every-15", NY, "*/15 * * * *", "2027-11-07T01:20:00-05:00",
     ["2027-11-07T02:00:00-05:00", "2027-11-07T02:15:00-05:00", "2027-11-07T02:30:00-05:00"]),
    ("ny-fall-start-2nd-pass-fixed", NY, "30 1 * * *", "2027-11-07T01:20:00-05:00",
     ["2027-11-08T01:30:00-05:00"]),
    ("ny-fall-start-2nd-pass-hourly", NY, "0 * * * *", "2027-11-07T01:20:00-05:00",
     ["2027-11-07T02:00:00-05:00", "2027-11-07T03:00:00-05:00"]),
    ("ny-fall-start-2nd-pass-seconds", NY, "* * * * * *", "2027-11-07T01:59:58.5-05:00",
     ["2027-11-07T02:00:00-05:00", "2027-11-07T02:00:01-05:00"]),
    # --- London, spring forward: 01:00-01:59 does not exist -----------------------------
    ("lon-spring-fixed-in-gap", LON, "30 1 * * *", "2027-03-27T12:00:00+00:00",
     ["2027-03-28T02:30:00+01:00", "2027-03-29T01:30:00+01:00"]),
    ("lon-spring-fixed-after-gap", LON, "30 2 * * *", "2027-03-27T12:00:00+00:00",
     ["2027-03-28T02:30:00+01:00", "2027-03-29T02:30:00+01:00"]),
    ("lon-spring-every-15", LON, "*/15 * * * *", "2027-03-28T00:40:00+00:00",
     ["2027-03-28T00:45:00+00:00", "2027-03-28T02:00:00+01:00", "2027-03-28T02:15:00+01:00"]),
    ("lon-spring-hourly", LON, "0 * * * *", "2027-03-28T00:30:00+00:00",
     ["2027-03-28T02:00:00+01:00", "2027-03-28T03:00:00+01:00"]),
    # --- London, fall back: 01:00-01:59 happens twice -----------------------------------
    ("lon-fall-fixed-in-overlap", LON, "30 1 * * *", "2027-10-30T12:00:00+01:00",
     ["2027-10-31T01:30:00+01:00", "2027-11-01T01:30:00+00:00"]),
    ("lon-fall-fixed-after-overlap", LON, "30 2 * * *", "2027-10-30T12:00:00+01:00",
     ["2027-10-31T02:30:00+00:00", "2027-11-01T02:30:00+00:00"]),
    ("lon-fall-every-15", LON, "*/15 * * * *", "2027-10-31T01:40:00+01:00",
     ["2027-10-31T01:45:00+01:00", "2027-10-31T02:00:00+00:00", "2027-10-31T02:15:00+00:00"]),
    ("lon-fall-hourly", LON, "0 * * * *", "2027-10-31T00:30:00+01:00",
     ["2027-10-31T01:00:00+01:00", "2027-10-31T02:00:00+00:00", "2027-10-31T03:00:00+00:00"]),
    ("lon-fall-start-2nd-pass", LON, "*/15 * * * *", "2027-10-31T01:20:00+00:00",
     ["2027-10-31T02:00:00+00:00", "2027-10-31T02:15:00+00:00"]),
    # --- Sydney, spring forward (October): 02:00-02:59 does not exist --------------------
    ("syd-spring-fixed-in-gap", SYD, "30 2 * * *", "2027-10-02T12:00:00+10:00",
     ["2027-10-03T03:30:00+11:00", "2027-10-04T02:30:00+11:00"]),
    ("syd-spring-fixed-before-gap", SYD, "30 1 * * *", "2027-10-02T12:00:00+10:00",
     ["2027-10-03T01:30:00+10:00", "2027-10-04T01:30:00+11:00"]),
    ("syd-spring-every-15", SYD, "*/15 * * * *", "2027-10-03T01:40:00+10:00",
     ["2027-10-03T01:45:00+10:00", "2027-10-03T03:00:00+11:00", "2027-10-03T03:15:00+11:00"]),
    ("syd-spring-hourly", SYD, "0 * * * *", "2027-10-03T01:30:00+10:00",
     ["2027-10-03T03:00:00+11:00", "2027-10-03T04:00:00+11:00"]),
    # --- Sydney, fall back (April): 02:00-02:59 happens twice ---------------------------
    ("syd-fall-fixed-in-overlap", SYD, "30 2 * * *", "2027-04-03T12:00:00+11:00",
     ["2027-04-04T02:30:00+11:00", "2027-04-05T02:30:00+10:00"]),
    ("syd-fall-fixed-before-overlap", SYD, "30 1 * * *", "2027-04-03T12:00:00+11:00",
     ["2027-04-04T01:30:00+11:00", "2027-04-05T01:30:00+10:00"]),
    ("syd-fall-every-30", SYD, "*/30 * * * *", "2027-04-04T01:50:00+11:00",
     ["2027-04-04T02:00:00+11:00", "2027-04-04T02:30:00+11:00", "2027-04-04T03:00:00+10:00"]),
    ("syd-fall-hourly", SYD, "0 * * * *", "2027-04-04T01:30:00+11:00",
     ["2027-04-04T02:00:00+11:00", "2027-04-04T03:00:00+10:00", "2027-04-04T04:00:00+10:00"]),
    ("syd-fall-start-2nd-pass", SYD, "*/15 * * * *", "2027-04-04T02:20:00+10:00",
     ["2027-04-04T03:00:00+10:00", "2027-04-04T03:15:00+10:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "expr", "start", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in DST_TABLE],
)
def test_dst_transitions(zone: str, expr: str, start: str, expected: list[str]) -> None:
    got = _runs(expr, start, len(expected), zone)
    assert _utc(got) == _iso(expected)
    # Results are expressed in the job's zone, with the offset in force at that instant.
    assert [g.isoformat() for g in got] == [
        datetime.fromisoformat(e).astimezone(ZoneInfo(zone)).isoformat() for e in expected
    ]


@pytest.mark.parametrize(
    ("zone", "expr", "start", "expected"),
    [pytest.param(*row[1:], id=f"local-{row[0]}") for row in DST_TABLE[:8]],
)
def test_dst_transitions_in_process_zone(
    zone: str, expr: str, start: str, expected: list[str], set_process_tz: SetTz
) -> None:
    set_process_tz(zone)
    assert _utc(_runs(expr, start, len(expected), None)) == _iso(expected)


def test_dst_fixed_job_fires_exactly_once_per_day_across_transitions() -> None:
    # Neither skipped (gap) nor doubled (overlap), over a whole year in three zones.
    for zone in (NY, LON, SYD):
        for expr in ("30 2 * * *", "30 1 * * *", "0 2 * * *"):
            runs = _runs(expr, "2027-01-01T00:00:00+00:00", 365, zone)
            days = [r.astimezone(ZoneInfo(zone)).date() for r in runs]
            assert len(set(days)) == 365, (zone, expr)
            assert days[0] == date(2027, 1, 1) or days[0] == date(2027, 1, 2)


# --------------------------------------------------------------------------------------------
# The three croner 10 bugs the evaluator must not copy (README examples)
# --------------------------------------------------------------------------------------------


def test_bug1_question_mark_counts_as_star_for_or_rule() -> None:
    got = _runs("0 12 ? * MON", "2026-05-01T00:00:00+02:00", 3, "Europe/Berlin")
    assert _utc(got) == _iso(
        ["2026-05-04T12:00:00+02:00", "2026-05-11T12:00:00+02:00", "2026-05-18T12:00:00+02:00"]
    )


def test_bug1_question_mark_in_day_of_week() -> None:
    got = _runs("0 0 1 * ?", "2026-05-01T00:00:00+00:00", 3, "UTC")
    assert _utc(got) == _iso(
        ["2026-06-01T00:00:00+00:00", "2026-07-01T00:00:00+00:00", "2026-08-01T00:00:00+00:00"]
    )


def test_bug2_no_month_overflow() -> None:
    got = _runs("0 0 1,30 * *", "2027-02-01T00:00:00+00:00", 4, "UTC")
    assert _utc(got) == _iso(
        [
            "2027-03-01T00:00:00+00:00",
            "2027-03-30T00:00:00+00:00",
            "2027-04-01T00:00:00+00:00",
            "2027-04-30T00:00:00+00:00",
        ]
    )


def test_bug2_no_phantom_weekday_overflow() -> None:
    got = _runs("0 6 1 * TUE", "2027-02-24T00:00:00+00:00", 3, "UTC")
    assert _utc(got) == _iso(
        ["2027-03-01T06:00:00+00:00", "2027-03-02T06:00:00+00:00", "2027-03-09T06:00:00+00:00"]
    )


def test_bug3_never_at_or_before_start() -> None:
    got = _runs("*/15 * * * *", "2027-11-07T01:20:00-05:00", 3, NY)
    assert _utc(got) == _iso(
        ["2027-11-07T02:00:00-05:00", "2027-11-07T02:15:00-05:00", "2027-11-07T02:30:00-05:00"]
    )


# --------------------------------------------------------------------------------------------
# Other semantics from the README
# --------------------------------------------------------------------------------------------

SEMANTICS = [
    ("W-nearest-never-other-month", "0 6 31W * *", "2027-02-01T00:00:00+00:00",
     ["2027-03-31T06:00:00+00:00", "2027-05-31T06:00:00+00:00", "2027-07-30T06:00:00+00:00"]),
    # 2027-05-01 is a Saturday: fire on Monday the 3rd, not Friday in April.
    ("W-first-saturday", "0 0 1W * *", "2027-04-02T00:00:00+00:00",
     ["2027-05-03T00:00:00+00:00", "2027-06-01T00:00:00+00:00"]),
    # 2027-01-31 is a Sunday and the last day: Friday the 29th.
    ("W-last-sunday", "0 0 31W 1 *", "2026-12-01T00:00:00+00:00",
     ["2027-01-29T00:00:00+00:00", "2028-01-31T00:00:00+00:00"]),
    # 2027-08-15 is a Sunday -> Monday 16th; 2027-05-15 is a Saturday -> Friday 14th.
    ("W-mid-month", "0 0 15W 5,8 *", "2027-01-01T00:00:00+00:00",
     ["2027-05-14T00:00:00+00:00", "2027-08-16T00:00:00+00:00"]),
    ("L-last-day", "0 0 L * *", "2027-01-15T00:00:00+00:00",
     ["2027-01-31T00:00:00+00:00", "2027-02-28T00:00:00+00:00", "2027-03-31T00:00:00+00:00"]),
    ("L-leap-february", "0 0 L 2 *", "2027-06-01T00:00:00+00:00",
     ["2028-02-29T00:00:00+00:00", "2029-02-28T00:00:00+00:00"]),
    ("LW-last-weekday", "0 0 LW * *", "2027-01-01T00:00:00+00:00",
     ["2027-01-29T00:00:00+00:00", "2027-02-26T00:00:00+00:00", "2027-03-31T00:00:00+00:00"]),
    ("L-in-list", "0 0 1,L * *", "2027-01-15T00:00:00+00:00",
     ["2027-01-31T00:00:00+00:00", "2027-02-01T00:00:00+00:00", "2027-02-28T00:00:00+00:00"]),
    ("dow-4L", "0 0 * * 4L", "2027-01-01T00:00:00+00:00",
     ["2027-01-28T00:00:00+00:00", "2027-02-25T00:00:00+00:00"]),
    ("dow-4#L", "0 0 * * 4#L", "2027-01-01T00:00:00+00:00",
     ["2027-01-28T00:00:00+00:00", "2027-02-25T00:00:00+00:00"]),
    ("dow-THU#L", "0 0 * * thu#l", "2027-01-01T00:00:00+00:00",
     ["2027-01-28T00:00:00+00:00", "2027-02-25T00:00:00+00:00"]),
    ("dow-TUE#2", "0 0 * * TUE#2", "2027-01-01T00:00:00+00:00",
     ["2027-01-12T00:00:00+00:00", "2027-02-09T00:00:00+00:00"]),
    ("dow-list-nth", "0 0 * * 1#1,5#L", "2027-01-01T00:00:00+00:00",
     ["2027-01-04T00:00:00+00:00", "2027-01-29T00:00:00+00:00", "2027-02-01T00:00:00+00:00"]),
    ("or-13th-or-friday", "0 9 13 * FRI", "2027-08-10T00:00:00+00:00",
     ["2027-08-13T09:00:00+00:00", "2027-08-20T09:00:00+00:00", "2027-08-27T09:00:00+00:00",
      "2027-09-03T09:00:00+00:00", "2027-09-10T09:00:00+00:00", "2027-09-13T09:00:00+00:00"]),
    ("and-friday-13th", "0 9 13 * +FRI", "2027-01-01T00:00:00+00:00",
     ["2027-08-13T09:00:00+00:00", "2028-10-13T09:00:00+00:00"]),
    ("or-step-is-not-star", "0 6 */2 * MON", "2027-01-01T00:00:00+00:00",
     ["2027-01-01T06:00:00+00:00", "2027-01-03T06:00:00+00:00", "2027-01-04T06:00:00+00:00",
      "2027-01-05T06:00:00+00:00"]),
    ("sat-sun-range", "0 0 * * SAT-SUN", "2027-01-01T00:00:00+00:00",
     ["2027-01-02T00:00:00+00:00", "2027-01-03T00:00:00+00:00", "2027-01-09T00:00:00+00:00"]),
    ("sunday-as-7", "0 0 * * 7", "2027-01-01T00:00:00+00:00",
     ["2027-01-03T00:00:00+00:00", "2027-01-10T00:00:00+00:00"]),
    ("minute-step-60", "*/60 * * * *", "2027-01-01T00:00:00+00:00",
     ["2027-01-01T01:00:00+00:00", "2027-01-01T02:00:00+00:00"]),
    ("range-step", "0 1-30/10 3 * * *", "2027-01-01T00:00:00+00:00",
     ["2027-01-01T03:01:00+00:00", "2027-01-01T03:11:00+00:00", "2027-01-01T03:21:00+00:00",
      "2027-01-02T03:01:00+00:00"]),
    ("question-mark-any-field", "? ? ? ? ? ?", "2027-01-01T00:00:00.250000+00:00",
     ["2027-01-01T00:00:01+00:00", "2027-01-01T00:00:02+00:00"]),
    ("mid-second-start", "* * * * * *", "2027-06-15T12:34:56.500000+00:00",
     ["2027-06-15T12:34:57+00:00", "2027-06-15T12:34:58+00:00"]),
    ("month-names", "0 0 1 jan,Jul *", "2027-02-01T00:00:00+00:00",
     ["2027-07-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
    ("weekly", "@weekly", "2027-01-01T00:00:00+00:00",
     ["2027-01-03T00:00:00+00:00", "2027-01-10T00:00:00+00:00"]),
    ("daily-uppercase", "  @DAILY ", "2027-01-01T00:00:00+00:00",
     ["2027-01-02T00:00:00+00:00"]),
    ("never-feb-30", "0 6 30 2 *", "2027-01-01T00:00:00+00:00", []),
    ("never-apr-31-W", "0 6 31W 4 *", "2027-01-01T00:00:00+00:00", []),
    ("year-field-ends", "0 0 0 1 1 * 2026-2030/2", "2026-06-01T00:00:00+00:00",
     ["2028-01-01T00:00:00+00:00", "2030-01-01T00:00:00+00:00"]),
    ("year-field-beyond-3000", "0 0 0 1 1 * 3005", "2027-01-01T00:00:00+00:00",
     ["3005-01-01T00:00:00+00:00"]),
    ("search-limit-year-3000", "0 0 * * *", "2999-12-30T12:00:00+00:00",
     ["2999-12-31T00:00:00+00:00"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in SEMANTICS],
)
def test_semantics(expr: str, start: str, expected: list[str]) -> None:
    assert _utc(_runs(expr, start, len(expected) or 3, "UTC")) == _iso(expected)


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        ("0 0 0 1 1 * 2026-2030/2", "2026-06-01T00:00:00+00:00", ["2028-01-01T00:00:00+00:00",
                                                                 "2030-01-01T00:00:00+00:00"]),
        ("0 0 * * *", "2999-12-30T12:00:00+00:00", ["2999-12-31T00:00:00+00:00"]),
        ("0 0 0 1 1 * 3005", "2027-01-01T00:00:00+00:00", ["3005-01-01T00:00:00+00:00"]),
        ("0 0 0 1 1 * 2026", "2026-01-01T00:00:00+00:00", []),
        ("* * * * *", "3000-06-01T00:00:00+00:00", []),
    ],
)  # fmt: skip
def test_schedules_that_end(expr: str, start: str, expected: list[str]) -> None:
    # Ask for more than there are: the list stops when the schedule ends.
    assert _utc(_runs(expr, start, 10, "UTC")) == _iso(expected)


def test_equivalent_spellings() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    groups = [
        ["0 0 * * 4L", "0 0 * * 4#L", "0 0 * * THU#L", "0 0 * * thuL"],
        ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN", "@weekly", "0 0 0 * * sun"],
        ["0 0 1 1 *", "@yearly", "@annually", "0 0 0 1 JAN *", "0 0 0 1 1 * *"],
        ["0 0 * * *", "@daily", "@midnight", "0 0 ? * ?", "0 0 * * ?", "0 0 ? * *"],
        ["0 * * * *", "@hourly", "0 */1 * * *", "0 0-23 * * *"],
        ["0 0 * * 5-7", "0 0 * * FRI-SUN", "0 0 * * 5,6,0"],
    ]
    for group in groups:
        results = [_utc(next_runs(e, after=start, count=12, tz="UTC")) for e in group]
        assert all(r == results[0] for r in results), group


def test_next_after_is_strictly_after_and_in_zone() -> None:
    schedule = parse("*/5 * * * *")
    zone = ZoneInfo(NY)
    at_fire = datetime(2027, 6, 1, 12, 5, tzinfo=zone)
    nxt = schedule.next_after(at_fire, zone)
    assert nxt == datetime(2027, 6, 1, 12, 10, tzinfo=zone)
    assert nxt is not None and nxt.tzinfo is zone
    # `after` may be given in any zone; the result is in the job's zone.
    assert schedule.next_after(at_fire.astimezone(UTC), zone) == nxt


def test_next_after_requires_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("* * * * *").next_after(datetime(2027, 1, 1), UTC)


def test_next_runs_count_zero_and_chaining() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    assert next_runs("* * * * *", after=start, count=0, tz="UTC") == []
    runs = next_runs("0 */6 * * *", after=start, count=5, tz="UTC")
    assert [r.hour for r in runs] == [6, 12, 18, 0, 6]


def test_parse_is_cached_and_schedule_immutable() -> None:
    first = parse("*/7 1-5 * * MON")
    assert parse("*/7 1-5 * * MON") is first
    assert isinstance(first, CronSchedule)
    assert first.minutes == tuple(range(0, 60, 7))
    assert first.hours == (1, 2, 3, 4, 5)
    assert first.days_of_week == frozenset({1})
    assert first.dow_is_star is False and first.dom_is_star is True
    assert hash(first) == hash(parse("*/7 1-5 * * MON"))
    with pytest.raises(AttributeError):
        first.expression = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------------------------


def test_resolve_zone_names() -> None:
    assert resolve_zone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert resolve_zone("UTC").utcoffset(datetime(2027, 1, 1)) == timedelta(0)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "Not a zone", "", "../etc/passwd"])
def test_resolve_zone_unknown(name: str) -> None:
    with pytest.raises(InvalidSchedule, match=re.escape(f"unknown time zone {name!r}")):
        resolve_zone(name)
    with pytest.raises(InvalidSchedule, match="unknown time zone"):
        next_runs("* * * * *", after=datetime(2027, 1, 1, tzinfo=UTC), count=1, tz=name)


def test_local_zone_follows_tz_at_call_time(set_process_tz: SetTz) -> None:
    start = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    set_process_tz("America/New_York")
    assert resolve_zone(None) == ZoneInfo("America/New_York")
    ny = next_runs("0 9 * * *", after=start, count=1)
    set_process_tz("Asia/Tokyo")
    tokyo = next_runs("0 9 * * *", after=start, count=1)
    assert _utc(ny) == _iso(["2027-01-01T14:00:00+00:00"])
    assert _utc(tokyo) == _iso(["2027-01-02T00:00:00+00:00"])
    set_process_tz(":Europe/London")
    assert resolve_zone(None) == ZoneInfo("Europe/London")


def test_local_zone_is_dst_aware_not_fixed_offset(set_process_tz: SetTz) -> None:
    set_process_tz("Europe/London")
    zone = resolve_zone(None)
    assert zone.utcoffset(datetime(2027, 1, 15)) == timedelta(0)
    assert zone.utcoffset(datetime(2027, 7, 15)) == timedelta(hours=1)


def test_local_zone_without_tz_matches_system(set_process_tz: SetTz) -> None:
    set_process_tz(None)
    zone = resolve_zone(None)
    for month in (1, 7):
        instant = datetime(2027, month, 15, 12, tzinfo=UTC)
        # The C library's reading of the local zone (from /etc/localtime) must agree.
        expected = datetime.fromtimestamp(instant.timestamp()).astimezone().utcoffset()
        assert instant.astimezone(zone).utcoffset() == expected


def test_local_zone_absolute_path_and_garbage(set_process_tz: SetTz) -> None:
    chicago = Path("/usr/share/zoneinfo/America/Chicago")
    if chicago.exists():
        set_process_tz(str(chicago))
        assert resolve_zone(None).utcoffset(datetime(2027, 1, 15)) == timedelta(hours=-6)
        set_process_tz(f":{chicago}")
        assert resolve_zone(None).utcoffset(datetime(2027, 7, 15)) == timedelta(hours=-5)
    set_process_tz("No/Such_Zone")  # the C library falls back to UTC as well
    assert resolve_zone(None).utcoffset(datetime(2027, 1, 15)) == timedelta(0)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

ERRORS = [
    ("60 * * * *", "minute: 60 is out of range 0-59"),
    ("* 24 * * *", "hour: 24 is out of range 0-23"),
    ("* * 32 * *", "day-of-month: 32 is out of range 1-31"),
    ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
    ("* * * 13 *", "month: 13 is out of range 1-12"),
    ("* * * 0 *", "month: 0 is out of range 1-12"),
    ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
    ("60 * * * * *", "second: 60 is out of range 0-59"),
    ("0 0 0 * * * 10000", "year: 10000 is out of range 1-9999"),
    ("0 0 0 * * * 0", "year: 0 is out of range 1-9999"),
    ("5-1 * * * *", "minute: range 5-1 is reversed (start is after end)"),
    ("* * * * FRI-MON", "day-of-week: range FRI-MON is reversed (start is after end)"),
    ("* * 20-10/2 * *", "day-of-month: range 20-10 is reversed (start is after end)"),
    ("*/0 * * * *", "minute: step 0 is not allowed"),
    ("* * * 1-12/0 *", "month: step 0 is not allowed"),
    ("*/61 * * * *", "minute: step 61 is larger than the field's 60 values"),
    ("* */25 * * *", "hour: step 25 is larger than the field's 24 values"),
    ("* * * * */8", "day-of-week: step 8 is larger than the field's 7 values"),
    ("*/x * * * *", "minute: step 'x' in '*/x' is not a number"),
    ("0/10 * * * *", "minute: '0/10' is not allowed; a step needs '*' or a range before it"),
    ("/10 * * * *", "minute: '/10' is not allowed; a step needs '*' or a range before it"),
    ("0 0 L-2 * *", "day-of-month: 'L-2' is not supported"),
    ("0 0 W * *", "day-of-month: 'W' needs a day number before it"),
    ("0 0 1-5W * *", "day-of-month: '1-5W' is not valid"),
    ("0 0 32W * *", "day-of-month: 32 is out of range 1-31"),
    ("0 0 5L * *", "day-of-month: '5L' is not valid"),
    ("0 0 * * L", "day-of-week: 'L' needs a weekday"),
    ("0 0 * * MON#6", "day-of-week: 'MON#6': the occurrence after '#' must be 1-5 or L"),
    ("0 0 * * 1#0", "day-of-week: '1#0': the occurrence after '#' must be 1-5 or L"),
    ("0 0 * * 9#2", "day-of-week: 9 is out of range 0-7"),
    ("@reboot", "'@reboot' is not supported"),
    ("@fortnightly", "unknown nickname '@fortnightly'"),
    ("* * * *", "expected 5 to 7 fields, got 4"),
    ("* * * * * * * *", "expected 5 to 7 fields, got 8"),
    ("", "cron expression is empty"),
    ("   ", "cron expression is empty"),
    ("* * * FOO *", "month: 'FOO' is not a number or a month name"),
    ("* * * JANUARY *", "month: 'JANUARY' is not a number or a month name"),
    ("* * * * FUNDAY", "day-of-week: 'FUNDAY' is not a number or a weekday name"),
    ("MON * * * *", "minute: 'MON' is not a number"),
    ("* 5#2 * * *", "hour: '5#2' is not a number"),
    ("* * * JAN#2 *", "month: 'JAN#2' is not a number or a month name"),
    ("-5 * * * *", "minute: '-5' is not a valid range"),
    ("1-2-3 * * * *", "minute: '1-2-3' is not a valid range"),
    ("1,,2 * * * *", "minute: empty item in list '1,,2'"),
    ("1, * * * *", "minute: empty item in list '1,'"),
    ("0 0 * +1 *", "month: '+' is only allowed at the start of the day-of-week field"),
    ("0 0 * * +", "day-of-week: '+' needs a day-of-week after it"),
    ("½ * * * *", "minute: '½' is not a number"),
]


@pytest.mark.parametrize(
    ("expr", "message"), [pytest.param(*e, id=e[0] or "empty") for e in ERRORS]
)
def test_invalid_expressions(expr: str, message: str) -> None:
    with pytest.raises(InvalidSchedule, match=re.escape(message)):
        parse(expr)
    with pytest.raises(InvalidSchedule, match=re.escape(message)):
        next_runs(expr, after=datetime(2027, 1, 1, tzinfo=UTC), count=1, tz="UTC")


def test_invalid_schedule_is_value_error() -> None:
    assert issubclass(InvalidSchedule, ValueError)


# --------------------------------------------------------------------------------------------
# Property: random simple expressions against an independent brute-force evaluator (UTC)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    text: str
    values: frozenset[int]


# (low, high, number of slots '*' and '*/n' cover)
_SEC = (0, 59, 60)
_MIN = (0, 59, 60)
_HOUR = (0, 23, 24)
_DOMF = (1, 31, 31)
_MON = (1, 12, 12)
_DOWF = (0, 7, 7)


@st.composite
def _item(draw: st.DrawFn, spec: tuple[int, int, int]) -> tuple[str, set[int]]:
    low, high, size = spec
    kind = draw(st.sampled_from(["value", "range", "step", "range-step"]))
    if kind == "value":
        v = draw(st.integers(low, high))
        return str(v), {v}
    if kind == "step":
        n = draw(st.integers(1, size))
        return f"*/{n}", set(range(low, low + size, n))
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    if kind == "range":
        return f"{a}-{b}", set(range(a, b + 1))
    n = draw(st.integers(1, size))
    return f"{a}-{b}/{n}", set(range(a, b + 1, n))


@st.composite
def _field(draw: st.DrawFn, spec: tuple[int, int, int], star_weight: int = 1) -> _Field:
    low, _high, size = spec
    if draw(st.integers(0, star_weight)) > 0:
        return _Field("*", frozenset(range(low, low + size)))
    items = draw(st.lists(_item(spec), min_size=1, max_size=3))
    values: set[int] = set()
    for _, vs in items:
        values |= vs
    return _Field(",".join(text for text, _ in items), frozenset(values))


@dataclass(frozen=True)
class _Expr:
    text: str
    seconds: _Field
    minutes: _Field
    hours: _Field
    dom: _Field
    months: _Field
    dow: _Field
    dow7: frozenset[int]  # day-of-week values with 7 folded onto 0 (Sunday)

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months.values:
            return False
        dom_ok = day.day in self.dom.values
        dow_ok = (day.isoweekday() % 7) in self.dow7
        dom_star, dow_star = self.dom.text == "*", self.dow.text == "*"
        if dom_star and dow_star:
            return True
        if dom_star:
            return dow_ok
        if dow_star:
            return dom_ok
        return dom_ok or dow_ok

    def matches(self, t: datetime) -> bool:
        return (
            self.day_matches(t.date())
            and t.hour in self.hours.values
            and t.minute in self.minutes.values
            and t.second in self.seconds.values
        )


@st.composite
def _expressions(draw: st.DrawFn) -> _Expr:
    with_seconds = draw(st.booleans())
    seconds = draw(_field(_SEC, 3)) if with_seconds else _Field("0", frozenset({0}))
    minutes = draw(_field(_MIN))
    hours = draw(_field(_HOUR))
    dom = draw(_field(_DOMF))
    months = draw(_field(_MON, 2))
    dow = draw(_field(_DOWF))
    parts = [minutes.text, hours.text, dom.text, months.text, dow.text]
    if with_seconds:
        parts.insert(0, seconds.text)
    dow7 = frozenset(v % 7 for v in dow.values)
    return _Expr(" ".join(parts), seconds, minutes, hours, dom, months, dow, dow7)


_HORIZON_DAYS = 9 * 366  # Feb 29 only can be 8 years apart (2096 -> 2104)


def _brute_next(expr: _Expr, after: datetime) -> datetime | None:
    """Reference: first matching UTC second strictly after `after`, day by day."""
    t = after.astimezone(UTC).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
    day = t.date()
    hours = sorted(expr.hours.values)
    minutes = sorted(expr.minutes.values)
    seconds = sorted(expr.seconds.values)
    for _ in range(_HORIZON_DAYS):
        if expr.day_matches(day):
            for h in hours:
                if datetime.combine(day, dtime(h, 59, 59)) < t:
                    continue
                for m in minutes:
                    if datetime.combine(day, dtime(h, m, 59)) < t:
                        continue
                    for s in seconds:
                        cand = datetime.combine(day, dtime(h, m, s))
                        if cand >= t:
                            return cand.replace(tzinfo=UTC)
        day += timedelta(days=1)
    return None


@settings(max_examples=300, deadline=None)
@given(
    expr=_expressions(),
    start=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
    ),
)
def test_property_matches_brute_force(expr: _Expr, start: datetime) -> None:
    runs = next_runs(expr.text, after=start, count=5, tz="UTC")
    previous = start
    for run in runs:
        assert run > previous  # strictly increasing, each strictly after the one before
        assert run.microsecond == 0
        assert expr.matches(run.astimezone(UTC).replace(tzinfo=None)), (expr.text, run)
        assert _brute_next(expr, previous) == run, (expr.text, previous)
        previous = run
    if len(runs) < 5:
        # The schedule ended: nothing within the horizon either.
        assert _brute_next(expr, previous) is None, expr.text


def _is_gap_fire(expr: _Expr, tz: ZoneInfo, run_utc: datetime) -> bool:
    """True if `run_utc` is a non-existent matching wall time moved forward by the gap."""
    before = (run_utc - timedelta(hours=3)).astimezone(tz).utcoffset()
    assert before is not None
    intended = (run_utc + before).replace(tzinfo=None)
    real = intended.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return real != intended and expr.matches(intended)


@settings(max_examples=150, deadline=None)
@given(
    expr=_expressions(),
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from([NY, LON, SYD, "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_property_zones(expr: _Expr, start: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    runs = next_runs(expr.text, after=start, count=8, tz=zone)
    previous = start
    walls = []
    for run in runs:
        run_utc = run.astimezone(UTC)
        assert run_utc > previous  # strictly increasing, never at or before the start
        wall = run.astimezone(tz).replace(tzinfo=None)
        # A fire is a matching wall time, or a gap time moved forward by the gap length.
        assert expr.matches(wall) or _is_gap_fire(expr, tz, run_utc), (expr.text, run)
        walls.append(wall)
        previous = run_utc
    # A repeated hour does not fire twice: no wall time appears twice.
    assert len(set(walls)) == len(walls)
