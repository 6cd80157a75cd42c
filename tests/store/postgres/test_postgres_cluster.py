"""The cluster verbs (`protocols.ClusterStore`), PostgreSQL only: SQLite has no cluster mode.
Several stores on one schema stand in for several nodes."""

from __future__ import annotations

import threading
import time
from collections import Counter

from jeeves_runner.cluster_model import JobPlan, MissedGap, NodeBeat
from jeeves_runner.models import Job, RunStatus, RunTrigger
from jeeves_runner.store.postgres import PostgresStore
from jeeves_runner.store.postgres.cluster import PostgresClusterLink

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
T2 = "2026-03-02T01:00:02.000Z"
T3 = "2026-03-02T01:00:03.000Z"
LATER = "2026-03-02T01:00:30.000Z"


def add_jobs(store: PostgresStore, *ids: str, run_on: tuple[str, ...] = ()) -> None:
    for job_id in ids:
        job = Job(id=job_id, name=job_id, schedule="* * * * * *", script="/s.sh", run_on=run_on)
        store.jobs.add_job(job, T0)


def beat(node: str, at: str, *, leader: bool = False, run_ids: tuple[int, ...] = ()) -> NodeBeat:
    return NodeBeat(node, "host", ("x",), 1000, T0, at, leader, run_ids)


def test_plans_insert_pending_rows_once_and_a_second_leader_is_refused(
    store: PostgresStore, pg_url: str
) -> None:
    add_jobs(store, "a", "b")
    first = store.cluster.write_plans(
        [JobPlan("a", None, T2, (T1, T2)), JobPlan("b", None, T1, (T1,))], T0
    )
    assert (first.inserted, first.refused) == (3, [])
    assert store.cluster.plan_state() == {"a": T2, "b": T1}
    # A second leader that read the state before the first wrote: refused, nothing written.
    other = PostgresStore(pg_url)
    try:
        late = other.cluster.write_plans([JobPlan("a", None, T3, (T2, T3))], T0)
        assert (late.inserted, late.refused) == (0, ["a"])
        stale = other.cluster.write_plans([JobPlan("b", T0, T2, (T2,))], T0)
        assert stale.refused == ["b"]
    finally:
        other.close()
    rows = store.runs.list_all_runs(10)
    assert sorted(r["job_id"] for r in rows) == ["a", "a", "b"]
    assert {r["status"] for r in rows} == {"pending"}


def test_an_instant_that_has_its_row_is_not_written_again(store: PostgresStore) -> None:
    add_jobs(store, "a")
    store.cluster.write_plans([JobPlan("a", None, T1, (T1,))], T0)
    again = store.cluster.write_plans([JobPlan("a", T1, T2, (T1, T2))], T0)
    assert again.inserted == 1


def test_a_gap_is_one_missed_row_and_a_plan_for_a_deleted_job_is_refused(
    store: PostgresStore,
) -> None:
    add_jobs(store, "a")
    outcome = store.cluster.write_plans(
        [
            JobPlan("a", None, T3, (T3,), MissedGap(T0, T2, 3)),
            JobPlan("gone", None, T3, (T3,)),
        ],
        LATER,
    )
    assert (outcome.inserted, outcome.missed, outcome.refused) == (1, 1, ["gone"])
    missed = store.runs.list_all_runs(10, statuses=[RunStatus.MISSED])
    assert len(missed) == 1
    detail = store.runs.get_run(missed[0]["id"])
    assert detail is not None
    assert (detail["missed_count"], detail["missed_first"], detail["missed_last"]) == (3, T0, T2)


def test_claims_take_due_runs_once_oldest_first_and_follow_run_on(
    store: PostgresStore, pg_url: str
) -> None:
    add_jobs(store, "any")
    add_jobs(store, "pinned", run_on=("a",))
    store.cluster.write_plans(
        [JobPlan("any", None, T3, (T1, T2, T3)), JobPlan("pinned", None, T1, (T1,))], T0
    )
    # Not due yet: T3 is after due_before.
    got = store.cluster.claim_runs("b", ["b", "x"], T2, 10)
    assert [(c.job_id, c.scheduled_for) for c in got] == [("any", T1), ("any", T2)]
    assert all(c.trigger is RunTrigger.SCHEDULE for c in got)
    got_a = store.cluster.claim_runs("a", ["a"], T3, 10)
    assert [(c.job_id, c.scheduled_for) for c in got_a] == [("pinned", T1), ("any", T3)]
    assert store.cluster.claim_runs("b", ["b"], LATER, 10) == []
    row = store.runs.get_run(got[0].run_id)
    assert row is not None and row["node_id"] == "b"


