"""RunLogStore contract (and the run-history queries issue 11 added to RunStore): a run's log
as chunks in seq order, per stream, its last lines, the middle of a capped log dropped, kept
with its run and deleted with it. Run once per backend (see conftest.py)."""

from __future__ import annotations

import pytest

from jeeves_runner.models import (
    Job,
    LogChunk,
    LogStream,
    RunLogWrite,
    RunResult,
    RunStatus,
    RunTrigger,
)
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
T2 = "2026-03-02T01:00:02.000Z"
OUT, ERR, RUNNER = LogStream.STDOUT, LogStream.STDERR, LogStream.RUNNER


@pytest.fixture
def jobs(store: Store) -> Store:
    for job_id in ("a", "b"):
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)
    return store


def running(store: Store, job_id: str = "a", at: str = T0) -> int:
    return store.runs.create_run(job_id, RunTrigger.MANUAL, RunStatus.RUNNING, at)


def chunk(seq: int, stream: LogStream, data: bytes, at: str = T1) -> LogChunk:
    return LogChunk(seq, stream, at, data)


def test_chunks_come_back_in_seq_order_with_stream_time_and_bytes(jobs: Store) -> None:
    run_id = running(jobs)
    other = running(jobs, "b")
    first = chunk(0, OUT, b"one\ntwo\n")
    second = chunk(1, ERR, b"\xff not utf-8\n", T2)
    jobs.logs.write_logs(
        [
            RunLogWrite(run_id, (first,)),
            RunLogWrite(other, (chunk(0, OUT, b"elsewhere\n"),)),
        ]
    )
    jobs.logs.write_logs([RunLogWrite(run_id, (second,))])
    assert jobs.logs.read_log(run_id) == [first, second]
    assert first.lines() == [b"one", b"two"]
    assert jobs.logs.read_log(run_id, streams=[ERR]) == [second]
    assert jobs.logs.read_log(run_id, after_seq=0) == [second]
    assert jobs.logs.read_log(run_id, before_seq=1) == [first]
    assert jobs.logs.read_log(12345) == []


def test_the_tail_read_holds_at_least_the_lines_asked_for(jobs: Store) -> None:
    run_id = running(jobs)
    chunks = tuple(chunk(n, OUT if n % 2 else ERR, b"x\ny\n") for n in range(10))
    jobs.logs.write_logs([RunLogWrite(run_id, chunks)])
    assert jobs.logs.read_log_tail(run_id, 3) == list(chunks[8:])
    assert jobs.logs.read_log_tail(run_id, 4) == list(chunks[8:])
    assert jobs.logs.read_log_tail(run_id, 100) == list(chunks)
    assert jobs.logs.read_log_tail(run_id, 1, streams=[ERR]) == [chunks[8]]


def test_a_chunk_written_again_replaces_it_and_a_range_can_be_dropped(jobs: Store) -> None:
    run_id = running(jobs)
    head = chunk(0, OUT, b"head\n")
    tail = tuple(chunk(n, OUT, f"t{n}\n".encode()) for n in range(2, 6))
    jobs.logs.write_logs([RunLogWrite(run_id, (head, *tail))])
    marker = chunk(1, RUNNER, b"...[2 lines dropped]\n")
    jobs.logs.write_logs([RunLogWrite(run_id, (marker,), drop=(2, 4))])
    assert jobs.logs.read_log(run_id) == [head, marker, tail[2], tail[3]]
    newer = chunk(1, RUNNER, b"...[3 lines dropped]\n")
    jobs.logs.write_logs([RunLogWrite(run_id, (newer,), drop=(2, 5))])
    assert jobs.logs.read_log(run_id) == [head, newer, tail[3]]


def test_a_write_drops_its_range_first_then_writes_its_chunks_even_inside_it(
    jobs: Store,
) -> None:
    # Tail chunks held back and written later land below the range the same write drops.
    run_id = running(jobs)
    stored = tuple(chunk(n, OUT, f"t{n}\n".encode()) for n in range(2, 6))
    jobs.logs.write_logs([RunLogWrite(run_id, stored)])
    held = chunk(3, OUT, b"t3 again\n")
    jobs.logs.write_logs([RunLogWrite(run_id, (held,), drop=(2, 5))])
    assert jobs.logs.read_log(run_id) == [held, stored[3]]
    finished = RunResult(RunStatus.OK, 5, exit_code=0, stdout="", stderr="")
    last = RunLogWrite(run_id, (chunk(2, OUT, b"t2 again\n"),), drop=(2, 4))
    jobs.runs.finish_run(run_id, finished, T2, log=last)
    assert jobs.logs.read_log(run_id) == [chunk(2, OUT, b"t2 again\n"), stored[3]]


