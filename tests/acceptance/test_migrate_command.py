"""`jeeves-runner migrate --to postgresql://...`: the real command copies a SQLite database into
PostgreSQL; counts and a sample of rows agree on both sides, ids are kept and continue after,
and a target that holds data is refused unless --force."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.access_model import AuditAction, AuditEntry, Scope, StoredToken
from jeeves_runner.models import (
    Job,
    LogChunk,
    LogStream,
    RunLogWrite,
    RunResult,
    RunStatus,
    RunTrigger,
)
from jeeves_runner.queue_model import QueueDefinition
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.postgres import PostgresStore

RunCli = Callable[..., Any]  # tests/conftest.py run_cli

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
LATER = "2026-03-02T02:00:00.000Z"


@pytest.fixture
def source(tmp_db: Path) -> Path:
    """A SQLite database with some of everything."""
    store = SqliteStore(tmp_db)
    try:
        for n in range(5):
            store.jobs.add_job(
                Job(id=f"job-{n}", name=f"Jöb {n}", schedule="* * * * *", script="/x.sh",
                    timeout_ms=1000 * n or None, enabled=n != 3),
                T0,
            )  # fmt: skip
        for n in range(40):
            run_id = store.runs.create_run(
                f"job-{n % 5}", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0
            )
            if n % 7:
                result = RunResult(
                    status=RunStatus.OK if n % 2 else RunStatus.ERROR,
                    duration_ms=n,
                    exit_code=n % 2,
                    stdout=f"line {n}\nünïcode",
                    tokens=n,
                )
                store.runs.finish_run(run_id, result, T1)
        store.runs.record_skip("job-1", T1, "busy", RunTrigger.SCHEDULE, None)
        for status in (RunStatus.ERROR, RunStatus.ERROR):  # an alert streak goes along
            store.notify_state.record_outcome("job-2", status, T1)
        chunks = (
            LogChunk(0, LogStream.STDOUT, T0, b"line 1\n"),
            LogChunk(1, LogStream.STDERR, T1, b"\xff\x00 not text\n"),
        )
        store.logs.write_logs([RunLogWrite(1, chunks)])
        store.tokens.create_token(StoredToken("ci", Scope.TRIGGER, "hash-of-ci", T0, "cli:a"))
        store.audit.record(
            AuditEntry(T0, "cli:a", "local", AuditAction.JOB_ADDED, "job-0", after={"n": "ü"})
        )
        store.state.set("ns", "kept", json.dumps({"a": 1}), None, T0)
        store.state.set("ns", "ttl", "v", LATER, T0)
        for name in ("c", "a", "b"):  # one millisecond: order is insertion order
            store.state.set_item("ns", "kept", name, None, T0)
        store.queues.add_queue(QueueDefinition(id="q", name="Q", dedup_expr="$.k"), T0)
        for n in range(6):
            store.queues.enqueue("q", json.dumps({"k": n}), n % 2, None, T0)
        claimed = store.queues.claim("q", 2, T0)
        store.queues.done(claimed[0].id, T1)
    finally:
        store.close()
    return tmp_db


def test_migrate_copies_everything_and_rows_agree(
    run_cli: RunCli, source: Path, pg_url: str
) -> None:
    done = run_cli("migrate", "--to", pg_url, "--from", str(source))
    assert (done.code, done.stderr) == (0, "")
    assert done.stdout.strip() == (
        "Copied 5 jobs, 41 runs, 2 log chunks, 2 state keys, 3 state items, 1 queues, "
        f"6 queue items, 1 tokens, 1 audit entries from {source} to {pg_url}"
    )
    old, new = SqliteStore(source), PostgresStore(pg_url, pool_size=1)
    try:
        assert new.jobs.list_jobs() == old.jobs.list_jobs()
        assert new.jobs.list_jobs_with_last_run() == old.jobs.list_jobs_with_last_run()
        for job in old.jobs.list_jobs():
            assert new.runs.list_runs(job.id, 100) == old.runs.list_runs(job.id, 100)
        assert new.runs.finished_since(T0) == old.runs.finished_since(T0)
        assert new.runs.open_runs() == old.runs.open_runs()
        assert new.logs.read_log(1) == old.logs.read_log(1) and len(old.logs.read_log(1)) == 2
        assert new.tokens.list_tokens() == old.tokens.list_tokens()
        streak = old.notify_state.get_streak("job-2")
        assert streak is not None and new.notify_state.get_streak("job-2") == streak
        assert new.audit.list_entries(10) == old.audit.list_entries(10)
        assert new.state.list_keys("ns", T0, 10) == old.state.list_keys("ns", T0, 10)
        assert new.state.list_item_keys("ns", "kept", T0, None, True) == ["b", "a", "c"]
        assert new.queues.list_queues_with_counts() == old.queues.list_queues_with_counts()
        for item_id in range(1, 7):
            assert new.queues.get_item(item_id) == old.queues.get_item(item_id)
        assert new.queues.enqueue("q", '{"k": 5}', 0, None, T1) == -1  # dedup still holds
        # New rows continue after the copied ids.
        run_id = new.runs.create_run("job-0", RunTrigger.MANUAL, RunStatus.RUNNING, LATER)
        assert run_id == 42
        assert new.queues.enqueue("q", '{"k": 99}', 0, None, T1) == 7
        entry = AuditEntry(T1, "x", "local", AuditAction.JOB_ENABLED, "job-0")
        assert new.audit.record(entry) == 2
    finally:
        old.close()
        new.close()


def test_a_target_with_data_is_refused_unless_force(
    run_cli: RunCli, source: Path, pg_url: str
) -> None:
    assert run_cli("migrate", "--to", pg_url, "--from", str(source)).code == 0
    again = run_cli("migrate", "--to", pg_url, "--from", str(source))
    assert (again.code, again.stdout) == (1, "")
    assert again.stderr.strip() == (
        f"error: {pg_url} already holds data (5 jobs, 1 notify_state, 41 runs, 2 run_logs, "
        "2 state, 3 state_items, 1 queues, 6 queue_items, 1 api_tokens, 1 audit_log); "
        "use --force to replace it"
    )
    forced = run_cli("migrate", "--to", pg_url, "--from", str(source), "--force")
    assert forced.code == 0, forced.stderr
    assert forced.stdout.startswith("Copied 5 jobs, 41 runs,")
    new = PostgresStore(pg_url, pool_size=1)
    try:
        assert new.jobs.count_jobs() == 5
        assert len(new.runs.list_runs("job-0", 100)) == 8
    finally:
        new.close()


def test_bad_arguments_are_one_line(run_cli: RunCli, source: Path, tmp_path: Path) -> None:
    bad_url = run_cli("migrate", "--to", "sqlite:///x", "--from", str(source))
    assert bad_url.stderr.strip().startswith("error: --to must start with postgresql://")
    missing = run_cli("migrate", "--to", "postgresql://root@127.0.0.1:1/x", "--from", "nope.db")
    assert missing.stderr.strip().startswith("error: no database at ")
    down = run_cli("migrate", "--to", "postgresql://root@127.0.0.1:1/x", "--from", str(source))
    assert down.code == 1
    assert down.stderr.strip().startswith(
        "error: cannot connect to PostgreSQL at postgresql://root@127.0.0.1:1/x:"
    )
