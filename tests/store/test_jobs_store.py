"""JobStore contract: job definitions, run once per backend (see conftest.py)."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from store_backends import Backend

from jeeves_runner.models import (
    Job,
    JobExistsError,
    JobType,
    OverlapPolicy,
    RunResult,
    RunStatus,
    RunTrigger,
    ScheduleEntry,
)
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T02:00:00.000Z"


def a_job(job_id: str = "report", **changes: object) -> Job:
    job = Job(id=job_id, name=f"Job {job_id}", schedule="0 3 * * *", script=f"/s/{job_id}.sh")
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def test_add_job_stores_every_field(store: Store) -> None:
    job = Job(
        id="full",
        name="Full job",
        schedule="*/5 * * * *",
        script="Summarise the day",
        type=JobType.SESSION,
        description="All fields set",
        enabled=False,
        timeout_ms=90_000,
        overlap_policy=OverlapPolicy.ALLOW,
        on_failure="C-FAIL",
        on_success="C-OK",
    )
    stored = store.jobs.add_job(job, T0)
    assert stored == dataclasses.replace(job, created_at=T0, updated_at=T0)
    assert store.jobs.get_job("full") == stored


def test_run_on_labels_round_trip_and_are_replaced_by_an_update(store: Store) -> None:
    store.jobs.add_job(a_job("pinned", run_on=("a", "gpu")), T0)
    assert store.jobs.get_job("pinned").run_on == ("a", "gpu")  # type: ignore[union-attr]
    row = store.jobs.get_job_row("pinned")
    assert row is not None and row["run_on"] == ["a", "gpu"]
    assert store.jobs.list_jobs_with_last_run()[0]["run_on"] == ["a", "gpu"]
    assert store.jobs.update_job(a_job("pinned"), T1)
    assert store.jobs.get_job("pinned").run_on == ()  # type: ignore[union-attr]


def test_jobs_survive_reopening_the_store(backend: Backend) -> None:
    first = backend.open()
    first.jobs.add_job(a_job("kept"), T0)
    first.close()
    second = backend.open()
    try:
        assert [j.id for j in second.jobs.list_jobs()] == ["kept"]
    finally:
        second.close()


def test_a_duplicate_id_is_refused_and_the_first_kept(store: Store) -> None:
    store.jobs.add_job(a_job("dup", name="First"), T0)
    with pytest.raises(JobExistsError) as caught:
        store.jobs.add_job(a_job("dup", name="Second"), T1)
    assert str(caught.value) == "Job 'dup' already exists"
    assert caught.value.job_id == "dup"
    kept = store.jobs.get_job("dup")
    assert kept is not None
    assert (kept.name, kept.created_at) == ("First", T0)
    assert store.jobs.count_jobs() == 1


def test_unknown_ids(store: Store) -> None:
    assert store.jobs.get_job("nope") is None
    assert store.jobs.get_job_row("nope") is None
    assert store.jobs.update_job(a_job("nope"), T1) is False
    assert store.jobs.delete_job("nope") is False
    assert store.jobs.set_enabled("nope", False, T1) is False


def test_list_jobs_is_ordered_by_id(store: Store) -> None:
    for job_id in ["zeta", "alpha", "Mid", "beta"]:
        store.jobs.add_job(a_job(job_id), T0)
    assert [j.id for j in store.jobs.list_jobs()] == ["Mid", "alpha", "beta", "zeta"]
    assert store.jobs.count_jobs() == 4


def test_update_job_changes_fields_and_updated_at_only(store: Store) -> None:
    store.jobs.add_job(a_job("u"), T0)
    changed = a_job(
        "u",
        name="Renamed",
        schedule="@hourly",
        script="/s/other.py",
        timeout_ms=1000,
        overlap_policy=OverlapPolicy.QUEUE,
        on_failure="C9",
        enabled=False,
    )
    assert store.jobs.update_job(changed, T1) is True
    stored = store.jobs.get_job("u")
    assert stored == dataclasses.replace(changed, created_at=T0, updated_at=T1)


def test_set_enabled_and_enabled_schedules(store: Store) -> None:
    store.jobs.add_job(a_job("on", schedule="* * * * *"), T0)
    store.jobs.add_job(a_job("off", enabled=False), T0)
    assert store.jobs.enabled_schedules() == [ScheduleEntry("on", "* * * * *", T0)]
    assert store.jobs.set_enabled("off", True, T1) is True
    assert store.jobs.set_enabled("on", False, T1) is True
    assert store.jobs.enabled_schedules() == [ScheduleEntry("off", "0 3 * * *", T1)]
    off = store.jobs.get_job("on")
    assert off is not None
    assert (off.enabled, off.updated_at) == (False, T1)


def test_get_job_row_has_the_stored_columns(store: Store) -> None:
    store.jobs.add_job(a_job("row", timeout_ms=5), T0)
    row = store.jobs.get_job_row("row")
    assert row is not None
    assert row["id"] == "row"
    assert row["enabled"] == 1
    assert row["type"] == "script"
    assert row["overlap_policy"] == "skip"
    assert row["timeout_ms"] == 5
    assert row["created_at"] == T0


def test_list_with_last_run_shows_the_latest_executed_run(store: Store) -> None:
    store.jobs.add_job(a_job("a"), T0)
    store.jobs.add_job(a_job("never"), T0)
    store.runs.create_run("a", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T1)
    # a skip is not an executed run: it must not become the "last run"
    store.runs.record_skip(
        "a", "2026-03-02T02:00:30.000Z", "still running", RunTrigger.SCHEDULE, None
    )
    listed = {j["id"]: j for j in store.jobs.list_jobs_with_last_run()}
    assert list(listed) == ["a", "never"]
    assert (listed["a"]["last_status"], listed["a"]["last_run"]) == ("running", T1)
    assert (listed["never"]["last_status"], listed["never"]["last_run"]) == (None, None)


def test_deleting_a_job_deletes_its_runs(store: Store) -> None:
    store.jobs.add_job(a_job("gone"), T0)
    store.jobs.add_job(a_job("stays"), T0)
    store.runs.create_run("gone", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    kept = store.runs.create_run("stays", RunTrigger.SCHEDULE, RunStatus.RUNNING, T0)
    assert store.jobs.delete_job("gone") is True
    assert store.jobs.get_job("gone") is None
    assert store.runs.list_runs("gone", 10) == []
    assert [r["id"] for r in store.runs.list_runs("stays", 10)] == [kept]


def test_schedule_fingerprint_changes_with_the_enabled_set(store: Store) -> None:
    empty = store.jobs.schedule_fingerprint()
    assert empty == (0, "")
    store.jobs.add_job(a_job("a"), T0)
    after_add = store.jobs.schedule_fingerprint()
    assert after_add == (1, T0)
    store.jobs.update_job(a_job("a", schedule="@hourly"), T1)
    after_edit = store.jobs.schedule_fingerprint()
    assert after_edit == (1, T1)
    store.jobs.set_enabled("a", False, "2026-03-02T03:00:00.000Z")
    assert store.jobs.schedule_fingerprint() == (0, "")
    # a disabled job's edits do not matter to the schedule
    store.jobs.add_job(a_job("off", enabled=False), "2026-03-02T04:00:00.000Z")
    assert store.jobs.schedule_fingerprint() == (0, "")


def test_jobs_list_json_is_the_same_document_as_the_rows(store: Store) -> None:
    now = "2026-03-02T01:03:00.000Z"
    for job_id in ("b-job", "a-job", 'ünïcode"quote'):
        store.jobs.add_job(
            Job(id=job_id, name=f"Name {job_id} \\ \n", schedule="* * * * *", script="/x.sh",
                timeout_ms=120000, on_failure="C1"),
            now,
        )  # fmt: skip
    run_id = store.runs.create_run("a-job", RunTrigger.SCHEDULE, RunStatus.RUNNING, now)
    store.runs.finish_run(run_id, RunResult(status=RunStatus.OK, duration_ms=5), now)
    from_sql = orjson.loads(store.jobs.jobs_list_json())
    from_rows = {"jobs": store.jobs.list_jobs_with_last_run()}
    assert from_sql == from_rows
    assert [j["id"] for j in from_sql["jobs"]] == ["a-job", "b-job", 'ünïcode"quote']
    assert from_sql["jobs"][0]["enabled"] == 1 and from_sql["jobs"][0]["last_status"] == "ok"


def test_jobs_list_json_of_no_jobs(store: Store) -> None:
    assert store.jobs.jobs_list_json() == b'{"jobs":[]}'


def test_a_fresh_store_passes_its_integrity_check(store: Store) -> None:
    store.jobs.add_job(a_job("a"), T0)
    assert store.integrity_problem() is None
