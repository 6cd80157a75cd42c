"""RunStore contract for issue 13: a scheduled instant fired once, each job's last fired
instant, `missed` rows, retries written with the failure that causes them and left alone
by the orphan sweep; JobStore: the policy fields round-trip. Once per backend."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from jeeves_runner.models import Job, MissedFires, RunResult, RunStatus, RunTrigger
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:01:00.000Z"
T2 = "2026-03-02T01:02:00.000Z"
T3 = "2026-03-02T01:03:00.000Z"


@pytest.fixture
def jobs(store: Store) -> Store:
    for job_id in ("a", "b"):
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), T0)
    return store


def run(store: Store, run_id: int | None) -> dict[str, object]:
    assert run_id is not None
    found = store.runs.get_run(run_id)
    assert found is not None
    return found


def test_the_policy_fields_round_trip(store: Store) -> None:
    job = Job(
        id="p",
        name="p",
        schedule="* * * * *",
        script="/x",
        retries=3,
        retry_delay_ms=1500,
        retry_backoff=1.5,
        retry_max_delay_ms=60_000,
        retry_on=("timeout", "3", "75"),
        catchup="all",
        catchup_max=4,
        catchup_window_ms=3_600_000,
        notify="always",
        notify_repeat=5,
        late_after_ms=2000,
        max_duration_ms=90_000,
    )
    stored = store.jobs.add_job(job, T0)
    assert stored == Job(**{**_fields(job), "created_at": T0, "updated_at": T0})
    row = store.jobs.get_job_row("p")
    assert row is not None
    assert row["retry_on"] == ["timeout", "3", "75"]
    assert row["retry_backoff"] == 1.5
    assert row["max_duration_ms"] == 90_000
    (listed,) = store.jobs.list_jobs_with_last_run()
    assert listed["catchup"] == "all"
    assert listed["retry_on"] == ["timeout", "3", "75"]
    (encoded,) = orjson.loads(store.jobs.jobs_list_json())["jobs"]
    assert encoded["retry_on"] == ["timeout", "3", "75"]
    assert encoded["retries"] == 3
    assert encoded["max_duration_ms"] == 90_000
    changed = Job(**{**_fields(job), "retries": 0, "catchup": "once", "max_duration_ms": None})
    assert store.jobs.update_job(changed, T1)
    again = store.jobs.get_job("p")
    assert again is not None
    assert (again.retries, again.catchup, again.max_duration_ms) == (0, "once", None)


def test_a_job_added_without_policies_has_the_defaults(store: Store) -> None:
    store.jobs.add_job(Job(id="d", name="d", schedule="* * * * *", script="/x"), T0)
    job = store.jobs.get_job("d")
    assert job is not None
    assert job.retries == 0 and job.retry_on == ("error", "timeout")
    assert (job.catchup, job.catchup_max, job.catchup_window_ms) == ("skip", 10, 86_400_000)
    assert (job.notify, job.notify_repeat, job.late_after_ms) == ("change", 10, 60_000)


def _fields(job: Job) -> dict[str, object]:
    return {name: getattr(job, name) for name in Job.__dataclass_fields__}


def test_a_scheduled_instant_gets_one_row_whoever_fires_it(jobs: Store) -> None:
    first = jobs.runs.create_pending_runs(["a", "b"], RunTrigger.SCHEDULE, T1, scheduled_for=T1)
    assert all(isinstance(i, int) for i in first)
    # A second scheduler firing the same instant: no row for it, no error.
    again = jobs.runs.create_pending_runs(["b", "a"], RunTrigger.SCHEDULE, T1, scheduled_for=T1)
    assert again == [None, None]
    assert run(jobs, first[0])["scheduled_for"] == T1
    later = jobs.runs.create_pending_runs(["a"], RunTrigger.SCHEDULE, T2, scheduled_for=T2)
    assert later[0] is not None
    # Manual runs are not instants of the schedule: as many as asked for.
    jobs.runs.create_run("a", RunTrigger.MANUAL, RunStatus.PENDING, T1)
    jobs.runs.create_run("a", RunTrigger.MANUAL, RunStatus.PENDING, T1)


def test_fire_marks_move_forward_only_and_go_with_a_disable(jobs: Store) -> None:
    assert jobs.runs.fire_marks() == {}
    jobs.runs.create_pending_runs(["a"], RunTrigger.SCHEDULE, T2, scheduled_for=T2, marked=["a"])
    # A job the overlap policy skips has no row, but its instant is still marked.
    jobs.runs.create_pending_runs([], RunTrigger.SCHEDULE, T2, scheduled_for=T2, marked=["b"])
    assert jobs.runs.fire_marks() == {"a": T2, "b": T2}
    # A mark written late, for an earlier instant, takes nothing back.
    jobs.runs.create_pending_runs([], RunTrigger.SCHEDULE, T1, scheduled_for=T1, marked=["a"])
    assert jobs.runs.fire_marks()["a"] == T2
    # A job deleted meanwhile is not marked (and not an error).
    jobs.runs.create_pending_runs([], RunTrigger.SCHEDULE, T3, scheduled_for=T3, marked=["gone"])
    assert "gone" not in jobs.runs.fire_marks()
    # Disabled: no fires to miss; enabled again, it starts from its next fire.
    jobs.jobs.set_enabled("b", False, T3)
    assert jobs.runs.fire_marks() == {"a": T2}
    job = jobs.jobs.get_job("a")
    assert job is not None
    jobs.jobs.update_job(replace(job, enabled=False), T3)
    assert jobs.runs.fire_marks() == {}


def test_a_deleted_job_takes_its_mark_along(jobs: Store) -> None:
    jobs.runs.create_pending_runs([], RunTrigger.SCHEDULE, T2, scheduled_for=T2, marked=["a"])
    jobs.jobs.delete_job("a")
    assert jobs.runs.fire_marks() == {}


def test_missed_fires_are_one_row_per_gap_and_move_the_mark(jobs: Store) -> None:
    gap = MissedFires("a", 3, T1, T3, "3 fires missed")
    gone = MissedFires("gone", 1, T1, T1, "missed")
    made = jobs.runs.record_missed([gap, gone], T3)
    assert made[1] is None
    row = run(jobs, made[0])
    assert row["status"] == "missed"
    assert row["trigger"] == "schedule"
    assert (row["missed_count"], row["missed_first"], row["missed_last"]) == (3, T1, T3)
    assert (row["started_at"], row["finished_at"], row["error"]) == (T1, T3, "3 fires missed")
    assert jobs.runs.fire_marks() == {"a": T3}
    # Not a run that executed: the job's last run is still none.
    (listed,) = [j for j in jobs.jobs.list_jobs_with_last_run() if j["id"] == "a"]
    assert listed["last_status"] is None
    assert [r["status"] for r in jobs.runs.list_runs("a", 10)] == ["missed"]
    # Nor one for the dashboard's sparklines and success rates.
    assert jobs.runs.recent_runs(["a"], 10) == {"a": []}


def test_a_retry_is_written_with_the_failure_and_survives_the_orphan_sweep(jobs: Store) -> None:
    first = jobs.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    failed = RunResult(RunStatus.ERROR, 5, exit_code=1, error="boom")
    retry_id = jobs.runs.finish_run(first, failed, T1, retry=(T2, 2, first))
    assert retry_id is not None
    row = run(jobs, retry_id)
    assert (row["status"], row["trigger"], row["attempt"], row["retry_of"]) == (
        "pending",
        "retry",
        2,
        first,
    )
    assert row["scheduled_for"] == T2
    assert run(jobs, first)["status"] == "error"
    assert jobs.runs.finish_run(first, failed, T1) is None
    # Another job's forgotten rows are closed; the waiting retry is not.
    stale = jobs.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.PENDING, T0)
    running = jobs.runs.create_run("b", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    assert jobs.runs.close_orphaned_runs(T3, "stopped", "never started") == 2
    assert run(jobs, stale)["status"] == "error"
    assert run(jobs, running)["status"] == "error"
    assert run(jobs, retry_id)["status"] == "pending"
    (waiting,) = jobs.runs.pending_retries()
    assert (waiting.run_id, waiting.job_id, waiting.scheduled_for) == (retry_id, "a", T2)
    assert (waiting.attempt, waiting.retry_of) == (2, first)
    assert retry_id in [r.id for r in jobs.runs.open_runs()]
    assert jobs.runs.count_unfinished("a") == 1


def test_pending_retries_come_earliest_first_and_leave_once_started(jobs: Store) -> None:
    late = jobs.runs.create_run(
        "a", RunTrigger.RETRY, RunStatus.PENDING, T3, scheduled_for=T3, attempt=2, retry_of=1
    )
    soon = jobs.runs.create_run(
        "b", RunTrigger.RETRY, RunStatus.PENDING, T1, scheduled_for=T1, attempt=3, retry_of=2
    )
    assert [r.run_id for r in jobs.runs.pending_retries()] == [soon, late]
    jobs.runs.mark_running([(soon, "b", T2)])
    assert [r.run_id for r in jobs.runs.pending_retries()] == [late]
