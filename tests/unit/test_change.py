"""Alerts on change: tables of (policy, repeat, streak, outcome) -> events."""

from __future__ import annotations

import pytest

from jeeves_runner.models import RunStatus
from jeeves_runner.notify.change import (
    OutcomeAlerts,
    late_due,
    outcome_alerts,
    policy_of,
    repeat_due,
)
from jeeves_runner.notify_model import AlertEvent, NotifyPolicy

ALWAYS, CHANGE = NotifyPolicy.ALWAYS, NotifyPolicy.CHANGE
FAILED, RECOVERED, SUCCEEDED = AlertEvent.FAILED, AlertEvent.RECOVERED, AlertEvent.SUCCEEDED
ERROR, TIMEOUT, OK = RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.OK


@pytest.mark.parametrize(
    ("policy", "repeat", "before", "status", "expected"),
    [
        # change: the first failure, then every repeat-th in a row
        (CHANGE, 10, 0, ERROR, OutcomeAlerts((FAILED,), 1)),
        (CHANGE, 10, 0, TIMEOUT, OutcomeAlerts((FAILED,), 1)),
        (CHANGE, 10, 1, ERROR, OutcomeAlerts((), 2)),
        (CHANGE, 10, 8, ERROR, OutcomeAlerts((), 9)),
        (CHANGE, 10, 9, ERROR, OutcomeAlerts((FAILED,), 10)),
        (CHANGE, 10, 10, TIMEOUT, OutcomeAlerts((), 11)),
        (CHANGE, 10, 19, ERROR, OutcomeAlerts((FAILED,), 20)),
        (CHANGE, 3, 2, ERROR, OutcomeAlerts((FAILED,), 3)),
        (CHANGE, 1, 5, ERROR, OutcomeAlerts((FAILED,), 6)),  # repeat 1: every failure
        (CHANGE, 0, 9, ERROR, OutcomeAlerts((), 10)),  # below 1: only the first
        # change: a success after failures is a recovery; a success after success is quiet
        (CHANGE, 10, 0, OK, OutcomeAlerts((), 0)),
        (CHANGE, 10, 1, OK, OutcomeAlerts((RECOVERED,), 1)),
        (CHANGE, 10, 37, OK, OutcomeAlerts((RECOVERED,), 37)),
        # always: every outcome, and the recovery as well
        (ALWAYS, 10, 0, ERROR, OutcomeAlerts((FAILED,), 1)),
        (ALWAYS, 10, 4, ERROR, OutcomeAlerts((FAILED,), 5)),
        (ALWAYS, 10, 0, OK, OutcomeAlerts((SUCCEEDED,), 0)),
        (ALWAYS, 10, 2, OK, OutcomeAlerts((SUCCEEDED, RECOVERED), 2)),
        # neither failure nor success: nothing, the streak as it was
        (CHANGE, 10, 3, RunStatus.CANCELLED, OutcomeAlerts((), 3)),
        (ALWAYS, 10, 0, RunStatus.SKIPPED, OutcomeAlerts((), 0)),
    ],
)
def test_outcome_alerts(
    policy: NotifyPolicy, repeat: int, before: int, status: RunStatus, expected: OutcomeAlerts
) -> None:
    assert outcome_alerts(policy, repeat, before, status) == expected


def test_failing_failing_ok_under_change_is_one_failure_and_one_recovery() -> None:
    before, sent = 0, []
    for status in (ERROR, ERROR, OK):
        alerts = outcome_alerts(CHANGE, 10, before, status)
        sent += alerts.events
        before = alerts.failures if status is not OK else 0
    assert sent == [FAILED, RECOVERED]


@pytest.mark.parametrize(
    ("count", "repeat", "due"),
    [(1, 10, True), (2, 10, False), (10, 10, True), (15, 10, False), (30, 10, True),
     (1, 0, True), (2, 1, True), (4, 2, True), (5, 2, False), (7, -3, False)],
)  # fmt: skip
def test_repeat_due(count: int, repeat: int, due: bool) -> None:
    assert repeat_due(count, repeat) is due


@pytest.mark.parametrize(
    ("policy", "repeat", "in_a_row", "due"),
    [(ALWAYS, 10, 1, True), (ALWAYS, 10, 2, True), (CHANGE, 10, 1, True),
     (CHANGE, 10, 2, False), (CHANGE, 10, 10, True), (CHANGE, 2, 4, True)],
)  # fmt: skip
def test_late_due(policy: NotifyPolicy, repeat: int, in_a_row: int, due: bool) -> None:
    assert late_due(policy, repeat, in_a_row) is due


@pytest.mark.parametrize(
    ("value", "policy"), [("always", ALWAYS), ("change", CHANGE), ("", CHANGE), ("loud", CHANGE)]
)
def test_policy_of_reads_unknown_values_as_change(value: str, policy: NotifyPolicy) -> None:
    assert policy_of(value) is policy
