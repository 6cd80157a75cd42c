"""Alerts on change: which events a run's outcome (or a late start) raises, decided from the
job's policy and its streak. Pure functions, table-tested; no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass

from jeeves_runner.models import RunStatus
from jeeves_runner.notify_model import AlertEvent, NotifyPolicy

_FAILED = frozenset({RunStatus.ERROR, RunStatus.TIMEOUT})


def policy_of(value: str) -> NotifyPolicy:
    """A job's `notify` as a policy; anything unknown reads as the default, `change` (the
    quieter one: an unknown value must not turn into a message per failure)."""
    try:
        return NotifyPolicy(value)
    except ValueError:
        return NotifyPolicy.CHANGE


def repeat_due(count: int, repeat: int) -> bool:
    """Whether the `count`-th event in a row (1-based) is announced under `change`: the first,
    then every `repeat`-th (repeat 10: 1, 10, 20, 30, ...). `repeat` below 1 announces only
    the first."""
    if count == 1:
        return True
    return repeat >= 1 and count % repeat == 0


@dataclass(frozen=True, slots=True)
class OutcomeAlerts:
    events: tuple[AlertEvent, ...]
    # Consecutive failures: for run.failed, including this run; for run.recovered, how many
    # came before this success.
    failures: int


def outcome_alerts(
    policy: NotifyPolicy, repeat: int, failures_before: int, status: RunStatus
) -> OutcomeAlerts:
    """The events a finished run raises, given how many runs in a row failed before it.
    `always`: every failure (run.failed) and every success (run.succeeded), plus
    run.recovered for the first success after failures. `change`: run.failed for the first
    failure and every `repeat`-th in a row, run.recovered for the first success after them,
    nothing else. A status that is neither (cancelled, skipped) raises nothing."""
    if status in _FAILED:
        count = failures_before + 1
        due = policy is NotifyPolicy.ALWAYS or repeat_due(count, repeat)
        return OutcomeAlerts((AlertEvent.FAILED,) if due else (), count)
    if status is RunStatus.OK:
        events: list[AlertEvent] = []
        if policy is NotifyPolicy.ALWAYS:
            events.append(AlertEvent.SUCCEEDED)
        if failures_before > 0:
            events.append(AlertEvent.RECOVERED)
        return OutcomeAlerts(tuple(events), failures_before)
    return OutcomeAlerts((), failures_before)


def late_due(policy: NotifyPolicy, repeat: int, late_in_a_row: int) -> bool:
    """Whether the `late_in_a_row`-th late start in a row (1-based) is announced: every one
    under `always`; under `change` the same rule as failures (an overloaded runner would
    otherwise announce every fire of a job on `* * * * *`)."""
    return policy is NotifyPolicy.ALWAYS or repeat_due(late_in_a_row, repeat)