def test_concurrent_claims_never_share_a_run(store: PostgresStore, pg_url: str) -> None:
    add_jobs(store, *(f"j{n}" for n in range(20)))
    store.cluster.write_plans([JobPlan(f"j{n}", None, T1, (T0, T1)) for n in range(20)], T0)
    nodes = [PostgresStore(pg_url, pool_size=1) for _ in range(4)]
    taken: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(nodes))

    def work(n: int) -> None:
        start.wait()
        while got := nodes[n].cluster.claim_runs(f"n{n}", [], LATER, 3):
            with lock:
                taken.extend(c.run_id for c in got)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for node in nodes:
        node.close()
    assert len(taken) == 40 and max(Counter(taken).values()) == 1


def test_a_lost_node_has_its_runs_closed_and_its_claims_returned(store: PostgresStore) -> None:
    add_jobs(store, "a", "b")
    store.cluster.write_plans([JobPlan("a", None, T1, (T1,)), JobPlan("b", None, T1, (T1,))], T0)
    store.cluster.beat(beat("dead", T0))
    store.cluster.beat(beat("alive", T0))
    running, claimed = store.cluster.claim_runs("dead", ["x"], T1, 2)
    store.runs.mark_running([(running.run_id, running.job_id, T1)])
    # 2.9 heartbeats later: not lost yet.
    assert store.cluster.sweep_lost("2026-03-02T01:00:02.900Z") == []
    store.cluster.beat(beat("alive", "2026-03-02T01:00:02.900Z"))
    lost = store.cluster.sweep_lost("2026-03-02T01:00:03.100Z")
    assert [(x.node_id, x.closed_runs, x.returned_runs) for x in lost] == [("dead", 1, 1)]
    closed = store.runs.get_run(running.run_id)
    assert closed is not None
    assert (closed["status"], closed["error"]) == ("error", "Node dead stopped during this run")
    back = store.cluster.claim_runs("alive", ["x"], T1, 5)
    assert [c.run_id for c in back] == [claimed.run_id]
    nodes = {n["id"]: n for n in store.cluster.list_nodes()}
    assert nodes["dead"]["stopped_at"] is not None and nodes["alive"]["stopped_at"] is None
    assert nodes["dead"]["stop_reason"] == f"lost: no heartbeat since {T0}"
    # Swept once only.
    assert store.cluster.sweep_lost(LATER) != [] and store.cluster.sweep_lost(LATER) == []
    # The lost start learns of it at its next heartbeat; a new start does not.
    assert store.cluster.beat(beat("dead", LATER)) is True
    assert store.cluster.confirm_claims("dead", [claimed.run_id]) == set()


def test_heartbeats_adopt_runs_and_list_nodes_counts_running(store: PostgresStore) -> None:
    add_jobs(store, "a")
    run_id = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    assert store.cluster.beat(beat("n1", T0, leader=True, run_ids=(run_id,))) is False
    store.cluster.beat(beat("n2", T1, leader=True))
    nodes = store.cluster.list_nodes()
    assert [(n["id"], n["leader"], n["running"], n["labels"]) for n in nodes] == [
        ("n1", False, 1, ["x"]),
        ("n2", True, 0, ["x"]),
    ]
    assert nodes[0]["last_heartbeat"] == T0 and nodes[1]["last_heartbeat"] == T1
    store.cluster.leave("n2", T2, "stopped")
    assert store.cluster.list_nodes()[1]["stopped_at"] == T2
    store.cluster.write_plans([JobPlan("a", None, T1, (T1,))], T0)
    (claimed,) = store.cluster.claim_runs("n1", [], T1, 1)
    assert [r.id for r in store.cluster.node_open_runs("n1")] == [run_id, claimed.run_id]
    # Its running run is closed; the fire it claimed and never started goes back to the pool.
    assert store.cluster.close_node_runs("n1", T2, "gone", "never") == 1
    assert store.cluster.node_open_runs("n1") == []
    assert [c.run_id for c in store.cluster.claim_runs("n2", [], T1, 1)] == [claimed.run_id]


def test_unowned_manual_runs_are_closed_after_the_grace(store: PostgresStore) -> None:
    add_jobs(store, "a")
    run_id = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, T1)
    assert store.cluster.close_unowned(LATER, T1) == 0
    assert store.cluster.close_unowned(LATER, T2) == 1
    row = store.runs.get_run(run_id)
    assert row is not None and row["status"] == "error"


