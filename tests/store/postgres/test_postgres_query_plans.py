"""The statements that must stay cheap at scale use their indexes (EXPLAIN on analyzed
tables), so a later edit that quietly turns one into a scan of the history fails here."""

from __future__ import annotations

from typing import Any

import pytest

from jeeves_runner.store.postgres import PostgresStore, jobs, logs, queues, runs
from postgres_server import SERVER

pytestmark = pytest.mark.slow  # each fills tables with 20,000 rows

NOW = "2026-03-02T01:00:00.000Z"


def plan(store: PostgresStore, sql: str, params: Any = None) -> str:
    with store.db.connection() as conn:
        rows = conn.execute("EXPLAIN " + sql, params).fetchall()
    return "\n".join(str(row[0]) for row in rows)


def fill(store: PostgresStore, pg_url: str) -> None:
    """200 jobs with 20,000 runs, 20,000 queue items, written in bulk and analyzed."""
    schema = pg_url.rsplit("%3D", 1)[1]
    SERVER.execute(f'SET search_path = "{schema}"')
    try:
        SERVER.execute(
            "INSERT INTO jobs (id, name, schedule, script, created_at, updated_at) "
            "SELECT 'job-' || n, 'J', '* * * * *', '/x', %s, %s FROM generate_series(1, 200) n",
            (NOW, NOW),
        )
        SERVER.execute(
            "INSERT INTO runs (job_id, status, started_at, finished_at) "
            "SELECT 'job-' || (n %% 200 + 1), 'ok', %s, %s FROM generate_series(1, 20000) n",
            (NOW, NOW),
        )
        SERVER.execute("INSERT INTO queues (id, name, created_at) VALUES ('q', 'q', %s)", (NOW,))
        SERVER.execute(
            "INSERT INTO queue_items (queue_id, payload, status, created_at) "
            "SELECT 'q', '1', CASE WHEN n %% 100 = 0 THEN 'pending' ELSE 'done' END, %s "
            "FROM generate_series(1, 20000) n",
            (NOW,),
        )
        SERVER.execute("ANALYZE jobs, runs, queues, queue_items")
    finally:
        SERVER.execute("RESET search_path")


def test_listing_jobs_looks_up_one_run_per_job(store: PostgresStore, pg_url: str) -> None:
    fill(store, pg_url)
    steps = plan(store, jobs._LIST_WITH_LAST_RUN)
    assert "Index Scan using runs_pkey on runs" in steps, steps
    assert "Seq Scan on runs" not in steps, steps


def test_claiming_reads_the_pending_index(store: PostgresStore, pg_url: str) -> None:
    fill(store, pg_url)
    steps = plan(store, queues._CLAIM, {"now": NOW, "queue": "q", "count": 5})
    assert "queue_items_claim" in steps, steps
    assert "Seq Scan on queue_items" not in steps, steps


def test_a_jobs_runs_and_a_runs_log_are_read_by_their_keys(
    store: PostgresStore, pg_url: str
) -> None:
    fill(store, pg_url)
    page = plan(store, runs._LIST, ("job-5", logs.SEQ_END, [], [], 50))
    assert "Index Scan Backward using runs_job_id on runs" in page, page
    unfinished = plan(store, runs._COUNT_UNFINISHED, ("job-5",))
    assert "runs_unfinished" in unfinished, unfinished
    tail = plan(store, logs._READ_NEWEST_FIRST, (5, logs.SEQ_END, ["stdout"], 16))
    assert "Index Scan Backward using run_logs_pkey on run_logs" in tail, tail
    since = plan(store, runs._LIST_SINCE, ("2026-03-03T00:00:00.000Z", logs.SEQ_END, [], [], 50))
    assert "runs_by_start" in since, since
    for steps in (page, unfinished, tail, since):
        assert "Seq Scan" not in steps, steps
