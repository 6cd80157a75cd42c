"""The cluster verbs (`protocols.ClusterStore`), PostgreSQL only: SQLite has no cluster mode.
Several stores on one schema stand in for several nodes."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from jeeves_runner.cluster_model import ClaimedRun, JobPlan, MissedGap, NodeBeat
from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger
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
    assert store.cluster.skip_claimed(first.run_id, T1, "already running", "n")
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


def _row(store: PostgresStore, run_id: int) -> tuple[str, str | None, str | None]:
    row = store.runs.get_run(run_id)
    assert row is not None
    return row["status"], row["node_id"], row["error"]


def test_a_run_is_marked_running_before_it_starts_and_then_never_given_back(
    store: PostgresStore,
) -> None:
    """start_runs is the mark a node writes before it starts a child: from then on no peer
    gives the claim to another node; a node lost after it is closed, never run again."""
    add_jobs(store, "a")
    store.cluster.write_plans([JobPlan("a", None, T1, (T1,))], T0)
    store.cluster.beat(beat("n1", T0))
    (claim,) = store.cluster.claim_runs("n1", [], T1, 5)
    assert store.cluster.start_runs("n1", [claim.run_id], T1) == {claim.run_id}
    assert _row(store, claim.run_id)[:2] == ("running", "n1")
    # Its answer lost and asked again: still this node's to start.
    assert store.cluster.start_runs("n1", [claim.run_id], T1) == {claim.run_id}
    assert store.cluster.start_runs("n2", [claim.run_id], T1) == set()
    assert store.cluster.unclaim("n2", [claim.run_id]) == 0
    assert store.cluster.skip_claimed(claim.run_id, T1, "busy", "n2") is False
    (lost,) = store.cluster.sweep_lost(LATER)
    assert (lost.closed_runs, lost.returned_runs) == (1, 0)
    assert _row(store, claim.run_id) == ("error", "n1", "Node n1 stopped during this run")
    assert store.cluster.claim_runs("n2", [], LATER, 5) == []


def test_a_claim_given_back_to_the_pool_is_refused_its_start(store: PostgresStore) -> None:
    add_jobs(store, "a")
    store.cluster.write_plans([JobPlan("a", None, T1, (T1,))], T0)
    store.cluster.beat(beat("n1", T0))
    (claim,) = store.cluster.claim_runs("n1", [], T1, 5)
    (lost,) = store.cluster.sweep_lost(LATER)  # n1 froze past 3 heartbeats
    assert lost.returned_runs == 1
    assert store.cluster.start_runs("n1", [claim.run_id], T1) == set()
    (again,) = store.cluster.claim_runs("n2", [], T1, 5)
    assert again.run_id == claim.run_id
    assert store.cluster.start_runs("n1", [claim.run_id], T1) == set()  # n1 resumed
    assert store.cluster.start_runs("n2", [claim.run_id], T2) == {claim.run_id}
    assert _row(store, claim.run_id)[:2] == ("running", "n2")
    # A manual run of the node's own (no node yet, never in the pool) takes its id.
    manual = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.PENDING, T2)
    assert store.cluster.start_runs("n2", [manual], T2) == {manual}
    assert _row(store, manual)[:2] == ("running", "n2")


def _failed_with_retry(store: PostgresStore, node: str, instant: str, due: str) -> int:
    from jeeves_runner.models import RunResult

    store.cluster.write_plans(
        [JobPlan("flaky", store.cluster.plan_state().get("flaky"), instant, (instant,))], T0
    )
    (claim,) = store.cluster.claim_runs(node, [], instant, 1)
    assert store.cluster.start_runs(node, [claim.run_id], instant) == {claim.run_id}
    failed = RunResult(RunStatus.ERROR, 5, exit_code=1, error="boom")
    retry_id = store.runs.finish_run(claim.run_id, failed, instant, retry=(due, 2, claim.run_id))
    assert retry_id is not None
    return retry_id


def test_a_nodes_retries_are_its_own_at_a_start_and_the_pools_once_it_is_lost(
    store: PostgresStore,
) -> None:
    add_jobs(store, "flaky")
    store.cluster.beat(beat("n1", T0))
    retry_id = _failed_with_retry(store, "n1", T1, LATER)
    # A start after a crash: its retries stay its own, for it to take up.
    assert store.cluster.close_node_runs("n1", T2, "gone", "never", keep_retries=True) == 0
    (retry,) = store.cluster.node_retries("n1")
    assert (retry.run_id, retry.attempt, retry.scheduled_for) == (retry_id, 2, LATER)
    assert store.cluster.node_retries("n2") == []
    assert store.cluster.claim_runs("n2", [], LATER, 5) == []
    # Lost: the retry goes to the pool, and is claimed with its try number and first run.
    (lost,) = store.cluster.sweep_lost("2026-03-02T01:00:10.000Z")
    assert lost.returned_runs == 1
    assert store.cluster.node_retries("n1") == []
    assert store.cluster.claim_runs("n2", [], T3, 5) == []  # not due yet
    (claim,) = store.cluster.claim_runs("n2", [], LATER, 5)
    assert (claim.run_id, claim.trigger, claim.attempt) == (retry_id, RunTrigger.RETRY, 2)
    assert claim.retry_of is not None and claim.retry_of == retry.retry_of


def test_a_stop_gives_retries_to_the_pool_and_claims_of_a_stopped_node_are_not_stranded(
    store: PostgresStore,
) -> None:
    add_jobs(store, "flaky")
    store.cluster.beat(beat("n1", T0))
    first = _failed_with_retry(store, "n1", T1, LATER)
    # The end of a stop: its retries go to the pool.
    store.cluster.close_node_runs("n1", T2, "gone", "never")
    assert [c.run_id for c in store.cluster.claim_runs("n2", [], LATER, 5)] == [first]
    # A retry still held by a node that stopped (written after its stop's sweep): any
    # node's sweep gives it to the pool.
    store.cluster.beat(beat("n3", T0))
    second = _failed_with_retry(store, "n3", T2, LATER)
    store.cluster.leave("n3", T3, "stopped")
    store.cluster.beat(beat("n2", T3))
    # Not in its first minute (a stopping node still records what it drops).
    store.cluster.sweep_lost("2026-03-02T01:00:05.000Z")
    assert store.cluster.claim_runs("n2", [], LATER, 5) == []
    store.cluster.beat(beat("n2", "2026-03-02T01:01:04.000Z"))
    store.cluster.sweep_lost("2026-03-02T01:01:04.000Z")
    assert [c.run_id for c in store.cluster.claim_runs("n2", [], LATER, 5)] == [second]


def test_a_leader_gone_without_its_session_is_deposed(store: PostgresStore, pg_url: str) -> None:
    """The lock held by a session that runs nothing, and no fresh heartbeat as leader: a
    peer ends that session and takes the lock. A live leader is left alone."""
    from datetime import UTC, datetime

    from jeeves_runner.models import format_instant

    frozen = PostgresClusterLink(pg_url, "frozen")
    peer = PostgresClusterLink(pg_url, "peer")

    def now() -> str:
        return format_instant(datetime.now(UTC))

    try:
        assert frozen.try_lead() is True
        store.cluster.beat(NodeBeat("frozen", "host", (), 1000, T0, now(), True))
        time.sleep(0.3)
        # Its heartbeat as leader is fresh: alive.
        assert store.cluster.depose_stale_leader(now(), 0.2) is None
        store.cluster.beat(NodeBeat("frozen", "host", (), 1000, T0, T0, True))
        # Its session ran a statement lately: alive (a leader asks the lock every 0.5 s).
        assert store.cluster.depose_stale_leader(now(), 5.0) is None
        assert peer.try_lead() is False
        pid = store.cluster.depose_stale_leader(now(), 0.2)
        assert pid is not None
        deadline = time.monotonic() + 5
        while not peer.try_lead():
            assert time.monotonic() < deadline, "the deposed session kept the lock"
            time.sleep(0.01)
        # The frozen one, resumed, finds it no longer leads; the new leader is not deposed
        # (its session is busy asking the lock).
        assert frozen.try_lead() is False
        assert store.cluster.depose_stale_leader(now(), 0.2) is None
    finally:
        frozen.close()
        peer.close()


def test_a_run_marked_ahead_and_never_started_goes_back_to_the_pool(
    store: PostgresStore,
) -> None:
    """A node marks an instant's runs `running` just before it; one it then does not start
    (a stop) it returns itself, `pending` again; one its overlap policy skips becomes
    `skipped`; a mark of the child's real start moves started_at."""
    add_jobs(store, "a", "b", "c")
    store.cluster.write_plans([JobPlan(j, None, T1, (T1,)) for j in ("a", "b", "c")], T0)
    one, two, three = store.cluster.claim_runs("n1", [], T1, 5)
    ids = [one.run_id, two.run_id, three.run_id]
    assert store.cluster.start_runs("n1", ids, T1) == set(ids)
    assert store.cluster.unclaim("n1", [one.run_id]) == 1
    assert _row(store, one.run_id)[:2] == ("pending", None)
    assert store.runs.get_run(one.run_id)["started_at"] == T1  # type: ignore[index]
    assert [c.run_id for c in store.cluster.claim_runs("n2", [], T1, 5)] == [one.run_id]
    assert store.cluster.skip_claimed(two.run_id, T2, "busy", "n1") is True
    assert _row(store, two.run_id) == ("skipped", "n1", "busy")
    store.runs.mark_running([(three.run_id, "c", "2026-03-02T01:00:01.004Z")])
    assert store.runs.get_run(three.run_id)["started_at"] == "2026-03-02T01:00:01.004Z"  # type: ignore[index]


