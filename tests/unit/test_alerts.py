"""The runner's Notifier over a real SQLite store, with stand-in Slack and webhook servers on
127.0.0.1: alerts on change, where each event goes, the payloads."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from jeeves_runner.clock import FakeClock
from jeeves_runner.config import NotificationsConfig
from jeeves_runner.models import Job, RunResult, RunStatus, format_instant
from jeeves_runner.notify.alerts import Notifier, event_body, event_id
from jeeves_runner.notify_model import AlertEvent, NotifyStreak
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.sqlite import database
from stand_ins import SlackStandIn, WebhookStandIn

START = datetime(2026, 3, 2, 2, 26, tzinfo=UTC)
FAIL = RunResult(RunStatus.ERROR, 1200, exit_code=1, error="disk full")
OK = RunResult(RunStatus.OK, 3400, exit_code=0)
SECRET = "hush"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as server:
        yield server


@pytest.fixture
def other() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as server:
        yield server


def a_job(store: SqliteStore, **fields: Any) -> Job:
    values: dict[str, Any] = {"id": "backup", "name": "Nightly backup"} | fields
    job = Job(schedule="0 3 * * *", script="/x.sh", **values)
    store.jobs.add_job(job, format_instant(START))
    return job


def config(
    slack: SlackStandIn, tmp_path: Path, webhooks: list[dict[str, Any]] | None = None, **extra: Any
) -> NotificationsConfig:
    token = tmp_path / "slack.token"
    token.write_text("xoxb-test")
    return NotificationsConfig.model_validate(
        {
            "slackTokenPath": str(token),
            "slackApiUrl": slack.api_url,
            "webhooks": webhooks or [],
            **extra,
        }
    )


def with_notifier(
    store: SqliteStore,
    settings: NotificationsConfig,
    scenario: Callable[[Notifier], Awaitable[None]],
) -> None:
    """Runs `scenario` with a Notifier on a loop, then waits for everything it sent."""

    async def main() -> None:
        gateway = StoreGateway(store)
        notifier = Notifier(settings, store=gateway, clock=FakeClock(START))
        try:
            await scenario(notifier)
            assert await notifier.drain(10) == 0
        finally:
            await notifier.aclose()
            gateway.close()

    asyncio.run(main())


async def outcomes(notifier: Notifier, job: Job, *results: RunResult) -> None:
    """Each run's outcome in turn, as the dispatcher reports them (one per recorded run)."""
    for run_id, result in enumerate(results, start=1):
        notifier.notify_run_later(job, result, run_id)
        await notifier.drain(10)  # the order of runs is the order of their ends


def texts(slack: SlackStandIn) -> list[tuple[str, str]]:
    return [(p["channel"], p["text"]) for p in slack.posts]


def test_failing_failing_ok_under_change_posts_one_failure_and_one_recovery(
    store: SqliteStore, slack: SlackStandIn, receiver: WebhookStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="C-OPS")
    hooks = [
        {"name": "ops", "url": receiver.url, "events": ["run.failed", "run.recovered"]},
    ]

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, job, FAIL, FAIL, OK)

    with_notifier(store, config(slack, tmp_path, hooks), scenario)
    assert texts(slack) == [
        ("C-OPS", "⚠️ *Nightly backup* failed (1.2s): disk full"),
        ("C-OPS", "✅ *Nightly backup* recovered (3.4s) after 2 failed runs"),
    ]
    assert [(e["event"], e["id"], e["failures"]) for e in receiver.events] == [
        ("run.failed", "run-1-failed", 1),
        ("run.recovered", "run-3-recovered", 2),
    ]
    assert store.notify_state.get_streak("backup") == NotifyStreak(0, "ok", format_instant(START))


def test_change_reminds_every_notify_repeat_failures_in_a_row(
    store: SqliteStore, slack: SlackStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="C-OPS", notify_repeat=3)

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, job, *[FAIL] * 7)

    with_notifier(store, config(slack, tmp_path), scenario)
    assert [t for _, t in texts(slack)] == [
        "⚠️ *Nightly backup* failed (1.2s): disk full",
        "⚠️ *Nightly backup* failed again (3 in a row) (1.2s): disk full",
        "⚠️ *Nightly backup* failed again (6 in a row) (1.2s): disk full",
    ]


def test_always_posts_every_outcome_and_one_message_per_channel_on_recovery(
    store: SqliteStore, slack: SlackStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="C-OPS", on_success="C-OPS", notify="always")

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, job, OK, FAIL, FAIL, OK)

    with_notifier(store, config(slack, tmp_path), scenario)
    assert texts(slack) == [
        ("C-OPS", "✅ *Nightly backup* completed (3.4s)"),
        ("C-OPS", "⚠️ *Nightly backup* failed (1.2s): disk full"),
        ("C-OPS", "⚠️ *Nightly backup* failed again (2 in a row) (1.2s): disk full"),
        ("C-OPS", "✅ *Nightly backup* recovered (3.4s) after 2 failed runs"),
    ]


