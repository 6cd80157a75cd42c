"""JobStore.refresh_jobs_list contract: GET /jobs's body kept up to date from the database's
change feed, run once per backend (see conftest.py). After every kind of write, by this
connection or another one, the refreshed body is byte for byte the body built from scratch."""

from __future__ import annotations

import dataclasses

from store_backends import Backend

from jeeves_runner.models import Job, RunLogWrite, RunResult, RunStatus, RunTrigger
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
T2 = "2026-03-02T01:00:02.000Z"
T3 = "2026-03-02T01:00:03.000Z"


def a_job(job_id: str, **changes: object) -> Job:
    job = Job(id=job_id, name=f"Job {job_id}", schedule="* * * * *", script=f"/s/{job_id}.sh")
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def assert_fresh(store: Store, view: JobsListView, reader: Store | None = None) -> bytes:
    """The view refreshed by `reader` (default: `store`) is the body built from scratch."""
    body = (reader or store).jobs.refresh_jobs_list(view)
    assert body == store.jobs.jobs_list_json()
    return body


def test_a_first_refresh_is_the_whole_body(store: Store) -> None:
    view = JobsListView()
    assert store.jobs.refresh_jobs_list(view) == b'{"jobs":[]}'
    for job_id in ("b", "a", 'ünï"code'):
        store.jobs.add_job(a_job(job_id, tags=("x",), env={"K": "v\n"}), T0)
    assert_fresh(store, JobsListView())


def test_every_change_shown_by_get_jobs_is_read_again_and_only_that(store: Store) -> None:
    for job_id in ("a", "b", "c"):
        store.jobs.add_job(a_job(job_id), T0)
    view = JobsListView()
    assert_fresh(store, view)
    steps = [
        lambda: store.jobs.add_job(a_job("d", command=("echo", "hi")), T1),
        lambda: store.jobs.update_job(a_job("a", name="Renamed", tags=("t",)), T1),
        lambda: store.jobs.set_enabled("b", False, T1),
        lambda: store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T1),
        # the run a job points at ends: only its status moves
        lambda: store.runs.finish_run(1, RunResult(status=RunStatus.OK, duration_ms=5), T2),
        # a pending run (not shown) that then starts (shown)
        lambda: store.runs.create_run("b", RunTrigger.RETRY, RunStatus.PENDING, T2),
        lambda: store.runs.mark_running([(2, "b", T3)]),
        # a pending run that ends before its `running` mark was written
        lambda: store.runs.create_run("c", RunTrigger.MANUAL, RunStatus.PENDING, T2),
        lambda: store.runs.finish_run(
            3, RunResult(status=RunStatus.ERROR, duration_ms=1), T3, started=("c", T2)
        ),
        lambda: store.runs.record_skip("a", T3, "busy", RunTrigger.SCHEDULE, None),
    ]
    for step in steps:
        step()
        assert_fresh(store, view)
    assert view.full_reads == 1, "each change was read on its own, not the whole list"
    shown = {j["id"]: j["last_status"] for j in store.jobs.list_jobs_with_last_run()}
    assert shown == {"a": "ok", "b": "running", "c": "error", "d": None}


def test_deleted_jobs_and_runs_leave_the_body(store: Store) -> None:
    for job_id in ("a", "b", "c"):
        store.jobs.add_job(a_job(job_id), T0)
    first = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    store.runs.finish_run(first, RunResult(status=RunStatus.OK, duration_ms=5), T1)
    second = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T1)
    store.runs.finish_run(second, RunResult(status=RunStatus.ERROR, duration_ms=5), T2)
    view = JobsListView()
    assert_fresh(store, view)
    assert store.jobs.delete_job("b")
    assert b'"id":"b"' not in assert_fresh(store, view)
    # a delete and an add between two reads: the same count, another set
    store.jobs.delete_job("c")
    store.jobs.add_job(a_job("e"), T3)
    assert_fresh(store, view)
    store.jobs.apply_jobs([a_job("f")], [a_job("a", name="Applied")], ["e"], T3)
    assert_fresh(store, view)
    store.runs.prune_runs("2030-01-01T00:00:00.000Z")  # keeps each job's last run
    assert_fresh(store, view)


def test_nothing_changed_gives_the_same_body(store: Store) -> None:
    store.jobs.add_job(a_job("a"), T0)
    view = JobsListView()
    body = store.jobs.refresh_jobs_list(view)
    assert store.jobs.refresh_jobs_list(view) is body
    # writes GET /jobs does not show: a state key, a run's output tail
    store.state.set("ns", "key", "value", None, T0)
    run_id = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    body = store.jobs.refresh_jobs_list(view)
    store.logs.write_logs([RunLogWrite(run_id, tails=("out", "err"))])
    assert store.jobs.refresh_jobs_list(view) is body
    assert view.full_reads == 1


def test_changes_by_another_connection_are_seen(backend: Backend) -> None:
    reader, writer = backend.open(), backend.open()
    try:
        writer.jobs.add_job(a_job("a"), T0)
        view = JobsListView()
        assert_fresh(writer, view, reader)
        writer.jobs.add_job(a_job("b"), T0)
        assert_fresh(writer, view, reader)
        run_id = writer.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.RUNNING, T1)
        assert b'"last_status":"running"' in assert_fresh(writer, view, reader)
        writer.runs.finish_run(run_id, RunResult(status=RunStatus.TIMEOUT, duration_ms=9), T2)
        assert b'"last_status":"timeout"' in assert_fresh(writer, view, reader)
        writer.jobs.delete_job("a")
        assert_fresh(writer, view, reader)
    finally:
        reader.close()
        writer.close()


def test_a_list_too_large_to_keep_is_read_whole_each_time(store: Store) -> None:
    for job_id in ("a", "b"):
        store.jobs.add_job(a_job(job_id), T0)
    view = JobsListView(max_bytes=100)
    assert_fresh(store, view)
    assert (view.mark, view.pieces, view.body) == (None, [], None)
    store.jobs.set_enabled("a", False, T1)
    assert_fresh(store, view)
    assert view.full_reads == 2