def _claims_one_marked_one_lost(store: PostgresStore) -> tuple[ClaimedRun, ...]:
    """Three claims of n1 at T1: one pending, one marked `running` just before its instant,
    and one n2 took after n1 looked dead (a freeze: back to the pool, claimed by n2)."""
    add_jobs(store, "a", "b", "c")
    store.cluster.write_plans([JobPlan(j, None, T1, (T1,)) for j in ("a", "b", "c")], T0)
    mine, marked, lost = store.cluster.claim_runs("n1", [], T1, 5)
    assert store.cluster.start_runs("n1", [marked.run_id], T1) == {marked.run_id}
    assert store.cluster.unclaim("n1", [lost.run_id]) == 1
    assert [c.run_id for c in store.cluster.claim_runs("n2", [], T1, 5)] == [lost.run_id]
    return mine, marked, lost


def test_a_cancel_changes_only_a_claim_still_the_nodes_own(store: PostgresStore) -> None:
    """cancel_claimed is the cancel of a claim whose child has not started: its own claim
    (`pending`, or marked `running` just before its instant) becomes `cancelled` in place;
    a claim given to another node (which holds it, runs it, or has finished it) is left as
    it is, and so is one already closed."""
    mine, marked, lost = _claims_one_marked_one_lost(store)

    assert store.cluster.cancel_claimed(lost.run_id, T2, "Cancelled", "n1") is False
    assert _row(store, lost.run_id) == ("pending", "n2", None)
    assert store.cluster.start_runs("n2", [lost.run_id], T1) == {lost.run_id}
    assert store.cluster.cancel_claimed(lost.run_id, T2, "Cancelled", "n1") is False
    assert _row(store, lost.run_id) == ("running", "n2", None)
    store.runs.finish_run(lost.run_id, RunResult(RunStatus.OK, 5, exit_code=0), T2)
    assert store.cluster.cancel_claimed(lost.run_id, T3, "Cancelled", "n1") is False
    assert _row(store, lost.run_id) == ("ok", "n2", None)

    assert store.cluster.cancel_claimed(mine.run_id, T2, "Cancelled before it started", "n1")
    assert store.cluster.cancel_claimed(marked.run_id, T2, "Cancelled", "n1")
    assert _row(store, mine.run_id) == ("cancelled", "n1", "Cancelled before it started")
    assert _row(store, marked.run_id) == ("cancelled", "n1", "Cancelled")
    detail = store.runs.get_run(mine.run_id)
    assert detail is not None
    assert (detail["finished_at"], detail["duration_ms"]) == (T2, 0)
    # Closed now: a second cancel changes nothing, and no node claims or starts it.
    assert store.cluster.cancel_claimed(mine.run_id, T3, "Again", "n1") is False
    assert _row(store, mine.run_id) == ("cancelled", "n1", "Cancelled before it started")
    assert store.cluster.start_runs("n1", [mine.run_id], T3) == set()
    assert store.cluster.claim_runs("n2", [], LATER, 5) == []


