"""models.py: status values equal the stored text; the one stored form of an instant."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jeeves_runner.models import (
    Job,
    JobType,
    LogStream,
    OverlapPolicy,
    RunStatus,
    RunTrigger,
    format_instant,
    parse_instant,
)

INSTANT_WIDTH = len("2026-03-02T01:03:00.000Z")


def test_enum_values_are_the_stored_text() -> None:
    assert [s.value for s in RunStatus] == [
        "pending",
        "running",
        "ok",
        "error",
        "timeout",
        "skipped",
        "cancelled",
        "missed",
    ]
    assert [s.value for s in LogStream] == ["stdout", "stderr", "runner"]
    assert [p.value for p in OverlapPolicy] == ["skip", "queue", "allow"]
    assert [t.value for t in JobType] == ["script", "session"]
    assert [t.value for t in RunTrigger] == ["schedule", "manual", "retry"]
    assert RunStatus("ok") is RunStatus.OK
    assert f"{RunStatus.TIMEOUT}" == "timeout"


def test_job_defaults_and_immutability() -> None:
    job = Job(id="a", name="A", schedule="* * * * *", script="/x.sh")
    assert job.type is JobType.SCRIPT
    assert job.enabled is True
    assert job.overlap_policy is OverlapPolicy.SKIP
    assert job.timeout_ms is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.name = "B"  # type: ignore[misc]


# --- format_instant -------------------------------------------------------------------------


def test_format_instant_is_iso_utc_with_milliseconds_and_z() -> None:
    assert format_instant(datetime(2026, 3, 2, 1, 3, tzinfo=UTC)) == "2026-03-02T01:03:00.000Z"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 2, 2, 3, tzinfo=ZoneInfo("Europe/Berlin")), "2026-03-02T01:03:00.000Z"),
        # into the next year, the previous month (plain and leap February), a fixed offset
        (
            datetime(2025, 12, 31, 20, 0, tzinfo=ZoneInfo("America/New_York")),
            "2026-01-01T01:00:00.000Z",
        ),
        (datetime(2026, 3, 1, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo")), "2026-02-28T15:30:00.000Z"),
        (datetime(2024, 3, 1, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo")), "2024-02-29T15:30:00.000Z"),
        (
            datetime(2026, 7, 1, 23, 0, tzinfo=timezone(timedelta(hours=-1, minutes=-30))),
            "2026-07-02T00:30:00.000Z",
        ),
    ],
)
def test_format_instant_converts_to_utc(moment: datetime, expected: str) -> None:
    assert format_instant(moment) == expected


@pytest.mark.parametrize(
    ("microsecond", "fraction"),
    [(0, ".000Z"), (999, ".000Z"), (1_000, ".001Z"), (1_500, ".001Z"), (999_999, ".999Z")],
)
def test_format_instant_truncates_microseconds_never_rounds(
    microsecond: int, fraction: str
) -> None:
    # 23:59:59.999999 on New Year's Eve must stay in the old year: rounding would carry over.
    moment = datetime(2025, 12, 31, 23, 59, 59, microsecond, tzinfo=UTC)
    assert format_instant(moment) == "2025-12-31T23:59:59" + fraction


def test_text_order_is_time_order_across_year_and_month_boundaries() -> None:
    start = datetime(1999, 12, 31, 23, 59, 59, 998_000, tzinfo=UTC)
    steps = [
        timedelta(milliseconds=1),
        timedelta(milliseconds=1),
        timedelta(milliseconds=9),
        timedelta(seconds=59),
        timedelta(hours=23),
        timedelta(days=30),  # 2000-01 -> 2000-02
        timedelta(days=29),  # leap February -> March
        timedelta(days=245),
        timedelta(days=3650),
        timedelta(microseconds=999),  # same millisecond: equal text
    ]
    moments = [start]
    for step in steps:
        moments.append(moments[-1] + step)
    texts = [format_instant(m) for m in moments]
    assert all(len(t) == INSTANT_WIDTH for t in texts)
    assert texts[:3] == [
        "1999-12-31T23:59:59.998Z",
        "1999-12-31T23:59:59.999Z",
        "2000-01-01T00:00:00.000Z",
    ]
    assert texts == sorted(texts)
    assert texts[-1] == texts[-2]
    assert len(set(texts[:-1])) == len(texts) - 1


MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


def _to_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@given(MOMENTS, MOMENTS)
def test_comparing_the_text_is_comparing_the_instants(a: datetime, b: datetime) -> None:
    ta, tb = format_instant(a), format_instant(b)
    assert len(ta) == len(tb) == INSTANT_WIDTH
    assert (ta < tb) == (_to_ms(a) < _to_ms(b))
    assert (ta == tb) == (_to_ms(a) == _to_ms(b))


@given(MOMENTS)
def test_parse_instant_reads_back_what_format_instant_wrote(moment: datetime) -> None:
    parsed = parse_instant(format_instant(moment))
    assert parsed == _to_ms(moment)
    assert parsed.utcoffset() == timedelta(0)
