"""The PostgreSQL backend's own machinery: migrations, connecting, errors, data_version."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from jeeves_runner.models import (
    LogChunk,
    LogStream,
    RunLogWrite,
    RunResult,
    RunStatus,
    RunTrigger,
)
from jeeves_runner.store.errors import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    SchemaTooNewError,
    StoreError,
)
from jeeves_runner.store.locations import redact_url
from jeeves_runner.store.postgres import PostgresStore
from jeeves_runner.store.postgres.database import SCHEMA_VERSION
from postgres_server import SERVER

NOW = "2026-03-02T01:00:00.000Z"


def schema_of(url: str) -> str:
    return urlsplit(url).query.split("%3D")[-1]


def test_a_fresh_schema_is_migrated_and_versioned(store: PostgresStore, pg_url: str) -> None:
    schema = schema_of(pg_url)
    rows = SERVER.execute(f'SELECT version FROM "{schema}".schema_version ORDER BY version')
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    tables = SERVER.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "ORDER BY table_name",
        (schema,),
    )
    assert [t[0] for t in tables] == [
        "api_tokens",
        "audit_log",
        "cluster_nodes",
        "cluster_plan",
        "job_fire_marks",
        "jobs",
        "jobs_list_deletes",
        "notify_state",
        "queue_items",
        "queues",
        "run_logs",
        "runs",
        "schema_version",
        "state",
        "state_items",
    ]
    assert store.db.schema_version() == SCHEMA_VERSION
    assert store.integrity_problem() is None


def test_reopening_does_not_migrate_again(store: PostgresStore, pg_url: str) -> None:
    store.state.set("ns", "k", "kept", None, NOW)
    again = PostgresStore(pg_url)
    try:
        assert again.state.get("ns", "k", NOW) == "kept"
    finally:
        again.close()
    rows = SERVER.execute(f'SELECT count(*) FROM "{schema_of(pg_url)}".schema_version')
    assert rows == [(SCHEMA_VERSION,)]


def test_processes_opening_an_empty_schema_together_migrate_it_once(pg_url: str) -> None:
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(pg_url, pool_size=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in opened:
        s.close()
    assert errors == []
    assert len(opened) == 4
    rows = SERVER.execute(f'SELECT count(*) FROM "{schema_of(pg_url)}".schema_version')
    assert rows == [(SCHEMA_VERSION,)]


def test_a_schema_from_a_newer_program_is_refused_untouched(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    schema = schema_of(pg_url)
    SERVER.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES (%s)', (999,))
    with pytest.raises(SchemaTooNewError) as caught:
        PostgresStore(pg_url)
    assert str(caught.value).endswith(
        f"has schema version 999, newer than this program supports ({SCHEMA_VERSION}); "
        "upgrade jeeves-runner to use it"
    )


def test_an_unreachable_server_is_one_line_naming_it() -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore("postgresql://root:secret@127.0.0.1:1/nowhere")
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://root:***@127.0.0.1:1/")
    assert "refused" in message.lower()
    assert "\n" not in message and "secret" not in message


def test_an_unknown_database_is_named() -> None:
    url = urlunsplit(urlsplit(SERVER.url())._replace(path="/jr_no_such_database"))
    with pytest.raises(StoreError, match='database "jr_no_such_database" does not exist'):
        PostgresStore(url)


def test_a_malformed_url_is_one_line() -> None:
    with pytest.raises(StoreError, match="is not a usable PostgreSQL URL"):
        PostgresStore("postgresql://root@127.0.0.1:5432/db?nonsense_option=1")


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5/db?x=1") == "postgresql://u:***@h:5/db?x=1"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_data_version_moves_when_another_connection_commits(
    store: PostgresStore, pg_url: str
) -> None:
    before = store.data_version()
    assert store.data_version() == before  # nothing committed: equal
    SERVER.execute(
        f'INSERT INTO "{schema_of(pg_url)}".state (namespace, key, value, updated_at) '
        "VALUES ('n', 'k', 'v', %s)",
        (NOW,),
    )
    assert store.data_version() != before
    after = store.data_version()
    store.state.set("n", "k2", "v", None, NOW)  # our own commits move it too
    assert store.data_version() != after


def test_connections_the_server_ended_are_replaced_before_use(store: PostgresStore) -> None:
    store.state.set("n", "k", "v", None, NOW)
    # The server ends every connection of this store (a restart, a failover, an admin)...
    ended = SERVER.execute(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'jeeves-runner'"
    )
    assert ended
    SERVER.execute(
        "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", ([p for (p,) in ended],)
    )
    deadline = time.monotonic() + 10
    while SERVER.execute(
        "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", ([p for (p,) in ended],)
    ):
        assert time.monotonic() < deadline, "the server did not end the sessions"
        time.sleep(0.01)
    # ...and the next calls get new ones instead of failing.
    for _ in range(5):
        assert store.state.get("n", "k", NOW) == "v"
    store.state.set("n", "k", "w", None, NOW)
    assert store.state.get("n", "k", NOW) == "w"


def test_a_connection_lost_mid_use_is_unavailable(store: PostgresStore) -> None:
    with store.db.connection() as conn:
        pid = conn.info.backend_pid
        SERVER.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError) as caught:
            conn.execute("SELECT pg_sleep(0.2)")  # the session is being ended
    translated = store.translate_error(caught.value)
    assert isinstance(translated, DatabaseUnavailableError)
    assert str(translated).startswith(f"PostgreSQL at {store.location} cannot be used now (")
    assert store.state.get("n", "k", NOW) is None  # the pool carries on


def test_lock_timeouts_and_deadlocks_are_busy(store: PostgresStore) -> None:
    for exc in (
        psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.SerializationFailure("could not serialize access"),
    ):
        assert isinstance(store.translate_error(exc), DatabaseBusyError)
    full = store.translate_error(psycopg.errors.DiskFull("could not extend file"))
    assert isinstance(full, DatabaseUnavailableError)
    assert "full" in str(full)
    other = ValueError("not a database error")
    assert store.translate_error(other) is other
    unique = psycopg.errors.UniqueViolation("duplicate key")
    assert store.translate_error(unique) is unique


def test_text_holding_nul_is_refused_in_one_line(store: PostgresStore) -> None:
    with pytest.raises(psycopg.DataError) as caught:
        store.state.set("ns", "k", "a\x00b", None, NOW)
    translated = store.translate_error(caught.value)
    assert isinstance(translated, ValueError)
    assert str(translated) == "PostgreSQL cannot store text holding the NUL character (\\x00)"
    assert store.state.get("ns", "k", NOW) is None


def test_a_schema_at_version_1_is_migrated_with_its_rows_kept(pg_url: str) -> None:
    """Runners of the first PostgreSQL release: their jobs and runs come through the
    migrations that added job fields, tokens and the audit log, run logs and `cancelled`."""
    import jeeves_runner.store.postgres as backend

    first = (Path(backend.__file__).parent / "migrations" / "0001_initial.sql").read_text()
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        conn.execute(first.encode("utf-8"))
        conn.execute(
            "CREATE TABLE schema_version "
            "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute(
            "INSERT INTO jobs (id, name, schedule, script, created_at, updated_at) "
            "VALUES ('old', 'Old', '* * * * *', '/x.sh', %s, %s)",
            (NOW, NOW),
        )
        row = conn.execute(
            "INSERT INTO runs (job_id, status, started_at) VALUES ('old', 'running', %s) "
            "RETURNING id",
            (NOW,),
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
    store = PostgresStore(pg_url)
    try:
        assert store.db.schema_version() == SCHEMA_VERSION
        job = store.jobs.get_job("old")
        assert job is not None
        assert (job.command, job.args, job.env, job.tags, job.source) == (None, (), {}, (), None)
        [listed] = store.jobs.list_jobs_with_last_run()
        assert (listed["last_status"], listed["last_run"]) == ("running", NOW)
        store.runs.finish_run(run_id, RunResult(RunStatus.CANCELLED, 3, error="stop"), NOW)
        chunk = LogChunk(0, LogStream.STDOUT, NOW, b"kept\n")
        store.logs.write_logs([RunLogWrite(run_id, (chunk,))])
        assert store.logs.read_log(run_id) == [chunk]
        cancelled = store.runs.list_runs("old", 10, statuses=[RunStatus.CANCELLED])
        assert [r["id"] for r in cancelled] == [run_id]
        new_run = store.runs.create_run("old", RunTrigger.MANUAL, RunStatus.RUNNING, NOW)
        assert new_run == run_id + 1
    finally:
        store.close()