def test_a_cancel_takes_a_manual_run_no_node_has_adopted_yet(store: PostgresStore) -> None:
    """A manual run's row has no node until the next heartbeat adopts it (start_runs lets
    such a row through too): cancelled before then, it is recorded as the cancelling node's.
    Once another node adopted it, it is that node's and is left alone."""
    add_jobs(store, "a")
    fresh = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.PENDING, T1)
    assert store.cluster.cancel_claimed(fresh, T2, "Cancelled", "n1")
    assert _row(store, fresh) == ("cancelled", "n1", "Cancelled")
    adopted = store.runs.create_run("a", RunTrigger.MANUAL, RunStatus.PENDING, T1)
    store.cluster.beat(beat("n2", T1, run_ids=(adopted,)))
    assert store.cluster.cancel_claimed(adopted, T2, "Cancelled", "n1") is False
    assert _row(store, adopted) == ("pending", "n2", None)


def test_dropped_claims_are_only_the_nodes_own_pending_ones(store: PostgresStore) -> None:
    """drop_claims deletes claims whose fire is no fire any more (the job was disabled
    before its instant): only rows still `pending` and still this node's; a claim a peer
    gave to another node meanwhile is that node's to decide."""
    mine, marked, lost = _claims_one_marked_one_lost(store)
    ids = [mine.run_id, marked.run_id, lost.run_id]
    assert store.cluster.drop_claims("n1", ids) == 1
    assert store.runs.get_run(mine.run_id) is None
    assert _row(store, marked.run_id) == ("running", "n1", None)
    assert _row(store, lost.run_id) == ("pending", "n2", None)
    assert store.cluster.drop_claims("n1", []) == 0


