"""RunStore contract: run history rows from start to end, skips, orphans, stats and pruning,
run once per backend (see conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from jeeves_runner.models import Job, OpenRun, RunResult, RunStatus, RunTrigger, format_instant
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
T2 = "2026-03-02T01:00:02.000Z"
T3 = "2026-03-02T01:00:03.000Z"


def at(text: str, **delta: float) -> str:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")) + timedelta(**delta)
    return format_instant(moment)


@pytest.fixture
def jobs(store: Store) -> Store:
    for job_id in ("a", "b"):
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)
    return store


def last_run(store: Store, job_id: str) -> tuple[object, object]:
    """What GET /jobs shows of the job's latest executed run: (status, started_at)."""
    (row,) = [j for j in store.jobs.list_jobs_with_last_run() if j["id"] == job_id]
    return row["last_status"], row["last_run"]


def run(store: Store, run_id: int) -> dict[str, object]:
    found = store.runs.get_run(run_id)
    assert found is not None
    return found


# --- create_run / mark_running / finish_run -------------------------------------------------


def test_create_running_run_points_the_job_at_it(jobs: Store) -> None:
    run_id = jobs.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    row = run(jobs, run_id)
    assert row["job_id"] == "a"
    assert row["status"] == "running"
    assert row["started_at"] == T0
    assert row["trigger"] == "manual"
    assert row["finished_at"] is None
    assert last_run(jobs, "a") == ("running", T0)


def test_a_pending_run_is_not_the_jobs_last_run_until_it_runs(jobs: Store) -> None:
    jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    pending_a = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T1)
    pending_b = jobs.runs.create_run("b", RunTrigger.RETRY, RunStatus.PENDING, T1)
    assert run(jobs, pending_a)["status"] == "pending"
    assert last_run(jobs, "a") == ("running", T0)  # `first`
    assert last_run(jobs, "b") == (None, None)

    jobs.runs.mark_running([(pending_a, "a", T2), (pending_b, "b", T3)])

    assert (run(jobs, pending_a)["status"], run(jobs, pending_a)["started_at"]) == ("running", T2)
    assert (run(jobs, pending_b)["status"], run(jobs, pending_b)["started_at"]) == ("running", T3)
    assert run(jobs, pending_b)["trigger"] == "retry"
    assert last_run(jobs, "a") == ("running", T2)  # pending_a
    assert last_run(jobs, "b") == ("running", T3)  # pending_b


def test_a_run_that_ends_before_its_mark_is_written_is_marked_by_its_finish(
    jobs: Store,
) -> None:
    earlier = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.finish_run(earlier, RunResult(status=RunStatus.OK, duration_ms=5), T1)
    quick = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T1)
    result = RunResult(status=RunStatus.ERROR, duration_ms=3, exit_code=1, error="Exit code 1")

    jobs.runs.finish_run(quick, result, T3, started=("a", T2))

    row = run(jobs, quick)
    assert (row["status"], row["started_at"], row["finished_at"]) == ("error", T2, T3)
    # It is the job's last run now, as if its `running` mark had been written first.
    assert last_run(jobs, "a") == ("error", T2)


def test_finish_run_stores_the_whole_result(jobs: Store) -> None:
    run_id = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    result = RunResult(
        status=RunStatus.ERROR,
        duration_ms=1234,
        exit_code=3,
        stdout="line 1\nline 2",
        stderr="boom",
        error="boom",
        tokens=42,
        result_meta="meta",
    )
    jobs.runs.finish_run(run_id, result, T2)
    row = run(jobs, run_id)
    assert {k: row[k] for k in row if k not in ("skipped_count", "last_skipped_at")} == {
        "id": run_id,
        "job_id": "a",
        "started_at": T0,
        "finished_at": T2,
        "status": "error",
        "exit_code": 3,
        "stdout": "line 1\nline 2",
        "stderr": "boom",
        "duration_ms": 1234,
        "error": "boom",
        "trigger": "schedule",
        "tokens": 42,
        "result_meta": "meta",
        "scheduled_for": None,
        "attempt": 1,
        "retry_of": None,
        "missed_count": None,
        "missed_first": None,
        "missed_last": None,
        "node_id": None,
    }


