"""Deleting a job while one of its runs is being finished: no deadlock, PostgreSQL only.

A run's end is one transaction that writes the last of its log (holding a key lock on the
run) and then updates the run, whose triggers update the job row. A delete that locked the
job row first and then met the run in its cascade would wait on the run while the finish
waited on the job: a deadlock, one side aborted. The delete takes the job's runs first."""

from __future__ import annotations

import threading
import time

import psycopg

from jeeves_runner.models import Job, RunStatus, RunTrigger
from jeeves_runner.store.postgres import PostgresStore

T0 = "2026-03-02T01:00:00.000Z"


def test_a_delete_waits_for_a_finishing_run_and_neither_is_aborted(
    store: PostgresStore, pg_url: str
) -> None:
    store.jobs.add_job(Job(id="j", name="j", schedule="* * * * *", script="/s.sh"), T0)
    run_id = store.runs.create_run("j", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    finishing = psycopg.connect(pg_url)
    watcher = psycopg.connect(pg_url, autocommit=True)
    try:
        finishing.execute(
            "INSERT INTO run_logs (run_id, seq, stream, at, data) VALUES (%s, 0, 'stdout', %s, %s)",
            (run_id, T0, b"last line\n"),
        )
        pid = finishing.info.backend_pid
        outcome: list[object] = []
        deleting = threading.Thread(
            target=lambda: outcome.append(_or_error(lambda: store.jobs.delete_job("j")))
        )
        deleting.start()
        # The delete is waiting on a lock (the finish holds the run).
        deadline = time.monotonic() + 10
        while not _someone_waits(watcher, pid):
            assert time.monotonic() < deadline, "the delete never waited on the run"
            time.sleep(0.01)
        finishing.execute(
            "UPDATE runs SET status = 'ok', finished_at = %s WHERE id = %s", (T0, run_id)
        )
        finishing.commit()  # raises DeadlockDetected if the delete held the job row
        deleting.join(15)
        assert outcome == [True]
        assert store.jobs.get_job("j") is None and store.runs.get_run(run_id) is None
    finally:
        finishing.close()
        watcher.close()


def _someone_waits(watcher: psycopg.Connection[tuple[object, ...]], holder: int) -> bool:
    row = watcher.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND %s = ANY(pg_blocking_pids(pid))",
        (holder,),
    ).fetchone()
    return row is not None and int(str(row[0])) > 0


def _or_error(call: object) -> object:
    try:
        return call()  # type: ignore[operator]
    except Exception as exc:  # the outcome is asserted, whatever it is
        return exc