def test_tails_of_a_run_in_flight_are_written_but_never_over_its_result(jobs: Store) -> None:
    run_id = running(jobs)
    jobs.logs.write_logs([RunLogWrite(run_id, tails=("so far", "warn"))])
    row = jobs.runs.get_run(run_id)
    assert row is not None and (row["stdout"], row["stderr"]) == ("so far", "warn")
    result = RunResult(RunStatus.OK, 5, exit_code=0, stdout="final", stderr="")
    rest = RunLogWrite(run_id, (chunk(0, OUT, b"final\n"),))
    jobs.runs.finish_run(run_id, result, T2, log=rest)
    jobs.logs.write_logs([RunLogWrite(run_id, tails=("late", "late"))])
    row = jobs.runs.get_run(run_id)
    assert row is not None and (row["status"], row["stdout"], row["stderr"]) == ("ok", "final", "")
    assert jobs.logs.read_log(run_id) == [chunk(0, OUT, b"final\n")]


def test_a_log_is_deleted_with_its_run(jobs: Store) -> None:
    old = running(jobs)
    jobs.logs.write_logs([RunLogWrite(old, (chunk(0, OUT, b"old\n"),))])
    jobs.runs.finish_run(old, RunResult(RunStatus.OK, 1), T1)
    kept = running(jobs, at=T1)  # the job's latest run is never pruned
    jobs.runs.finish_run(kept, RunResult(RunStatus.OK, 1), T1)
    jobs.logs.write_logs([RunLogWrite(kept, (chunk(0, OUT, b"kept\n"),))])
    assert jobs.runs.prune_runs("2026-03-03T00:00:00.000Z") == 1
    assert jobs.logs.read_log(old) == []
    assert jobs.logs.read_log(kept) == [chunk(0, OUT, b"kept\n")]


def test_cancelled_is_a_status_runs_can_end_with(jobs: Store) -> None:
    run_id = running(jobs)
    result = RunResult(RunStatus.CANCELLED, 7, error="Cancelled through the API")
    jobs.runs.finish_run(run_id, result, T1)
    row = jobs.runs.get_run(run_id)
    assert row is not None
    assert (row["status"], row["error"]) == ("cancelled", "Cancelled through the API")


def finished(store: Store, job_id: str, status: RunStatus, at: str) -> int:
    run_id = running(store, job_id, at)
    store.runs.finish_run(run_id, RunResult(status, 1), at)
    return run_id


def test_a_jobs_runs_by_status_and_page(jobs: Store) -> None:
    ok = finished(jobs, "a", RunStatus.OK, T0)
    err = finished(jobs, "a", RunStatus.ERROR, T0)
    finished(jobs, "b", RunStatus.ERROR, T0)
    timeout = finished(jobs, "a", RunStatus.TIMEOUT, T1)
    ids = [r["id"] for r in jobs.runs.list_runs("a", 10)]
    assert ids == [timeout, err, ok]
    failed = jobs.runs.list_runs("a", 10, statuses=[RunStatus.ERROR, RunStatus.TIMEOUT])
    assert [r["id"] for r in failed] == [timeout, err]
    assert [r["id"] for r in jobs.runs.list_runs("a", 1, before=timeout)] == [err]
    assert [r["id"] for r in jobs.runs.list_runs("a", 10, before=ok)] == []


def test_runs_across_jobs_by_status_since_and_page(jobs: Store) -> None:
    old_error = finished(jobs, "a", RunStatus.ERROR, T0)
    finished(jobs, "b", RunStatus.OK, T1)
    new_error = finished(jobs, "b", RunStatus.ERROR, T1)
    new_timeout = finished(jobs, "a", RunStatus.TIMEOUT, T2)
    everything = jobs.runs.list_all_runs(10)
    assert [r["id"] for r in everything] == [new_timeout, new_error, new_error - 1, old_error]
    errors = jobs.runs.list_all_runs(10, statuses=[RunStatus.ERROR])
    assert [r["id"] for r in errors] == [new_error, old_error]
    recent = jobs.runs.list_all_runs(10, statuses=[RunStatus.ERROR, RunStatus.TIMEOUT], since=T1)
    assert [r["id"] for r in recent] == [new_timeout, new_error]
    assert [r["id"] for r in jobs.runs.list_all_runs(1, before=new_timeout, since=T1)] == [
        new_error
    ]
