"""Alert-on-change values: a job's streak of consecutive failures. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from jeeves_runner.models import RunStatus


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
