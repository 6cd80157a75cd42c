"""The dashboard's verbs (page_jobs, recent_runs, page_runs, failed_items), run once per
backend (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger
from jeeves_runner.queue_model import QueueDefinition
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"


def finished(store: Store, job_id: str, status: RunStatus, ms: int) -> int:
    run_id = store.runs.create_run(job_id, RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    result = RunResult(status=status, exit_code=0, duration_ms=ms, stdout="", stderr="")
    store.runs.finish_run(run_id, result, T1)
    return run_id


@pytest.fixture
def five(store: Store) -> Store:
    """ok, failing, running, new and disabled jobs."""
    for job_id, tags in (("a-ok", ["nightly"]), ("b-fail", []), ("c-run", []), ("d-new", [])):
        job = Job(id=job_id, name=job_id.upper(), schedule="0 3 * * *", script="/x", tags=tags)
        store.jobs.add_job(job, T0)
    store.jobs.add_job(Job(id="e-off", name="Off", schedule="0 3 * * *", script="/x"), T0)
    store.jobs.set_enabled("e-off", False, T1)
    finished(store, "a-ok", RunStatus.OK, 10)
    finished(store, "b-fail", RunStatus.OK, 10)
    finished(store, "b-fail", RunStatus.ERROR, 20)
    store.runs.create_run("c-run", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    return store


@pytest.mark.parametrize(
    ("status", "ids"),
    [
        (None, ["a-ok", "b-fail", "c-run", "d-new", "e-off"]),
        ("ok", ["a-ok"]),
        ("failing", ["b-fail"]),
        ("running", ["c-run"]),
        ("new", ["d-new"]),
        ("disabled", ["e-off"]),
    ],
)
def test_page_jobs_filters_by_state(five: Store, status: str | None, ids: list[str]) -> None:
    total, rows = five.jobs.page_jobs(None, status, 0, 50)
    assert (total, [r["id"] for r in rows]) == (len(ids), ids)


def test_page_jobs_pages_and_counts_all_matches(five: Store) -> None:
    total, rows = five.jobs.page_jobs(None, None, 2, 2)
    assert total == 5
    assert [r["id"] for r in rows] == ["c-run", "d-new"]
    (row,) = five.jobs.page_jobs("B-F", None, 0, 50)[1]
    assert (row["last_status"], row["last_duration_ms"], row["tags"]) == ("error", 20, [])


def test_page_jobs_searches_id_name_and_whole_tags(five: Store) -> None:
    assert [r["id"] for r in five.jobs.page_jobs("NIGHTLY", None, 0, 50)[1]] == ["a-ok"]
    assert five.jobs.page_jobs("night", None, 0, 50) == (0, [])  # a tag matches whole
    assert [r["id"] for r in five.jobs.page_jobs("off", None, 0, 50)[1]] == ["e-off"]


def test_page_jobs_refuses_an_unknown_state(five: Store) -> None:
    with pytest.raises(ValueError, match="unknown job state 'late'"):
        five.jobs.page_jobs(None, "late", 0, 50)


def test_recent_runs_oldest_first_without_skips_or_running(five: Store) -> None:
    five.runs.record_skip("b-fail", T1, "overlap", RunTrigger.SCHEDULE, None)
    for ms in range(30, 60):
        finished(five, "a-ok", RunStatus.OK, ms)
    recent = five.runs.recent_runs(["a-ok", "b-fail", "c-run", "zzz"], 20)
    assert recent["a-ok"] == [("ok", ms) for ms in range(40, 60)]
    assert recent["b-fail"] == [("ok", 10), ("error", 20)]
    assert recent["c-run"] == recent["zzz"] == []


def test_page_runs_filters_by_status_and_pages_by_id(five: Store) -> None:
    ids = [finished(five, "a-ok", s, 5) for s in (RunStatus.ERROR, RunStatus.OK) * 3]
    page = five.runs.page_runs("a-ok", ["error"], None, 2)
    assert [r["id"] for r in page] == [ids[4], ids[2]]
    assert "stdout" not in page[0]
    assert [r["id"] for r in five.runs.page_runs("a-ok", ["error"], ids[2], 5)] == [ids[0]]
    assert len(five.runs.page_runs("a-ok", [], None, 50)) == 7


def test_failed_items_newest_first_with_their_errors(store: Store) -> None:
    store.queues.add_queue(QueueDefinition(id="q", name="Q", max_attempts=1), T0)
    for n in range(3):
        store.queues.enqueue("q", f'{{"n": {n}}}', 0, None, T0)
    claimed = store.queues.claim("q", 2, T0)
    for item in claimed:
        store.queues.fail(item.id, f"broke {item.id}", T1)
    failed = store.queues.failed_items("q", 10)
    assert [(f["id"], f["error"]) for f in failed] == [
        (i.id, f"broke {i.id}") for i in reversed(claimed)
    ]
    assert failed[0]["attempts"] == 1


def make_retry(store: Store, run_id: int, first_id: int, attempt: int) -> None:
    """What a retry's row holds (no verb writes it yet outside the retry path): its try and
    the first run it retries."""
    sql = "UPDATE runs SET attempt = {p}, retry_of = {p} WHERE id = {p}"
    db: Any = getattr(store, "db")  # noqa: B009 - each backend's Database
    with db.transaction() as conn:
        mark = "%s" if type(store).__name__ == "PostgresStore" else "?"
        conn.execute(sql.format(p=mark), (attempt, first_id, run_id))


def test_tries_of_lists_a_first_run_and_its_retries_only(store: Store) -> None:
    for job_id in ("a", "b"):
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="0 3 * * *", script="/x"), T0)
    first = finished(store, "a", RunStatus.ERROR, 10)
    other_job = finished(store, "b", RunStatus.ERROR, 10)  # between the tries, another job
    unrelated = finished(store, "a", RunStatus.OK, 10)  # same job, not a retry
    second = finished(store, "a", RunStatus.ERROR, 10)
    third = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T1)
    make_retry(store, second, first, 2)
    make_retry(store, third, first, 3)
    tries = store.runs.tries_of("a", first, 10)
    assert tries == [
        {"id": first, "attempt": 1, "status": "error"},
        {"id": second, "attempt": 2, "status": "error"},
        {"id": third, "attempt": 3, "status": "running"},
    ]
    assert [t["id"] for t in store.runs.tries_of("a", first, 2)] == [first, second]
    assert store.runs.tries_of("a", unrelated, 10) == [
        {"id": unrelated, "attempt": 1, "status": "ok"}
    ]
    assert store.runs.tries_of("b", first, 10) == []  # the first run is of another job
    assert store.runs.tries_of("b", other_job, 10)[0]["id"] == other_job
