"""Store verbs behind editing and deleting jobs, through the Protocol only (the `store`
fixture), so the file runs against every backend."""

from __future__ import annotations

from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T12:00:00.000Z"
T1 = "2026-03-02T12:00:01.000Z"


def _job(job_id: str, schedule: str = "3 * * * *") -> Job:
    return Job(id=job_id, name=job_id, schedule=schedule, script=f"/opt/{job_id}.sh")


def test_count_unfinished_counts_pending_and_running_runs_of_that_job(store: Store) -> None:
    store.jobs.add_job(_job("a"), T0)
    store.jobs.add_job(_job("b"), T0)
    assert store.runs.count_unfinished("a") == 0
    pending = store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.PENDING, T0)
    running = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    store.runs.create_run("b", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    assert store.runs.count_unfinished("a") == 2
    store.runs.finish_run(running, RunResult(RunStatus.OK, 5), T1)
    store.runs.finish_run(pending, RunResult(RunStatus.ERROR, 5), T1)
    assert store.runs.count_unfinished("a") == 0
    assert store.runs.count_unfinished("ghost") == 0


def test_delete_job_takes_its_runs_and_leaves_the_others(store: Store) -> None:
    store.jobs.add_job(_job("a"), T0)
    store.jobs.add_job(_job("b"), T0)
    gone = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    kept = store.runs.create_run("b", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    assert store.jobs.delete_job("a") is True
    assert store.jobs.get_job("a") is None
    assert store.runs.get_run(gone) is None
    assert store.runs.get_run(kept) is not None
    assert store.jobs.delete_job("a") is False


def test_an_edit_moves_the_schedule_fingerprint(store: Store) -> None:
    store.jobs.add_job(_job("a"), T0)
    before = store.jobs.schedule_fingerprint()
    assert store.jobs.update_job(_job("a", "*/5 * * * *"), T1) is True
    assert store.jobs.schedule_fingerprint() != before
    stored = store.jobs.get_job("a")
    assert stored is not None and stored.schedule == "*/5 * * * *"
    assert stored.created_at == T0 and stored.updated_at == T1
    assert store.jobs.update_job(_job("ghost"), T1) is False


def test_a_delete_moves_the_schedule_fingerprint(store: Store) -> None:
    store.jobs.add_job(_job("a"), T0)
    store.jobs.add_job(_job("b"), T1)
    before = store.jobs.schedule_fingerprint()
    store.jobs.delete_job("a")  # not the newest: only the count moves
    assert store.jobs.schedule_fingerprint() != before


def test_apply_jobs_adds_updates_and_deletes_in_one_transaction(store: Store) -> None:
    from dataclasses import replace

    import pytest

    from jeeves_runner.models import JobExistsError

    store.jobs.add_job(_job("keep"), T0)
    store.jobs.add_job(_job("gone"), T0)
    filed = replace(_job("new"), source="/jobs/new.toml", source_digest="abc")
    store.jobs.apply_jobs([filed], [_job("keep", "*/5 * * * *")], ["gone"], T1)
    assert {j.id for j in store.jobs.list_jobs()} == {"keep", "new"}
    keep = store.jobs.get_job("keep")
    assert keep is not None and keep.schedule == "*/5 * * * *"
    assert store.jobs.job_sources() == {"keep": (None, None), "new": ("/jobs/new.toml", "abc")}
    # All or nothing: an add that clashes leaves the update and the delete undone too.
    with pytest.raises(JobExistsError):
        store.jobs.apply_jobs([_job("new")], [_job("keep", "@daily")], ["keep"], T1)
    keep = store.jobs.get_job("keep")
    assert keep is not None and keep.schedule == "*/5 * * * *"


def test_run_fields_round_trip(store: Store) -> None:
    from dataclasses import replace

    job = replace(
        _job("full"),
        command=("echo", "hi"),
        args=("a b",),
        env={"K": "v"},
        cwd="/tmp",
        timezone="Asia/Tokyo",
        tags=("x", "y"),
    )
    store.jobs.add_job(job, T0)
    stored = store.jobs.get_job("full")
    assert stored == replace(job, created_at=T0, updated_at=T0)
    row = store.jobs.get_job_row("full")
    assert row is not None
    assert (row["command"], row["args"], row["env"], row["tags"]) == (
        ["echo", "hi"],
        ["a b"],
        {"K": "v"},
        ["x", "y"],
    )
    assert "source_digest" not in row