def test_get_run_of_an_unknown_id(jobs: Store) -> None:
    assert jobs.runs.get_run(999) is None


# --- record_skip ----------------------------------------------------------------------------


def test_skips_during_one_run_collapse_into_one_row(jobs: Store) -> None:
    running = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    first = jobs.runs.record_skip("a", T1, "previous run still going", RunTrigger.SCHEDULE, None)
    row = run(jobs, first)
    assert row["status"] == "skipped"
    assert (row["started_at"], row["finished_at"], row["last_skipped_at"]) == (T1, T1, T1)
    assert (row["skipped_count"], row["duration_ms"]) == (1, 0)
    assert row["error"] == "previous run still going"

    assert jobs.runs.record_skip("a", T2, "still going", RunTrigger.SCHEDULE, first) == first
    assert jobs.runs.record_skip("a", T3, "still going (3)", RunTrigger.SCHEDULE, first) == first

    row = run(jobs, first)
    assert row["skipped_count"] == 3
    assert row["started_at"] == T1  # when skipping began
    assert (row["finished_at"], row["last_skipped_at"]) == (T3, T3)
    assert row["error"] == "still going (3)"
    assert [r["id"] for r in jobs.runs.list_runs("a", 10)] == [first, running]
    # skips never become the job's last run
    assert last_run(jobs, "a") == ("running", T0)  # `running`


def test_several_fires_skipped_at_once_are_counted_in_one_write(jobs: Store) -> None:
    late = "The database could not be written until then"
    first = jobs.runs.record_skip("a", T2, late, RunTrigger.SCHEDULE, None, count=4)
    row = run(jobs, first)
    assert (row["skipped_count"], row["started_at"], row["last_skipped_at"]) == (4, T2, T2)
    assert jobs.runs.record_skip("a", T3, late, RunTrigger.SCHEDULE, first, count=3) == first
    row = run(jobs, first)
    assert (row["skipped_count"], row["last_skipped_at"], row["error"]) == (7, T3, late)


def test_a_skip_into_a_vanished_row_starts_a_new_one(jobs: Store) -> None:
    first = jobs.runs.record_skip("a", T1, "busy", RunTrigger.MANUAL, None)
    jobs.runs.prune_runs(at(T3, days=1))
    assert jobs.runs.get_run(first) is None
    second = jobs.runs.record_skip("a", T2, "busy", RunTrigger.MANUAL, first)
    assert second != first
    row = run(jobs, second)
    assert (row["skipped_count"], row["trigger"], row["started_at"]) == (1, "manual", T2)


# --- list_runs ------------------------------------------------------------------------------


def test_list_runs_is_newest_first_limited_and_per_job(jobs: Store) -> None:
    ids = [
        jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, at(T0, minutes=i))
        for i in range(5)
    ]
    jobs.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    assert [r["id"] for r in jobs.runs.list_runs("a", 10)] == ids[::-1]
    assert [r["id"] for r in jobs.runs.list_runs("a", 2)] == [ids[4], ids[3]]
    assert {r["job_id"] for r in jobs.runs.list_runs("a", 10)} == {"a"}
    assert jobs.runs.list_runs("nobody", 10) == []


# --- close_orphaned_runs --------------------------------------------------------------------


def test_orphaned_runs_are_closed_as_errors_and_finished_ones_left(jobs: Store) -> None:
    running = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    pending = jobs.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.PENDING, T0)
    done = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.finish_run(done, RunResult(status=RunStatus.OK, duration_ms=5), T1)
    message = "the runner stopped during this run"

    assert jobs.runs.close_orphaned_runs(T3, message) == 2

    for run_id in (running, pending):
        row = run(jobs, run_id)
        assert (row["status"], row["finished_at"], row["error"]) == ("error", T3, message)
    row = run(jobs, done)
    assert (row["status"], row["finished_at"], row["error"]) == ("ok", T1, None)
    assert jobs.runs.close_orphaned_runs(T3, message) == 0


# --- finished_since -------------------------------------------------------------------------


def finish(store: Store, job_id: str, status: RunStatus, finished_at: str) -> int:
    run_id = store.runs.create_run(job_id, RunTrigger.SCHEDULE, RunStatus.RUNNING, finished_at)
    store.runs.finish_run(run_id, RunResult(status=status, duration_ms=1), finished_at)
    return run_id