def test_under_always_a_recovery_reaches_both_channels_when_they_differ(
    store: SqliteStore, slack: SlackStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="C-OPS", on_success="C-DONE", notify="always")

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, job, FAIL, OK)

    with_notifier(store, config(slack, tmp_path), scenario)
    assert sorted(texts(slack)) == [
        ("C-DONE", "✅ *Nightly backup* completed (3.4s)"),
        ("C-OPS", "⚠️ *Nightly backup* failed (1.2s): disk full"),
        ("C-OPS", "✅ *Nightly backup* recovered (3.4s) after 1 failed run"),
    ]


def test_the_streak_survives_a_new_notifier_on_the_same_database(
    store: SqliteStore, slack: SlackStandIn, tmp_path: Path
) -> None:
    """A restart between two failures does not announce the second as a first."""
    job = a_job(store, on_failure="C-OPS")
    settings = config(slack, tmp_path)

    async def first(notifier: Notifier) -> None:
        await outcomes(notifier, job, FAIL)

    async def after_restart(notifier: Notifier) -> None:
        notifier.notify_run_later(job, FAIL, 2)
        await notifier.drain(10)
        notifier.notify_run_later(job, OK, 3)

    with_notifier(store, settings, first)
    with_notifier(store, settings, after_restart)
    assert [t for _, t in texts(slack)] == [
        "⚠️ *Nightly backup* failed (1.2s): disk full",
        "✅ *Nightly backup* recovered (3.4s) after 2 failed runs",
    ]


def test_cancelled_and_skipped_runs_send_nothing_and_keep_the_streak(
    store: SqliteStore, slack: SlackStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="C-OPS", on_success="C-OK", notify="always")
    cancelled = RunResult(RunStatus.CANCELLED, 5, error="Cancelled through the API")

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, job, FAIL, cancelled, RunResult(RunStatus.SKIPPED, 0))

    with_notifier(store, config(slack, tmp_path), scenario)
    assert len(slack.posts) == 1
    assert store.notify_state.get_streak("backup") == NotifyStreak(
        1, "error", format_instant(START)
    )


def test_a_job_naming_a_webhook_sends_to_it_and_not_to_slack(
    store: SqliteStore,
    slack: SlackStandIn,
    receiver: WebhookStandIn,
    other: WebhookStandIn,
    tmp_path: Path,
) -> None:
    job = a_job(store, on_failure="webhook:pager", notify="always", on_success="C-OK")
    hooks = [
        {"name": "pager", "url": receiver.url, "events": [], "secret": SECRET},
        {"name": "all", "url": other.url, "events": ["run.failed", "run.succeeded"]},
    ]

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, job, FAIL, OK)

    with_notifier(store, config(slack, tmp_path, hooks, defaultOnFailure="C-DEFAULT"), scenario)
    # pager: what the job sends it by name (failure side: the failure and the recovery).
    assert [e["event"] for e in receiver.events] == ["run.failed", "run.recovered"]
    for request in receiver.recorded():
        mac = hmac.new(SECRET.encode(), request.raw, hashlib.sha256).hexdigest()
        assert request.headers["x-jeeves-signature"] == f"sha256={mac}"
    # all: what it subscribes to, from every job; unsigned.
    assert [e["event"] for e in other.events] == ["run.failed", "run.succeeded"]
    assert "x-jeeves-signature" not in other.recorded()[0].headers
    # Slack: only the success side, which names a channel.
    assert texts(slack) == [("C-OK", "✅ *Nightly backup* completed (3.4s)")]


def test_a_webhook_named_and_subscribed_gets_an_event_once(
    store: SqliteStore, slack: SlackStandIn, receiver: WebhookStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="webhook:ops")
    hooks = [{"name": "ops", "url": receiver.url, "events": ["run.failed"]}]

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, job, FAIL)

    with_notifier(store, config(slack, tmp_path, hooks), scenario)
    assert [e["id"] for e in receiver.events] == ["run-1-failed"]


def test_a_job_naming_an_unknown_webhook_is_warned_about_once(
    store: SqliteStore, slack: SlackStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="webhook:gone")

    async def scenario(notifier: Notifier) -> None:
        with capture_logs() as logs:
            await outcomes(notifier, job, FAIL, OK, FAIL)
        warnings = [e for e in logs if e["event"].startswith("notification not sent")]
        assert len(warnings) == 1
        assert warnings[0]["destination"] == "webhook:gone"

    with_notifier(store, config(slack, tmp_path), scenario)
    assert slack.posts == []