def test_a_node_stopped_inside_a_cluster_transaction_does_not_hold_up_its_peers(
    store: PostgresStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node frozen in the middle of a cluster transaction holds row locks (here the
    plan's compare-and-set row); the server ends that transaction after the idle limit, so
    the new leader's plan goes through instead of waiting for the node to come back."""
    import psycopg

    from jeeves_runner.store.postgres import cluster as cluster_sql

    monkeypatch.setattr(
        cluster_sql, "_TX_LIMIT", "SET LOCAL idle_in_transaction_session_timeout = 200"
    )
    add_jobs(store, "a")
    store.cluster.write_plans([JobPlan("a", None, T1, (T1,))], T0)
    frozen = PostgresStore(pg_url)
    took: list[float] = []

    def new_leader() -> None:
        started = time.monotonic()
        outcome = store.cluster.write_plans([JobPlan("a", T1, T2, (T2,))], T0)
        took.append(time.monotonic() - started)
        assert outcome.refused == []

    peer = threading.Thread(target=new_leader)
    try:
        with pytest.raises(psycopg.Error), frozen.cluster._transaction() as conn:
            conn.execute("UPDATE cluster_plan SET planned_through = planned_through")
            peer.start()
            time.sleep(3)  # stopped here
            conn.execute("SELECT 1")
        peer.join()
        assert took and took[0] < 2.0, took
    finally:
        frozen.close()