def test_finished_since_counts_by_status_from_the_instant_on(jobs: Store) -> None:
    since = "2026-01-01T00:00:00.000Z"
    finish(jobs, "a", RunStatus.OK, "2025-12-31T23:59:59.999Z")  # one millisecond before
    finish(jobs, "a", RunStatus.OK, since)  # at the instant: counted
    finish(jobs, "a", RunStatus.OK, "2026-01-01T00:00:00.001Z")
    finish(jobs, "b", RunStatus.ERROR, "2026-02-01T00:00:00.000Z")
    finish(jobs, "b", RunStatus.TIMEOUT, "2027-01-01T00:00:00.000Z")
    finish(jobs, "b", RunStatus.ERROR, "2025-06-30T12:00:00.000Z")
    jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, "2026-06-01T00:00:00.000Z")
    jobs.runs.record_skip("b", "2026-06-01T00:00:00.000Z", "busy", RunTrigger.SCHEDULE, None)

    assert jobs.runs.finished_since(since) == {"ok": 2, "error": 1, "timeout": 1, "skipped": 1}
    assert jobs.runs.finished_since("2026-01-01T00:00:00.002Z") == {
        "error": 1,
        "timeout": 1,
        "skipped": 1,
    }
    assert jobs.runs.finished_since("2028-01-01T00:00:00.000Z") == {}


def test_finished_since_is_correct_across_a_range_of_instants(jobs: Store) -> None:
    # Text comparison in SQL is only time comparison because every instant has one width.
    start = datetime(1999, 12, 31, 23, 59, 58, tzinfo=UTC)
    # from 1999-12-31 over about three years: year, month, leap-day and millisecond edges
    moments = [start + timedelta(hours=7 * i * i, milliseconds=997 * i) for i in range(60)]
    for moment in moments:
        finish(jobs, "a", RunStatus.OK, format_instant(moment))
    for cut in moments[::7]:
        expected = sum(1 for m in moments if m >= cut)
        assert jobs.runs.finished_since(format_instant(cut)) == {"ok": expected}


# --- prune_runs -----------------------------------------------------------------------------


def test_prune_deletes_old_finished_runs_only(jobs: Store) -> None:
    cutoff = "2026-03-01T00:00:00.000Z"
    old_ok = finish(jobs, "a", RunStatus.OK, "2026-02-01T00:00:00.000Z")
    old_skip = jobs.runs.record_skip(
        "a", "2026-02-02T00:00:00.000Z", "x", RunTrigger.SCHEDULE, None
    )
    new_ok = finish(jobs, "a", RunStatus.OK, "2026-03-01T00:00:00.000Z")  # at the cutoff: kept
    old_running = jobs.runs.create_run(
        "b", RunTrigger.SCHEDULE, RunStatus.RUNNING, "2025-01-01T00:00:00.000Z"
    )
    old_pending = jobs.runs.create_run(
        "b", RunTrigger.SCHEDULE, RunStatus.PENDING, "2025-01-01T00:00:00.000Z"
    )

    assert jobs.runs.prune_runs(cutoff) == 2

    for gone in (old_ok, old_skip):
        assert jobs.runs.get_run(gone) is None
    for kept in (new_ok, old_running, old_pending):
        assert jobs.runs.get_run(kept) is not None
    # a long-running run is never pruned, however old; nor is a job's latest real run
    # (GET /jobs shows it; null there would mean "never ran")
    assert jobs.runs.prune_runs("2099-01-01T00:00:00.000Z") == 0
    assert {r["id"] for r in jobs.runs.list_runs("b", 10)} == {old_running, old_pending}
    assert [r["id"] for r in jobs.runs.list_runs("a", 10)] == [new_ok]


def test_prune_keeps_each_jobs_latest_real_run_whatever_its_age(jobs: Store) -> None:
    older = finish(jobs, "a", RunStatus.OK, "2026-01-01T00:00:00.000Z")
    latest = finish(jobs, "a", RunStatus.ERROR, "2026-01-02T00:00:00.000Z")
    jobs.runs.record_skip("a", "2026-01-03T00:00:00.000Z", "busy", RunTrigger.SCHEDULE, None)
    assert jobs.runs.prune_runs("2026-06-01T00:00:00.000Z") == 2  # the older run, the skip
    assert jobs.runs.get_run(older) is None
    row = jobs.jobs.list_jobs_with_last_run()[0]
    assert (row["id"], row["last_status"]) == ("a", "error")
    assert jobs.runs.get_run(latest) is not None


