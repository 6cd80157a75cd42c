"""Alert values: the events a run can raise, the notify policies, and a job's streak of
consecutive failures. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jeeves_runner.models import RunStatus


class AlertEvent(StrEnum):
    """What a webhook is sent (its `event` field) and what its `events` list names."""

    FAILED = "run.failed"
    RECOVERED = "run.recovered"
    SUCCEEDED = "run.succeeded"
    LATE = "run.late"
    OVERDUE = "run.overdue"
    MISSED = "run.missed"


class NotifyPolicy(StrEnum):
    ALWAYS = "always"  # every failure and every success
    CHANGE = "change"  # the first failure, every notify_repeat-th in a row, the recovery


# Events a job's failure destination (on_failure, else defaultOnFailure) receives; its
# success destination receives run.succeeded.
FAILURE_SIDE = frozenset(
    {
        AlertEvent.FAILED,
        AlertEvent.RECOVERED,
        AlertEvent.LATE,
        AlertEvent.OVERDUE,
        AlertEvent.MISSED,
    }
)
WEBHOOK_PREFIX = "webhook:"


@dataclass(frozen=True, slots=True)
class NotifyStreak:
    """Where a job stands for alerts: how many of its runs in a row have failed (0: the last
    one that counted succeeded, or none ran yet), and the status of that last run."""

    failures: int = 0
    last_status: str | None = None
    updated_at: str | None = None


_FAILED = frozenset({RunStatus.ERROR, RunStatus.TIMEOUT})


def next_failures(before: int, status: RunStatus) -> int | None:
    """The streak after a run with `status`; None when the status does not count (skipped,
    cancelled, still open): the streak stays as it was."""
    if status in _FAILED:
        return before + 1
    if status is RunStatus.OK:
        return 0
    return None
