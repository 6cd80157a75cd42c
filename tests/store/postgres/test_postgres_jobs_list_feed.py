"""PostgreSQL's change feed for GET /jobs (migration `jobs_list_feed`): writes that bypass
its triggers (a data-only restore with triggers disabled) are still seen, and a commit that
lands after a later one's is not lost."""

from __future__ import annotations

import psycopg

from jeeves_runner.models import Job
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.postgres import PostgresStore

T0 = "2026-03-02T01:00:00.000Z"


def add(store: PostgresStore, *job_ids: str) -> None:
    for job_id in job_ids:
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)


def test_rows_written_with_triggers_disabled_are_seen(store: PostgresStore, pg_url: str) -> None:
    add(store, "a", "b")
    view = JobsListView()
    store.jobs.refresh_jobs_list(view)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no user trigger fires
        conn.execute("UPDATE jobs SET name = 'Restored' WHERE id = 'a'")
    assert b'"name":"Restored"' in store.jobs.refresh_jobs_list(view)
    assert store.jobs.refresh_jobs_list(view) == store.jobs.jobs_list_json()


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