def test_prune_works_through_more_rows_than_one_batch(jobs: Store) -> None:
    for i in range(7):
        finish(jobs, "a", RunStatus.OK, at("2026-01-01T00:00:00.000Z", hours=i))
    keep = finish(jobs, "a", RunStatus.OK, "2026-02-01T00:00:00.000Z")
    assert jobs.runs.prune_runs("2026-01-15T00:00:00.000Z", batch=3) == 7
    assert [r["id"] for r in jobs.runs.list_runs("a", 100)] == [keep]
    assert jobs.runs.prune_runs("2026-01-15T00:00:00.000Z", batch=3) == 0


def test_discard_pending_drops_only_a_pending_row(jobs: Store) -> None:
    pending = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T0)
    running = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.discard_pending(pending)
    jobs.runs.discard_pending(running)  # not pending: kept
    assert jobs.runs.get_run(pending) is None
    assert run(jobs, running)["status"] == "running"


def test_a_skip_never_collapses_into_a_run_that_executed(jobs: Store) -> None:
    running = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    skip = jobs.runs.record_skip("a", T1, "busy", RunTrigger.SCHEDULE, running)
    assert skip != running
    row = run(jobs, running)
    assert (row["status"], row["finished_at"], row["error"]) == ("running", None, None)
    assert run(jobs, skip)["skipped_count"] == 1


# --- the process of a run: set_process / open_runs / close_run ------------------------------


def test_open_runs_lists_pending_and_running_runs_with_their_process(jobs: Store) -> None:
    running = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    pending = jobs.runs.create_run("b", RunTrigger.MANUAL, RunStatus.PENDING, T1)
    done = finish(jobs, "a", RunStatus.OK, T1)
    jobs.runs.record_skip("b", T2, "busy", RunTrigger.SCHEDULE, None)
    jobs.runs.set_process(running, 4321, 4321, 987_654_321)
    jobs.runs.set_process(done, 55, 55, None)  # a finished run may carry one too

    assert jobs.runs.open_runs() == [
        OpenRun(
            id=running,
            job_id="a",
            status=RunStatus.RUNNING,
            pid=4321,
            pgid=4321,
            process_started=987_654_321,
        ),
        OpenRun(
            id=pending, job_id="b", status=RunStatus.PENDING, pid=None, pgid=None,
            process_started=None,
        ),
    ]  # fmt: skip


def test_set_process_without_a_start_time(jobs: Store) -> None:
    run_id = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.set_process(run_id, 7, 8, None)
    (found,) = jobs.runs.open_runs()
    assert (found.pid, found.pgid, found.process_started) == (7, 8, None)


def test_process_start_times_beyond_32_bits_are_kept(jobs: Store) -> None:
    # Clock ticks since boot: 100 per second, so a year of uptime is already ~3e9.
    run_id = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    jobs.runs.set_process(run_id, 2**22, 2**22, 2**40 + 3)
    assert jobs.runs.open_runs()[0].process_started == 2**40 + 3


def test_close_run_closes_only_that_open_run(jobs: Store) -> None:
    running = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    other = jobs.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    pending = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T1)
    done = finish(jobs, "b", RunStatus.OK, T1)
    message = "The runner stopped during this run; its process group 1234 was still running"

    assert jobs.runs.close_run(running, T3, message) is True
    assert jobs.runs.close_run(pending, T3, "never started") is True

    row = run(jobs, running)
    assert (row["status"], row["finished_at"], row["error"]) == ("error", T3, message)
    row = run(jobs, pending)
    assert (row["status"], row["finished_at"], row["error"]) == ("error", T3, "never started")
    assert [r.id for r in jobs.runs.open_runs()] == [other]
    # closed already, finished, unknown: nothing changes
    assert jobs.runs.close_run(running, "2027-01-01T00:00:00.000Z", "again") is False
    assert jobs.runs.close_run(done, T3, "x") is False
    assert jobs.runs.close_run(999_999, T3, "x") is False
    assert run(jobs, running)["finished_at"] == T3
    row = run(jobs, done)
    assert (row["status"], row["error"]) == ("ok", None)


