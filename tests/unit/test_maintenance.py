"""Maintenance on a real SQLite file with a FakeClock: old runs (never a running one),
expired state and its items, finished queue items past retention, expired leases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jeeves_runner.access_model import AuditAction, AuditEntry
from jeeves_runner.client import RunnerClient
from jeeves_runner.clock import FakeClock
from jeeves_runner.maintenance import Maintenance, MaintenanceReport
from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger, format_instant
from jeeves_runner.store import SqliteStore

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
DAY = 86_400.0
NOTHING = MaintenanceReport(0, 0, 0, 0, 0, 0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def jr(store: SqliteStore, clock: FakeClock) -> RunnerClient:
    return RunnerClient.on_store(store, clock)


def add_run(store: SqliteStore, clock: FakeClock, status: RunStatus) -> int:
    at = format_instant(clock.now())
    if store.jobs.get_job("job") is None:
        store.jobs.add_job(Job(id="job", name="Job", schedule="* * * * *", script="/x.sh"), at)
    if status is RunStatus.RUNNING:
        return store.runs.create_run("job", RunTrigger.SCHEDULE, RunStatus.RUNNING, at)
    run_id = store.runs.create_run("job", RunTrigger.SCHEDULE, RunStatus.RUNNING, at)
    store.runs.finish_run(run_id, RunResult(status=status, duration_ms=5), at)
    return run_id


def test_an_empty_database_needs_nothing(store: SqliteStore, clock: FakeClock) -> None:
    assert Maintenance(store, clock, 30).run_once() == NOTHING


def test_retention_must_be_at_least_a_day(store: SqliteStore, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="run_retention_days must be at least 1, got 0"):
        Maintenance(store, clock, 0)


def test_old_runs_go_and_a_running_run_stays_however_old(
    store: SqliteStore, clock: FakeClock
) -> None:
    old_ok = add_run(store, clock, RunStatus.OK)
    old_error = add_run(store, clock, RunStatus.ERROR)
    stuck = add_run(store, clock, RunStatus.RUNNING)
    clock.advance(20 * DAY)
    recent = add_run(store, clock, RunStatus.OK)
    clock.advance(10 * DAY)  # the old ones are exactly 30 days old: kept
    assert Maintenance(store, clock, 30).run_once().runs_deleted == 0
    clock.advance(0.001)

    report = Maintenance(store, clock, 30).run_once()

    assert report.runs_deleted == 2
    assert store.runs.get_run(old_ok) is None
    assert store.runs.get_run(old_error) is None
    assert store.runs.get_run(stuck) is not None
    assert store.runs.get_run(recent) is not None


def test_expired_state_and_its_items_are_deleted(
    store: SqliteStore, jr: RunnerClient, clock: FakeClock
) -> None:
    jr.set_state("ns", "short", "v", ttl="1h")
    jr.set_item("ns", "short", "a")
    jr.set_item("ns", "short", "b")
    jr.set_state("ns", "long", "v", ttl="2h")
    jr.set_item("ns", "long", "c")
    jr.set_state("ns", "forever", "v")
    clock.advance(3600)

    report = Maintenance(store, clock, 30).run_once()

    assert (report.state_keys_deleted, report.state_items_deleted) == (1, 2)
    rows = store.db.connection().execute("SELECT key FROM state ORDER BY key").fetchall()
    assert [r[0] for r in rows] == ["forever", "long"]
    items = store.db.connection().execute("SELECT item_key FROM state_items").fetchall()
    assert [r[0] for r in items] == ["c"]


def test_finished_queue_items_go_after_their_queues_retention(
    store: SqliteStore, jr: RunnerClient, clock: FakeClock
) -> None:
    jr.add_queue("short", retention_days=1)
    jr.add_queue("long", retention_days=10)
    for queue in ("short", "long"):
        for n in range(3):
            jr.enqueue(queue, n)
        done, failed, _held = jr.dequeue(queue, 3)
        jr.done(done.id)
        jr.fail(failed.id)
        jr.enqueue(queue, "waiting")
    clock.advance(2 * DAY)

    report = Maintenance(store, clock, 30).run_once()

    assert report.queue_items_deleted == 2
    counts = {
        row["id"]: row
        for row in store.db.connection().execute(
            "SELECT queue_id AS id, count(*) AS n FROM queue_items GROUP BY queue_id"
        )
    }
    assert (counts["short"]["n"], counts["long"]["n"]) == (2, 4)


def test_expired_leases_return_to_pending_or_dead_letter(
    store: SqliteStore, jr: RunnerClient, clock: FakeClock
) -> None:
    jr.add_queue("retry", lease_ms=60_000, max_attempts=2)
    jr.add_queue("once", lease_ms=60_000)
    for queue in ("retry", "once"):
        jr.enqueue(queue, queue)
        jr.dequeue(queue)
    clock.advance(59.999)
    assert Maintenance(store, clock, 30).run_once() == NOTHING
    clock.advance(0.001)

    report = Maintenance(store, clock, 30).run_once()

    assert (report.leases_returned, report.leases_dead_lettered) == (1, 1)
    [again] = jr.dequeue("retry")
    assert again.attempts == 2
    assert jr.dequeue("once") == []


def test_a_dead_lettered_item_is_kept_for_its_retention(
    store: SqliteStore, jr: RunnerClient, clock: FakeClock
) -> None:
    # Leases expire before the retention prune in one pass, and expiry stamps finished_at
    # now, so an item that was claimed long ago is not deleted the moment it fails.
    jr.add_queue("q", lease_ms=60_000, retention_days=1)
    item_id = jr.enqueue("q", 1)
    jr.dequeue("q")
    clock.advance(3 * DAY)
    report = Maintenance(store, clock, 30).run_once()
    assert (report.leases_dead_lettered, report.queue_items_deleted) == (1, 0)
    clock.advance(DAY + 0.001)
    assert Maintenance(store, clock, 30).run_once().queue_items_deleted == 1
    assert jr.done(item_id) is False


def test_the_report_is_a_dict_for_the_log() -> None:
    report = MaintenanceReport(1, 2, 3, 4, 5, 6, 7)
    assert report.as_dict() == {
        "runs_deleted": 1,
        "state_keys_deleted": 2,
        "state_items_deleted": 3,
        "queue_items_deleted": 4,
        "leases_returned": 5,
        "leases_dead_lettered": 6,
        "audit_entries_deleted": 7,
    }


def test_audit_entries_older_than_their_retention_are_pruned(
    store: SqliteStore, clock: FakeClock
) -> None:
    old = format_instant(clock.now())
    store.audit.record(AuditEntry(old, "cli:alice", "local", AuditAction.JOB_ADDED, "a"))
    clock.advance(10 * DAY)
    store.audit.record(
        AuditEntry(format_instant(clock.now()), "ci", "127.0.0.1", AuditAction.JOB_ENABLED, "a")
    )
    assert (
        Maintenance(store, clock, 30, audit_retention_days=10)
        .run_once()
        .as_dict()["audit_entries_deleted"]
        == 0
    )  # exactly 10 days old: kept
    clock.advance(0.001)
    report = Maintenance(store, clock, 30, audit_retention_days=10).run_once()
    assert report.audit_entries_deleted == 1
    assert [e["actor"] for e in store.audit.list_entries(10)] == ["ci"]
