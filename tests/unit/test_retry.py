"""scheduling/retry.py: which tries are retried, and the backoff arithmetic with full
jitter (the random draw is an argument)."""

from __future__ import annotations

import pytest

from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger
from jeeves_runner.scheduling.retry import retry_ceiling_ms, retry_delay_ms, should_retry


def job(**fields: object) -> Job:
    return Job(id="j", name="j", schedule="* * * * *", script="/x", **fields)  # type: ignore[arg-type]


ERROR_3 = RunResult(RunStatus.ERROR, 5, exit_code=3)
SPAWN_ERROR = RunResult(RunStatus.ERROR, 5, error="no such file")
TIMEOUT = RunResult(RunStatus.TIMEOUT, 5)
OK = RunResult(RunStatus.OK, 5, exit_code=0)
CANCELLED = RunResult(RunStatus.CANCELLED, 5)


@pytest.mark.parametrize(
    ("fields", "trigger", "attempt", "result", "expected"),
    [
        ({"retries": 2}, RunTrigger.SCHEDULE, 1, ERROR_3, True),
        ({"retries": 2}, RunTrigger.RETRY, 2, ERROR_3, True),
        ({"retries": 2}, RunTrigger.RETRY, 3, ERROR_3, False),  # tries used up
        ({"retries": 0}, RunTrigger.SCHEDULE, 1, ERROR_3, False),
        ({"retries": 2}, RunTrigger.MANUAL, 1, ERROR_3, False),  # someone is watching
        ({"retries": 2}, RunTrigger.SCHEDULE, 1, OK, False),
        ({"retries": 2}, RunTrigger.SCHEDULE, 1, CANCELLED, False),
        ({"retries": 2}, RunTrigger.SCHEDULE, 1, TIMEOUT, True),
        ({"retries": 2, "retry_on": ("error",)}, RunTrigger.SCHEDULE, 1, TIMEOUT, False),
        ({"retries": 2, "retry_on": ("timeout",)}, RunTrigger.SCHEDULE, 1, ERROR_3, False),
        ({"retries": 2, "retry_on": ("3", "75")}, RunTrigger.SCHEDULE, 1, ERROR_3, True),
        ({"retries": 2, "retry_on": ("75",)}, RunTrigger.SCHEDULE, 1, ERROR_3, False),
        ({"retries": 2, "retry_on": ("75",)}, RunTrigger.SCHEDULE, 1, SPAWN_ERROR, False),
        ({"retries": 2, "retry_on": ("error",)}, RunTrigger.SCHEDULE, 1, SPAWN_ERROR, True),
    ],
)
def test_what_is_retried(
    fields: dict[str, object],
    trigger: RunTrigger,
    attempt: int,
    result: RunResult,
    expected: bool,
) -> None:
    assert should_retry(job(**fields), trigger, attempt, result) is expected


@pytest.mark.parametrize(
    ("fields", "failed_attempt", "ceiling"),
    [
        ({}, 1, 10_000),
        ({}, 2, 20_000),
        ({}, 3, 40_000),
        ({}, 7, 600_000),  # 640 s capped at 10 min
        ({"retry_backoff": 1.0}, 5, 10_000),  # constant
        ({"retry_delay_ms": 300, "retry_backoff": 1.5}, 3, 675),
        ({"retry_max_delay_ms": 15_000}, 2, 15_000),
        ({"retry_backoff": 100.0}, 100, 600_000),  # 100^99: no overflow, only the cap
        ({"retry_delay_ms": 0}, 4, 0),
    ],
)
def test_the_ceiling_grows_by_the_backoff_up_to_the_cap(
    fields: dict[str, object], failed_attempt: int, ceiling: int
) -> None:
    assert retry_ceiling_ms(job(**fields), failed_attempt) == ceiling


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999999])
def test_full_jitter_is_uniform_between_zero_and_the_ceiling(draw: float) -> None:
    delay = retry_delay_ms(job(), 2, lambda: draw)
    assert delay == int(20_000 * draw)
    assert 0 <= delay < 20_000
