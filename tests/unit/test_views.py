"""web/views.py: badges, lateness and sparklines from rows and a given `now`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jeeves_runner.models import JobState
from jeeves_runner.web import views

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "enabled": 1,
        "schedule": "0 * * * *",
        "timezone": None,
        "last_status": "ok",
        "last_run": "2026-03-02T11:00:00.000Z",
        "created_at": "2026-01-01T00:00:00.000Z",
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, JobState.OK),
        ({"enabled": 0, "last_status": "running"}, JobState.DISABLED),
        ({"last_status": "running", "last_run": "2026-03-01T00:00:00.000Z"}, JobState.RUNNING),
        ({"last_status": "error"}, JobState.FAILING),
        ({"last_status": "timeout"}, JobState.FAILING),
        (
            {"last_status": None, "last_run": None, "created_at": "2026-03-02T11:30:00.000Z"},
            JobState.NEW,
        ),
        # The 11:00 run happened; the 12:00 fire is 30 s overdue: not yet late.
        ({}, JobState.OK),
        ({"last_run": "2026-03-02T10:00:00.000Z"}, JobState.LATE),
        ({"last_status": None, "last_run": None}, JobState.LATE),
        ({"schedule": "not cron", "last_run": "2026-01-01T00:00:00.000Z"}, JobState.OK),
    ],
)
def test_job_state(changes: dict[str, Any], state: JobState) -> None:
    assert views.job_state(row(**changes), NOW, UTC) is state


def test_lateness_reads_the_schedule_in_the_jobs_zone() -> None:
    # 0 12 in Tokyo is 03:00 UTC: long past at 12:00 UTC, while the 12:00 UTC fire is not.
    daily = row(schedule="0 12 * * *", last_run="2026-03-01T12:00:00.000Z")
    assert views.is_late(daily, NOW, UTC) is False
    assert views.is_late({**daily, "timezone": "Asia/Tokyo"}, NOW, UTC) is True
    assert views.is_late(daily, NOW, ZoneInfo("Asia/Tokyo")) is True


def test_sparkline_bars_scale_to_the_longest_and_say_it_in_words() -> None:
    spark = views.sparkline([("ok", 100), ("error", 400), ("ok", 0)], height=20, bar=4)
    assert [(b.x, b.height, b.failed) for b in spark.bars] == [
        (0, 5, False),
        (5, 20, True),
        (10, 2, False),
    ]
    assert spark.label == "last 3 runs: 2 ok, 1 failed"
    assert spark.success_rate == "67 %"
    assert views.sparkline([]).label == "no runs yet"


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "–"),
        (0, "0 ms"),
        (999, "999 ms"),
        (1500, "1.5 s"),
        (61_000, "1 min 1 s"),
        (3_660_000, "1 h 1 min"),
    ],
)
def test_duration(ms: int | None, text: str) -> None:
    assert views.duration(ms) == text


def test_local_time_and_offset_in_the_runners_zone() -> None:
    zone = ZoneInfo("Europe/Berlin")
    assert views.local_time("2026-07-01T10:00:00.000Z", zone) == "2026-07-01 12:00:00 CEST"
    assert views.zone_offset_minutes("2026-07-01T10:00:00.000Z", zone) == 120
    assert views.local_time(None, zone) == "–"
