"""SQLite's change feed for GET /jobs (migration `jobs_list_feed`): writes that bypass the
store (a sqlite3 shell, a script writing SQL, a backup restored into the live file) are seen
by the next refresh."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from jeeves_runner.models import Job, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.jobs_list import JobsListView

T0 = "2026-03-02T01:00:00.000Z"


def add(store: SqliteStore, *job_ids: str) -> None:
    for job_id in job_ids:
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)


def test_plain_sql_from_another_connection_is_seen(store: SqliteStore, tmp_db: Path) -> None:
    add(store, "a", "b")
    run_id = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    view = JobsListView()
    store.jobs.refresh_jobs_list(view)
    shell = sqlite3.connect(tmp_db, isolation_level=None)
    try:
        shell.execute("UPDATE runs SET status = 'ok' WHERE id = ?", (run_id,))
        assert b'"last_status":"ok"' in store.jobs.refresh_jobs_list(view)
        shell.execute("UPDATE jobs SET name = 'Hand edit' WHERE id = 'b'")
        shell.execute(
            "INSERT INTO jobs (id, name, schedule, script, created_at, updated_at) "
            "VALUES ('c', 'c', '@daily', '/c', ?, ?)",
            (T0, T0),
        )
        # even a write that sets the feed's own column is seen
        shell.execute("UPDATE jobs SET list_seq = 1, enabled = 0 WHERE id = 'a'")
        assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
        shell.execute("DELETE FROM jobs WHERE id = 'a'")
        assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    finally:
        shell.close()
    assert view.full_reads == 2  # the first read and the one after the delete


def test_an_older_copy_restored_into_the_live_file_is_seen(
    store: SqliteStore, tmp_db: Path, tmp_path: Path
) -> None:
    add(store, "a", "b")
    backup = tmp_path / "backup.sqlite"
    with closing(sqlite3.connect(tmp_db)) as live, closing(sqlite3.connect(backup)) as copy:
        live.backup(copy)
    view = JobsListView()
    store.jobs.refresh_jobs_list(view)
    # After the backup: more changes than the copy has, so the counter runs past it...
    store.jobs.update_job(Job(id="a", name="Later", schedule="@daily", script="/x"), T0)
    store.jobs.delete_job("b")
    add(store, "c", "d", "e")
    store.jobs.refresh_jobs_list(view)
    # ...then the copy is restored into the live file, and changed again as often as it
    # takes to bring its counter back past the view's mark.
    with closing(sqlite3.connect(backup)) as copy, closing(sqlite3.connect(tmp_db)) as live:
        copy.backup(live)
    for n in range(8):
        store.jobs.set_enabled("a", n % 2 == 0, T0)
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    assert b'"id":"b"' in store.jobs.refresh_jobs_list(view)


def test_one_change_per_job_needs_no_count_and_a_delete_is_counted(store: SqliteStore) -> None:
    """When every move of the counter since the mark is a job read again, the view adds up
    without the count over every job; a delete (a move with no row) makes it count."""
    add(store, "a", "b", "c")
    view = JobsListView()
    store.jobs.refresh_jobs_list(view)
    statements: list[str] = []
    store.jobs._db.connection().set_trace_callback(statements.append)
    store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    store.jobs.set_enabled("b", False, T0)
    statements.clear()
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    assert not [s for s in statements if "count(*)" in s]
    store.jobs.delete_job("c")
    statements.clear()
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    assert [s for s in statements if "count(*)" in s]
    assert b'"id":"c"' not in store.jobs.refresh_jobs_list(view)
