"""NotifyStateStore contract: each job's streak of consecutive failures, run once per backend
(see conftest.py)."""

from __future__ import annotations

import threading

import pytest
from store_backends import Backend

from jeeves_runner.models import Job, RunStatus
from jeeves_runner.notify_model import NotifyStreak
from jeeves_runner.store.protocols import Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:01:00.000Z"
T2 = "2026-03-02T01:02:00.000Z"


@pytest.fixture
def job_store(store: Store) -> Store:
    store.jobs.add_job(Job(id="nightly", name="Nightly", schedule="0 3 * * *", script="/x"), T0)
    return store


def test_a_jobs_first_outcome_sees_an_empty_streak(job_store: Store) -> None:
    assert job_store.notify_state.get_streak("nightly") is None
    assert job_store.notify_state.record_outcome("nightly", RunStatus.ERROR, T1) == NotifyStreak()
    assert job_store.notify_state.get_streak("nightly") == NotifyStreak(1, "error", T1)


def test_failures_count_up_and_a_success_sets_the_count_back(job_store: Store) -> None:
    notify = job_store.notify_state
    seen = [
        notify.record_outcome("nightly", status, T1).failures  # type: ignore[union-attr]
        for status in (RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.ERROR, RunStatus.OK)
    ]
    assert seen == [0, 1, 2, 3]  # each answer is the streak before that run
    assert notify.get_streak("nightly") == NotifyStreak(0, "ok", T1)
    assert notify.record_outcome("nightly", RunStatus.OK, T2) == NotifyStreak(0, "ok", T1)


@pytest.mark.parametrize("status", [RunStatus.CANCELLED, RunStatus.SKIPPED, RunStatus.RUNNING])
def test_statuses_that_are_neither_failure_nor_success_leave_the_streak(
    job_store: Store, status: RunStatus
) -> None:
    notify = job_store.notify_state
    notify.record_outcome("nightly", RunStatus.ERROR, T1)
    assert notify.record_outcome("nightly", status, T2) == NotifyStreak(1, "error", T1)
    assert notify.get_streak("nightly") == NotifyStreak(1, "error", T1)


def test_an_unknown_job_stores_nothing(store: Store) -> None:
    assert store.notify_state.record_outcome("ghost", RunStatus.ERROR, T1) is None
    assert store.notify_state.get_streak("ghost") is None


def test_the_streak_is_deleted_with_its_job(job_store: Store) -> None:
    job_store.notify_state.record_outcome("nightly", RunStatus.ERROR, T1)
    assert job_store.jobs.delete_job("nightly")
    job_store.jobs.add_job(Job(id="nightly", name="N", schedule="0 3 * * *", script="/x"), T2)
    assert job_store.notify_state.get_streak("nightly") is None


def test_the_streak_survives_reopening_the_database(backend: Backend) -> None:
    first = backend.open()
    try:
        first.jobs.add_job(Job(id="nightly", name="N", schedule="0 3 * * *", script="/x"), T0)
        first.notify_state.record_outcome("nightly", RunStatus.ERROR, T1)
    finally:
        first.close()
    again = backend.open()
    try:
        assert again.notify_state.record_outcome("nightly", RunStatus.ERROR, T2) == NotifyStreak(
            1, "error", T1
        )
    finally:
        again.close()


def test_two_processes_recording_at_once_each_see_the_others_failure(backend: Backend) -> None:
    """Two connections (what two processes would hold) record 20 failures each at once:
    every answer is distinct, so no failure was counted twice or lost."""
    setup = backend.open()
    setup.jobs.add_job(Job(id="nightly", name="N", schedule="0 3 * * *", script="/x"), T0)
    stores = [backend.open(), backend.open()]
    seen: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def record(s: Store) -> None:
        barrier.wait()
        for _ in range(20):
            before = s.notify_state.record_outcome("nightly", RunStatus.ERROR, T1)
            assert before is not None
            with lock:
                seen.append(before.failures)

    threads = [threading.Thread(target=record, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(seen) == list(range(40))
        assert setup.notify_state.get_streak("nightly") == NotifyStreak(40, "error", T1)
    finally:
        for s in [*stores, setup]:
            s.close()