def test_skip_unclaim_expire_and_requested_runs(store: PostgresStore) -> None:
    add_jobs(store, "a", "b")
    store.cluster.write_plans([JobPlan("a", None, T2, (T1, T2)), JobPlan("b", None, T1, (T1,))], T0)
    first, second, third = store.cluster.claim_runs("n", [], T2, 3)
    assert store.cluster.skip_claimed(first.run_id, T1, "already running")
    assert store.cluster.confirm_claims("n", [first.run_id, second.run_id]) == {second.run_id}
    assert store.cluster.unclaim("n", [second.run_id, third.run_id]) == 2
    # Unclaimed again, and older than `before`: missed.
    assert store.cluster.expire_pool(T2, LATER, "no node could run it") == 1
    statuses = Counter(r["status"] for r in store.runs.list_all_runs(10))
    assert statuses == {"skipped": 1, "missed": 1, "pending": 1}
    requested = store.cluster.request_run("b", T3)
    got = store.cluster.claim_runs("n", [], T3, 5)
    assert [(c.run_id, c.trigger) for c in got] == [
        (second.run_id if second.scheduled_for == T2 else third.run_id, RunTrigger.SCHEDULE),
        (requested, RunTrigger.MANUAL),
    ]


def test_disabling_a_job_forgets_its_plan(store: PostgresStore) -> None:
    add_jobs(store, "a")
    store.cluster.write_plans([JobPlan("a", None, T1, (T1,))], T0)
    store.jobs.set_enabled("a", False, T2)
    assert store.cluster.plan_state() == {}


def test_one_leader_at_a_time_and_leadership_ends_with_its_session(pg_url: str) -> None:
    first = PostgresClusterLink(pg_url, "one")
    second = PostgresClusterLink(pg_url, "two")
    try:
        assert first.try_lead() is True
        assert first.try_lead() is True
        assert second.try_lead() is False
        first.resign()
        assert second.try_lead() is True
        assert first.try_lead() is False
    finally:
        first.close()
        second.close()


def test_listeners_hear_new_runs_and_job_changes(store: PostgresStore, pg_url: str) -> None:
    link = PostgresClusterLink(pg_url, "one")
    try:
        assert link.wait_notice(0.01) == {"runs", "jobs"}  # first call: look at once
        assert link.wait_notice(0.01) == set()
        add_jobs(store, "a")
        assert link.wait_notice(5) == {"jobs"}
        store.cluster.write_plans([JobPlan("a", None, T1, (T1,))], T0)
        assert link.wait_notice(5) == {"runs"}
        store.runs.mark_running([])  # nothing written: no notice
        assert link.wait_notice(0.05) == set()
    finally:
        link.close()


def test_leadership_ends_when_the_leaders_session_ends(store: PostgresStore, pg_url: str) -> None:
    first = PostgresClusterLink(pg_url, "one")
    second = PostgresClusterLink(pg_url, "two")
    try:
        assert first.try_lead() is True
        with store.db.connection() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'jeeves-runner node one lead%'"
            )
        deadline = time.monotonic() + 5
        while not second.try_lead():
            assert time.monotonic() < deadline, "the lock outlived its session"
            time.sleep(0.01)
        assert first.try_lead() is False
    finally:
        first.close()
        second.close()


def test_a_retry_stays_with_the_node_that_ran_the_failed_try(store: PostgresStore) -> None:
    """The node that ran a failed try waits for its retry itself: no other node claims it
    (it would run twice), and the pool's sweep of unclaimed rows leaves it alone."""
    from jeeves_runner.models import RunResult

    add_jobs(store, "flaky")
    store.cluster.write_plans([JobPlan("flaky", None, T1, (T1,))], T0)
    (claimed,) = store.cluster.claim_runs("a", ["a"], T1, 10)
    failed = RunResult(RunStatus.ERROR, 5, exit_code=1, error="boom")
    retry_id = store.runs.finish_run(claimed.run_id, failed, T2, retry=(T3, 2, claimed.run_id))
    assert retry_id is not None
    row = store.runs.get_run(retry_id)
    assert row is not None and (row["status"], row["node_id"]) == ("pending", "a")
    assert store.cluster.claim_runs("b", ["b"], LATER, 10) == []
    assert store.cluster.expire_pool(LATER, LATER, "nobody took it") == 0
    row = store.runs.get_run(retry_id)
    assert row is not None and row["status"] == "pending"