def test_late_overdue_and_missed_go_to_the_failure_side(
    store: SqliteStore, slack: SlackStandIn, receiver: WebhookStandIn, tmp_path: Path
) -> None:
    job = a_job(store, on_failure="C-OPS", max_duration_ms=300_000)
    hooks = [
        {"name": "ops", "url": receiver.url, "events": ["run.late", "run.overdue", "run.missed"]}
    ]

    async def scenario(notifier: Notifier) -> None:
        notifier.run_late(job, 4, "2026-03-02T02:26:00.000Z", "2026-03-02T02:27:15.500Z")
        notifier.run_overdue(job, 5, "2026-03-02T02:26:00.000Z", 300_004)
        notifier.runs_missed(job, 6, 3, "2026-03-02T01:00:00.000Z", "2026-03-02T03:00:00.000Z")

    with_notifier(store, config(slack, tmp_path, hooks), scenario)
    assert sorted(texts(slack)) == sorted(
        [
            ("C-OPS", "⏰ *Nightly backup* started 75.5s late (due at 2026-03-02T02:26:00.000Z)"),
            (
                "C-OPS",
                "⏳ *Nightly backup* is still running after 300.0s (run 5, max_duration_ms 300000)",
            ),
            (
                "C-OPS",
                "⚠️ *Nightly backup* missed 3 fires from 2026-03-02T01:00:00.000Z "
                "to 2026-03-02T03:00:00.000Z",
            ),
        ]
    )
    late, overdue, missed = sorted(receiver.events, key=lambda e: e["run"]["id"])
    assert (late["id"], late["run"]["late_ms"]) == ("run-4-late", 75_500)
    assert (overdue["id"], overdue["run"]["elapsed_ms"]) == ("run-5-overdue", 300_004)
    assert (missed["id"], missed["run"]["missed_count"]) == ("run-6-missed", 3)


def test_the_payload_names_the_job_the_run_and_links() -> None:
    job = dataclasses.replace(
        Job(id="backup", name="Nightly backup", schedule="0 3 * * *", script="/x.sh"),
        tags=("prod",),
    )
    run = {"status": "error", "exit_code": 1, "duration_ms": 1200, "error": "disk full"}
    body = event_body(
        AlertEvent.FAILED, job, run, "2026-03-02T02:26:01.000Z", run_id=42, failures=1
    )
    assert body == (
        b'{"id":"run-42-failed","event":"run.failed","at":"2026-03-02T02:26:01.000Z",'
        b'"job":{"id":"backup","name":"Nightly backup","schedule":"0 3 * * *",'
        b'"timezone":null,"tags":["prod"],"notify":"change"},'
        b'"run":{"id":42,"status":"error","exit_code":1,"duration_ms":1200,"error":"disk full"},'
        b'"failures":1,'
        b'"links":{"run":"/runs/42","log":"/runs/42/log","dashboard":"/ui/runs/42"}}'
    )


@pytest.mark.parametrize(
    ("event", "run_id", "job_id", "expected"),
    [
        (AlertEvent.RECOVERED, 7, "x", "run-7-recovered"),
        (AlertEvent.MISSED, None, "a.b c", "job-a-b-c-missed"),
    ],
)
def test_event_ids_are_stable_and_link_friendly(
    event: AlertEvent, run_id: int | None, job_id: str, expected: str
) -> None:
    assert event_id(event, run_id, job_id) == expected


def test_a_database_that_refuses_the_streak_still_announces_a_failure(
    tmp_path: Path, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 50)  # a locked write fails at once
    store = SqliteStore(tmp_path / "locked.sqlite")
    job = a_job(store, on_failure="C-OPS")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout

    async def scenario(notifier: Notifier) -> None:
        with capture_logs() as logs:
            await outcomes(notifier, job, FAIL, FAIL)
        refused = [e for e in logs if e["event"].startswith("notification streak not recorded")]
        assert len(refused) == 2

    try:
        with_notifier(store, config(slack, tmp_path), scenario)
    finally:
        other.execute("ROLLBACK")
        other.close()
        store.close()
    assert len(slack.posts) == 2  # each read as a first failure: announced, not lost


def test_a_job_no_one_listens_to_costs_no_write(
    store: SqliteStore, slack: SlackStandIn, receiver: WebhookStandIn, tmp_path: Path
) -> None:
    quiet = a_job(store)  # no channel, no default, no webhook subscribed to outcomes
    hooks = [{"name": "late-only", "url": receiver.url, "events": ["run.late"]}]

    async def scenario(notifier: Notifier) -> None:
        await outcomes(notifier, quiet, FAIL, OK)

    with_notifier(store, config(slack, tmp_path, hooks), scenario)
    assert store.notify_state.get_streak("backup") is None
    assert slack.posts == [] and receiver.events == []
