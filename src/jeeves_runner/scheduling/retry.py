"""Retry decisions: whether a finished try is tried again, and after how long. Pure: the
random draw comes in as an argument."""

from __future__ import annotations

from collections.abc import Callable

from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger


def should_retry(job: Job, trigger: RunTrigger, attempt: int, result: RunResult) -> bool:
    """A try that failed in a way the job's `retry_on` names, with tries left. A manual run
    is not retried (someone is watching it), nor a cancelled or skipped one."""
    if trigger is RunTrigger.MANUAL or attempt > job.retries:
        return False
    if result.status is RunStatus.TIMEOUT:
        return "timeout" in job.retry_on
    if result.status is not RunStatus.ERROR:
        return False
    if "error" in job.retry_on:
        return True
    return result.exit_code is not None and str(result.exit_code) in job.retry_on


def retry_ceiling_ms(job: Job, failed_attempt: int) -> int:
    """The longest wait after try `failed_attempt` (1 for the first run):
    retry_delay_ms x retry_backoff^(failed_attempt - 1), capped at retry_max_delay_ms."""
    # Compared in floats before any int(): a large backoff to a large power overflows
    # nothing, it only exceeds the cap.
    grown = job.retry_delay_ms * job.retry_backoff ** (failed_attempt - 1)
    return int(min(float(job.retry_max_delay_ms), grown))


def retry_delay_ms(job: Job, failed_attempt: int, draw: Callable[[], float]) -> int:
    """Full jitter: a uniform wait between 0 and the ceiling, so many jobs failing together
    (a database restarting) do not all come back at one instant. `draw` returns [0, 1)."""
    return int(retry_ceiling_ms(job, failed_attempt) * draw())