def test_mark_running_records_the_processes_in_the_same_commit(jobs: Store) -> None:
    first = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T0)
    second = jobs.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.PENDING, T0)
    jobs.runs.mark_running([(first, "a", T1), (second, "b", T1)], [(first, 41, 41, 12_345)])
    by_id = {r.id: r for r in jobs.runs.open_runs()}
    assert (by_id[first].status, by_id[first].pid, by_id[first].process_started) == (
        RunStatus.RUNNING,
        41,
        12_345,
    )
    assert (by_id[second].status, by_id[second].pid) == (RunStatus.RUNNING, None)


def test_output_holding_a_nul_character_is_recorded(jobs: Store) -> None:
    # A job may print anything. PostgreSQL's text cannot hold NUL: it is kept as U+FFFD there.
    run_id = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    result = RunResult(status=RunStatus.ERROR, duration_ms=1, stdout="a\x00b", error="x\x00")
    jobs.runs.finish_run(run_id, result, T1)
    jobs.runs.record_skip("a", T2, "busy\x00", RunTrigger.SCHEDULE, None)
    row = run(jobs, run_id)
    assert str(row["stdout"]).replace("\ufffd", "\x00") == "a\x00b"
    assert str(row["error"]).replace("\ufffd", "\x00") == "x\x00"
    assert row["status"] == "error"


def test_a_late_running_mark_never_reopens_a_finished_run(jobs: Store) -> None:
    run_id = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T0)
    jobs.runs.finish_run(run_id, RunResult(status=RunStatus.OK, duration_ms=3), T1)
    jobs.runs.mark_running([(run_id, "a", T0)])  # held up by a lock, written after the end
    assert run(jobs, run_id)["status"] == "ok"
    assert jobs.runs.open_runs() == []


def test_get_run_gives_the_detail_fields_of_a_first_try(jobs: Store) -> None:
    run_id = jobs.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    detail = run(jobs, run_id)
    assert {
        key: detail[key]
        for key in (
            "scheduled_for",
            "attempt",
            "retry_of",
            "missed_count",
            "missed_first",
            "missed_last",
            "node_id",
        )
    } == {
        "scheduled_for": None,
        "attempt": 1,
        "retry_of": None,
        "missed_count": None,
        "missed_first": None,
        "missed_last": None,
        "node_id": None,
    }


def test_list_runs_json_is_list_runs_encoded_as_the_api_answers(jobs: Store) -> None:
    """The body GET /jobs/:id/runs sends: byte for byte what orjson makes of list_runs(),
    with output not yet written as '' (a running run, a skipped fire)."""
    done = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    output = 'tab\there "quoted" \\ ünï \x1b[31mred\x1b[0m \u2028\n'
    jobs.runs.finish_run(
        done,
        RunResult(
            status=RunStatus.ERROR,
            duration_ms=12,
            exit_code=-9,
            stdout=output,
            stderr="boom\r\n",
            error="Exit code -9",
            tokens=1234,
            result_meta='{"k": [1, 2]}',
        ),
        T1,
    )
    jobs.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T2)
    jobs.runs.record_skip("a", T3, "still running", RunTrigger.SCHEDULE, None)
    jobs.runs.create_run("a", RunTrigger.RETRY, RunStatus.PENDING, T3)

    def expected(limit: int, **filters: Any) -> bytes:
        runs = jobs.runs.list_runs("a", limit, **filters)
        for one in runs:
            one["stdout"] = "" if one["stdout"] is None else one["stdout"]
            one["stderr"] = "" if one["stderr"] is None else one["stderr"]
        return orjson.dumps({"runs": runs})

    for limit, filters in [
        (50, {}),
        (2, {}),
        (50, {"statuses": [RunStatus.ERROR, RunStatus.SKIPPED]}),
        (50, {"before": done + 1}),
        (50, {"before": done}),
    ]:
        assert jobs.runs.list_runs_json("a", limit, **filters) == expected(limit, **filters)
    assert jobs.runs.list_runs_json("b", 50) == b'{"runs":[]}'
