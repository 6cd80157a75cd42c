"""RunStore.refresh_runs_list contract: GET /jobs/:id/runs's page kept through a view, run once
per backend (see conftest.py). After every kind of write, by this connection or another one,
the page is byte for byte what list_runs_json reads from scratch."""

from __future__ import annotations

import random

import pytest
from store_backends import Backend

from jeeves_runner.models import Job, RunLogWrite, RunResult, RunStatus, RunTrigger
from jeeves_runner.store.protocols import Store
from jeeves_runner.store.runs_list import RunsListView

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
T2 = "2026-03-02T01:00:02.000Z"
T3 = "2026-03-02T01:00:03.000Z"


def add_jobs(store: Store, *job_ids: str) -> None:
    for job_id in job_ids:
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/s"), T0)


def assert_pages(store: Store, view: RunsListView, reader: Store | None = None) -> None:
    """Every page of every job, refreshed through the view by `reader` (default: `store`),
    is the page read from scratch."""
    for job_id in ("a", "b", "c"):
        for limit in (1, 3, view.depth):
            page = (reader or store).runs.refresh_runs_list(view, job_id, limit)
            assert page == store.runs.list_runs_json(job_id, limit), (job_id, limit)


def finished(store: Store, job_id: str, status: RunStatus = RunStatus.OK) -> int:
    run_id = store.runs.create_run(job_id, RunTrigger.SCHEDULE, RunStatus.RUNNING, T1)
    store.runs.finish_run(run_id, RunResult(status=status, duration_ms=3, stdout="out"), T2)
    return run_id


def test_an_empty_job_and_a_first_page(store: Store) -> None:
    add_jobs(store, "a", "b", "c")
    view = RunsListView(depth=5)
    assert store.runs.refresh_runs_list(view, "a", 5) == b'{"runs":[]}'
    for _ in range(7):
        finished(store, "a")
    assert_pages(store, view)


def test_every_change_a_run_list_shows_is_seen(store: Store) -> None:
    add_jobs(store, "a", "b", "c")
    for job_id in ("a", "b", "a", "c"):
        finished(store, job_id)
    view = RunsListView(depth=4)
    assert_pages(store, view)
    running = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T2)
    pending = store.runs.create_run("b", RunTrigger.RETRY, RunStatus.PENDING, T2)
    steps = [
        lambda: store.logs.write_logs([RunLogWrite(running, tails=("half", "way"))]),
        lambda: store.runs.mark_running([(pending, "b", T3)]),
        lambda: store.runs.finish_run(
            running, RunResult(status=RunStatus.ERROR, duration_ms=5, stderr="bad"), T3
        ),
        lambda: store.runs.record_skip("c", T3, "busy", RunTrigger.SCHEDULE, None),
        lambda: store.runs.close_run(pending, T3, "stopped"),
        lambda: store.runs.discard_pending(
            store.runs.create_run("c", RunTrigger.RETRY, RunStatus.PENDING, T3)
        ),
        # more runs than the view keeps: the oldest held leaves, later pages still right
        lambda: [finished(store, "a") for _ in range(5)],
        lambda: store.runs.prune_runs("2030-01-01T00:00:00.000Z"),
    ]
    for step in steps:
        step()
        assert_pages(store, view)


def test_deleted_job_leaves_an_empty_page(store: Store) -> None:
    add_jobs(store, "a", "b", "c")
    finished(store, "a")
    finished(store, "b")
    view = RunsListView()
    assert_pages(store, view)
    assert store.jobs.delete_job("a")
    assert store.runs.refresh_runs_list(view, "a", 50) == b'{"runs":[]}'
    assert_pages(store, view)


def test_changes_by_another_connection_are_seen(backend: Backend) -> None:
    reader, writer = backend.open(), backend.open()
    try:
        add_jobs(writer, "a", "b", "c")
        view = RunsListView(depth=3)
        assert_pages(writer, view, reader)
        run_id = writer.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T1)
        assert_pages(writer, view, reader)
        writer.runs.finish_run(run_id, RunResult(status=RunStatus.TIMEOUT, duration_ms=9), T2)
        assert b'"status":"timeout"' in reader.runs.refresh_runs_list(view, "a", 3)
        for _ in range(4):
            finished(writer, "b")
        assert_pages(writer, view, reader)
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("seed", range(3))
def test_random_writes_by_another_connection(backend: Backend, seed: int) -> None:
    """Runs added, started, ended, pruned and jobs deleted in random order, each page read
    through the view after each step: always the page read from scratch."""
    reader, writer = backend.open(), backend.open()
    pick = random.Random(seed)
    try:
        add_jobs(writer, "a", "b", "c")
        view = RunsListView(depth=4)
        open_runs: list[int] = []
        for _ in range(60):
            action = pick.random()
            job_id = pick.choice("abc")
            if action < 0.4:
                status = pick.choice([RunStatus.RUNNING, RunStatus.PENDING])
                open_runs.append(writer.runs.create_run(job_id, RunTrigger.MANUAL, status, T1))
            elif action < 0.75 and open_runs:
                run_id = open_runs.pop(pick.randrange(len(open_runs)))
                result = RunResult(status=RunStatus.OK, duration_ms=pick.randrange(99))
                writer.runs.finish_run(run_id, result, T2)
            elif action < 0.85:
                finished(writer, job_id, RunStatus.ERROR)
            elif action < 0.95:
                writer.runs.prune_runs(pick.choice([T0, T2, T3]))
            else:
                writer.jobs.delete_job(job_id)
                add_jobs(writer, job_id)
                open_runs = [r for r in open_runs if writer.runs.get_run(r) is not None]
            assert_pages(writer, view, reader)
    finally:
        reader.close()
        writer.close()


def test_nothing_changed_reads_nothing(store: Store) -> None:
    add_jobs(store, "a", "b", "c")
    finished(store, "a")
    view = RunsListView()
    page = store.runs.refresh_runs_list(view, "a", 50)
    held = dict(view.jobs)
    assert store.runs.refresh_runs_list(view, "a", 50) == page
    assert view.jobs == held and view.resets == 1


def test_a_page_too_large_to_keep_is_read_each_time(store: Store) -> None:
    add_jobs(store, "a", "b", "c")
    run_id = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T1)
    big = "x" * 3000
    store.runs.finish_run(run_id, RunResult(status=RunStatus.OK, duration_ms=1, stdout=big), T2)
    view = RunsListView(max_bytes=4000)
    assert store.runs.refresh_runs_list(view, "a", 50) == store.runs.list_runs_json("a", 50)
    assert "a" not in view.jobs
    finished(store, "b")
    assert_pages(store, view)
    assert view.size <= view.max_bytes


def test_an_old_run_changing_stays_off_a_page_it_is_not_on(store: Store) -> None:
    """A run older than every run the view holds of its job (a long run ending after newer
    ones) is not put on the page while older runs the view does not hold may come first."""
    add_jobs(store, "a", "b", "c")
    oldest = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    for _ in range(5):
        finished(store, "a")
    view = RunsListView(depth=4)
    assert_pages(store, view)
    pending = store.runs.create_run("a", RunTrigger.RETRY, RunStatus.PENDING, T2)
    assert_pages(store, view)
    store.runs.discard_pending(pending)
    assert store.runs.refresh_runs_list(view, "a", 3)  # the view now holds the newest 3
    store.runs.finish_run(oldest, RunResult(status=RunStatus.OK, duration_ms=1), T3)
    assert_pages(store, view)
