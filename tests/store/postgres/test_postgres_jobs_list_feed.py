"""PostgreSQL's change feed for GET /jobs (migration `jobs_list_feed`): writes that bypass
its triggers (a data-only restore with triggers disabled) are still seen, and a commit that
lands after a later one's is not lost."""

from __future__ import annotations

import psycopg

from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.postgres import PostgresStore

T0 = "2026-03-02T01:00:00.000Z"


def add(store: PostgresStore, *job_ids: str) -> None:
    for job_id in job_ids:
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)


def test_rows_written_with_triggers_disabled_are_seen_by_the_next_sweep(
    store: PostgresStore, pg_url: str
) -> None:
    """No list_xid stamp, so the index does not name them; the full pass, made at most
    `sweep_every_s` after the last one, does (by the row's own xmin)."""
    add(store, "a", "b")
    view = JobsListView(sweep_every_s=3600)
    store.jobs.refresh_jobs_list(view)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no user trigger fires
        conn.execute("UPDATE jobs SET name = 'Restored' WHERE id = 'a'")
    assert b'"name":"Restored"' not in store.jobs.refresh_jobs_list(view)  # between sweeps
    view.sweep_every_s = 0
    assert b'"name":"Restored"' in store.jobs.refresh_jobs_list(view)
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()


def test_between_sweeps_writes_and_deletes_are_seen_without_a_pass_over_every_job(
    store: PostgresStore, pg_url: str
) -> None:
    add(store, "a", "b", "c")
    view = JobsListView(sweep_every_s=3600)
    store.jobs.refresh_jobs_list(view)
    swept = view.swept_at
    run_id = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    store.jobs.set_enabled("b", False, T0)
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    assert view.swept_at == swept  # the index found them
    store.runs.finish_run(run_id, RunResult(status=RunStatus.OK, duration_ms=1), T0)
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    assert view.swept_at == swept
    store.jobs.delete_job("c")  # leaves no row: the deletes' stamp makes it a sweep
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    assert view.swept_at != swept and b'"id":"c"' not in store.jobs.refresh_jobs_list(view)


def test_a_commit_after_a_later_transaction_is_seen(store: PostgresStore, pg_url: str) -> None:
    add(store, "a", "b")
    view = JobsListView()
    store.jobs.refresh_jobs_list(view)
    with psycopg.connect(pg_url) as slow, psycopg.connect(pg_url) as quick:
        # `slow` takes its transaction id first and commits last; a read in between sees
        # `quick`'s change and must still see `slow`'s once it commits.
        slow.execute("UPDATE jobs SET name = 'Slow' WHERE id = 'a'")
        quick.execute("UPDATE jobs SET name = 'Quick' WHERE id = 'b'")
        quick.commit()
        assert b'"name":"Quick"' in store.jobs.refresh_jobs_list(view)
        slow.commit()
    assert b'"name":"Slow"' in store.jobs.refresh_jobs_list(view)
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()
    assert view.full_reads == 1
