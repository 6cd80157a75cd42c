"""The leader's turn of `scheduling.cluster.ClusterNode` against real PostgreSQL: it takes
over from the planned instants in the database, and a plan write that failed is caught up by
taking over again (no fire left unplanned). A fake clock; real store, real leader lock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jeeves_runner.clock import FakeClock, SystemClock
from jeeves_runner.cluster_model import ClaimedRun, JobPlan, NodeBeat
from jeeves_runner.execution.dispatch import PreparedFire, RunDispatcher
from jeeves_runner.execution.executor import ProcessExecutor, RunningProcess
from jeeves_runner.execution.run_log import RunLog
from jeeves_runner.models import (
    STOPPED_BEFORE_RUN,
    STOPPED_DURING_RUN,
    Job,
    RunResult,
    RunStatus,
    format_instant,
    parse_instant,
)
from jeeves_runner.scheduling import cluster as cluster_module
from jeeves_runner.scheduling.cluster import ClusterNode, NodeIdentity
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.postgres import PostgresStore
from jeeves_runner.store.postgres.cluster import PostgresClusterLink

NOW = datetime(2026, 3, 2, 12, 0, 0, 500_000, tzinfo=UTC)


class IdleDispatcher:
    in_flight_run_ids: tuple[int, ...] = ()


def at(seconds: float) -> str:
    return format_instant(NOW.replace(microsecond=0) + timedelta(seconds=seconds))


def pending_instants(store: PostgresStore) -> list[str]:
    with store.db.connection() as conn:
        rows = conn.execute(
            "SELECT scheduled_for FROM runs WHERE status = 'pending' ORDER BY scheduled_for"
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_a_failed_plan_write_is_caught_up_by_the_next_take_over(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster_module, "POLL_S", 0.01)
    store = PostgresStore(pg_url)
    store.jobs.add_job(Job(id="tick", name="t", schedule="* * * * * *", script="/s"), at(-60))
    clock = FakeClock(NOW)
    node = ClusterNode(
        store=store,
        link=PostgresClusterLink(pg_url, "n1"),
        dispatcher=IdleDispatcher(),  # type: ignore[arg-type]
        clock=clock,
        zone=UTC,
        identity=NodeIdentity("n1", "host", ("n1",), 2.0),
    )

    async def scenario() -> None:
        try:
            await steps()
        finally:
            await node.stop()

    async def steps() -> None:
        await node._lead_loop()
        assert node.leading
        assert pending_instants(store) == [at(1)]  # 1.25 s ahead of 12:00:00.5
        assert store.cluster.plan_state() == {"tick": at(1)}

        def refused(*args: object) -> None:
            raise StoreError("the server went away")

        monkeypatch.setattr(store.cluster, "write_plans", refused)
        clock.advance(4)
        with pytest.raises(StoreError):
            await node._lead_loop()
        assert not node.leading  # what it planned is unknown: it takes over again
        monkeypatch.undo()
        monkeypatch.setattr(cluster_module, "POLL_S", 0.01)
        await node._lead_loop()
        # 2..4 were due while no write got through: run late; 5 planned ahead as usual.
        assert pending_instants(store) == [at(n) for n in range(1, 6)]

    try:
        asyncio.run(scenario())
    finally:
        store.close()


class StoppingDispatcher(IdleDispatcher):
    accepting = False

    async def fire(self, *args: object) -> None:
        raise AssertionError("a stopping node must not fire what it claimed")


def test_claims_a_stopping_node_did_not_start_go_back_to_the_pool(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.jobs.add_job(Job(id="tick", name="t", schedule="* * * * * *", script="/s"), at(-60))
    store.cluster.write_plans([JobPlan("tick", None, at(0), (at(0),))], at(-1))
    (claim,) = store.cluster.claim_runs("n1", [], at(0), 5)
    node = ClusterNode(
        store=store,
        link=PostgresClusterLink(pg_url, "n1"),
        dispatcher=StoppingDispatcher(),  # type: ignore[arg-type]
        clock=FakeClock(NOW),
        zone=UTC,
        identity=NodeIdentity("n1", "host", ("n1",), 2.0),
    )

    async def scenario() -> None:
        try:
            await node._start_group(claim.scheduled_for, [claim])
        finally:
            await node.stop()

    try:
        asyncio.run(scenario())
        assert [c.run_id for c in store.cluster.claim_runs("n2", [], at(0), 5)] == [claim.run_id]
    finally:
        store.close()


class WatchedExecutor(ProcessExecutor):
    """Real children; what the database says of each run at the moment its child starts."""

    def __init__(self, store: PostgresStore, db_url: str) -> None:
        super().__init__(db_path="/unused.sqlite", db_url=db_url, clock=SystemClock())
        self.store = store
        self.at_spawn: list[tuple[int, str, str | None]] = []

    async def spawn(self, job: Job, run_id: int, log: RunLog | None = None) -> RunningProcess:
        row = await asyncio.to_thread(self.store.runs.get_run, run_id)
        assert row is not None
        self.at_spawn.append((run_id, row["status"], row["node_id"]))
        return await super().spawn(job, run_id, log=log)


def real_node(store: PostgresStore, pg_url: str, node_id: str) -> tuple[ClusterNode, Any]:
    executor = WatchedExecutor(store, pg_url)
    dispatcher = RunDispatcher(
        store=StoreGateway(store),
        executor=executor,
        sessions=None,
        notifier=None,
        clock=SystemClock(),
        max_concurrency=4,
    )
    node = ClusterNode(
        store=store,
        link=PostgresClusterLink(pg_url, node_id),
        dispatcher=dispatcher,
        clock=SystemClock(),
        zone=UTC,
        identity=NodeIdentity(node_id, "host", (node_id,), 1.0),
    )
    return node, executor


def resumed_node(store: PostgresStore, pg_url: str) -> tuple[ClusterNode, Any]:
    """n1 (as real_node), resumed after a freeze it knows nothing of: its last heartbeat
    looks recent to it."""
    node, executor = real_node(store, pg_url, "n1")
    node._last_beat_mono = node.clock.monotonic()
    return node, executor


def run_and_stop(node: ClusterNode, steps: Callable[[], Awaitable[None]]) -> None:
    """`steps` on a fresh event loop, then the node stopped and its dispatcher shut down
    (1 s of grace), whatever happened."""

    async def scenario() -> None:
        try:
            await steps()
        finally:
            await node.stop()
            await node.dispatcher.shutdown(1)

    asyncio.run(scenario())


def plan_tick(store: PostgresStore) -> str:
    """A job `tick` with one instant planned now (returned), in the pool."""
    store.jobs.add_job(
        Job(id="tick", name="t", schedule="@yearly", script="", command=("true",)), at(-60)
    )
    now = format_instant(datetime.now(UTC))
    store.cluster.write_plans([JobPlan("tick", None, now, (now,))], now)
    return now


def claim_given_to_n2(store: PostgresStore) -> tuple[ClaimedRun, str]:
    """n1 claimed tick's instant and froze; a peer declared it lost and n2 took the run:
    the claim as n1 holds it, and the instant."""
    now = plan_tick(store)
    store.cluster.beat(NodeBeat("n1", "host", ("n1",), 1000, now, at(-60), False))
    (claim,) = store.cluster.claim_runs("n1", [], now, 5)
    assert store.cluster.sweep_lost(now) != []
    (again,) = store.cluster.claim_runs("n2", [], now, 5)
    assert again.run_id == claim.run_id
    return claim, now


def status_of(store: PostgresStore, run_id: int) -> tuple[str, str | None]:
    row = store.runs.get_run(run_id)
    assert row is not None
    return row["status"], row["node_id"]


def wait_status(store: PostgresStore, run_id: int, wanted: str) -> None:
    deadline = time.monotonic() + 10
    while status_of(store, run_id)[0] != wanted:
        assert time.monotonic() < deadline, status_of(store, run_id)
        time.sleep(0.02)


def test_a_claimed_run_is_running_in_the_database_before_its_child_starts(
    pg_url: str,
) -> None:
    """At-most-once: a node that died after starting the child leaves a `running` row (a
    peer closes it), never a `pending` claim a peer would give to another node."""
    store = PostgresStore(pg_url)
    now = plan_tick(store)
    (claim,) = store.cluster.claim_runs("n1", [], now, 5)
    node, executor = real_node(store, pg_url, "n1")

    async def steps() -> None:
        await node._start_group(claim.scheduled_for, [claim])
        await asyncio.to_thread(wait_status, store, claim.run_id, "ok")

    try:
        run_and_stop(node, steps)
        assert executor.at_spawn == [(claim.run_id, "running", "n1")]
        assert status_of(store, claim.run_id) == ("ok", "n1")
    finally:
        store.close()


@pytest.mark.parametrize("marked_ahead", [True, False])
def test_a_claim_given_to_another_node_is_never_started_by_the_first(
    pg_url: str, marked_ahead: bool
) -> None:
    """n1 froze after claiming; a peer declared it lost and n2 took the run. n1, resumed,
    goes on with what it held: its child never starts, and it writes nothing to n2's run.
    Refused by the mark made just before the instant, or (a run that could not start at
    once) by the mark its dispatcher asks for right before the child."""
    store = PostgresStore(pg_url)
    claim, _ = claim_given_to_n2(store)
    node, executor = resumed_node(store, pg_url)
    if not marked_ahead:
        node.dispatcher.starts_at_once = lambda job: False  # type: ignore[method-assign]

    async def steps() -> None:
        await node._start_group(claim.scheduled_for, [claim])
        for _ in range(50):  # its run task goes as far as it can
            await asyncio.sleep(0.01)

    try:
        run_and_stop(node, steps)
        assert executor.at_spawn == []
        assert status_of(store, claim.run_id) == ("pending", "n2")
    finally:
        store.close()


def test_a_busy_leader_keeps_its_lead_and_one_whose_session_ended_says_so(
    pg_url: str,
) -> None:
    """A leader whose leader loop is held up (a long take-over) but whose heartbeats go on
    is not deposed: each heartbeat asks its lock. One whose lock session was ended (frozen,
    then resumed) writes itself as not leading at its next heartbeat, and takes over afresh
    when it gets the lock again."""
    store = PostgresStore(pg_url)
    node = ClusterNode(
        store=store,
        link=PostgresClusterLink(pg_url, "n1"),
        dispatcher=IdleDispatcher(),  # type: ignore[arg-type]
        clock=SystemClock(),
        zone=UTC,
        identity=NodeIdentity("n1", "host", ("n1",), 0.2),
    )

    def now() -> str:
        return format_instant(datetime.now(UTC))

    def leader_flag() -> bool:
        (row,) = [n for n in store.cluster.list_nodes() if n["id"] == "n1"]
        return bool(row["leader"])

    async def scenario() -> None:
        try:
            await node._lead_loop()
            assert node.leading and leader_flag()
            first_term = node.link.term
            for _ in range(10):  # 1 s, 5 heartbeats; no turn of the leader loop
                await asyncio.sleep(0.1)
                await node._beat()
            assert await asyncio.to_thread(store.cluster.depose_stale_leader, now(), 0.6) is None
            with store.db.connection() as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'jeeves-runner node n1 lead%'"
                )
            deadline = time.monotonic() + 5  # the ended backend exits a moment later
            await node._beat()
            while leader_flag():
                assert time.monotonic() < deadline, "still written as leader"
                await asyncio.sleep(0.02)
                await node._beat()
            await node._lead_loop()
            assert node.leading and node.link.term == first_term + 1 == node._term
            assert leader_flag()
        finally:
            await node.stop()

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_a_run_marked_ahead_then_closed_by_a_peer_is_not_started_after_a_freeze(
    pg_url: str,
) -> None:
    """n1 marked an instant's run `running` just before it, then froze; a peer declared it
    lost and closed the run ("Node n1 stopped during this run"). n1, resumed and told at its
    heartbeat, asks again before the child: the run stays closed, never started."""
    store = PostgresStore(pg_url)
    job = Job(id="tick", name="t", schedule="@yearly", script="", command=("true",))
    store.jobs.add_job(job, at(-60))
    now = format_instant(datetime.now(UTC))
    store.cluster.write_plans([JobPlan("tick", None, now, (now,))], now)
    store.cluster.beat(NodeBeat("n1", "host", ("n1",), 1000, now, at(-60), False))
    (claim,) = store.cluster.claim_runs("n1", [], now, 5)
    node, executor = real_node(store, pg_url, "n1")
    fire_at = parse_instant(now)

    async def steps() -> None:
        prepared = [PreparedFire(job, claim.run_id)]
        assert await node._mark_ahead(prepared, fire_at, set()) == prepared
        assert status_of(store, claim.run_id) == ("running", "n1")
        assert await asyncio.to_thread(store.cluster.sweep_lost, now) != []
        node._confirm_claims = True  # what its next heartbeat learns
        await node.dispatcher.fire(prepared, fire_at)
        for _ in range(50):
            await asyncio.sleep(0.01)

    try:
        run_and_stop(node, steps)
        assert executor.at_spawn == []
        row = store.runs.get_run(claim.run_id)
        assert row is not None
        assert (row["status"], row["error"]) == ("error", "Node n1 stopped during this run")
    finally:
        store.close()


def test_a_stopping_node_writes_nothing_to_a_claim_it_had_lost(pg_url: str) -> None:
    """n1 froze while a claimed run waited for a slot; a peer gave the claim to n2, which
    started it. n1, resumed and then stopped, drops the waiting run without writing to it
    (the run is n2's); the stop's last sweep handles only n1's own rows."""
    store = PostgresStore(pg_url)
    claim, now = claim_given_to_n2(store)
    assert store.cluster.start_runs("n2", [claim.run_id], now) == {claim.run_id}
    node, executor = resumed_node(store, pg_url)

    async def scenario() -> None:
        await start_waiting_for_a_slot(node, claim)
        await asyncio.sleep(0.05)
        assert node.dispatcher.in_flight_run_ids == (claim.run_id,)
        node.dispatcher.accepting = False
        await node.stop()
        await node.dispatcher.shutdown(1)

    try:
        asyncio.run(scenario())
        assert executor.at_spawn == []
        assert status_of(store, claim.run_id) == ("running", "n2")
    finally:
        store.close()


async def start_waiting_for_a_slot(node: ClusterNode, claim: ClaimedRun) -> None:
    """The claim's group started while every slot of the node is busy: its run waits."""
    slots = node.dispatcher.slots
    for _ in range(slots.limit):
        await slots.acquire()
    await node._start_group(claim.scheduled_for, [claim])


async def in_flight(dispatcher: RunDispatcher, run_id: int) -> None:
    """Until the run's task has taken its row (its first step, a turn of the loop away)."""
    deadline = time.monotonic() + 5
    while dispatcher.in_flight_run_ids != (run_id,):
        assert time.monotonic() < deadline, dispatcher.in_flight_run_ids
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("peer", ["claimed", "running", "finished"])
def test_a_cancel_writes_nothing_to_a_claim_the_node_had_lost(pg_url: str, peer: str) -> None:
    """n1 froze while a claimed run waited for a slot; a peer gave the claim to n2, which
    holds it, runs it or has recorded it. n1, resumed, is asked to cancel that run: it
    writes nothing to n2's run and answers that the run is not its own."""
    store = PostgresStore(pg_url)
    claim, now = claim_given_to_n2(store)
    if peer != "claimed":
        assert store.cluster.start_runs("n2", [claim.run_id], now) == {claim.run_id}
    if peer == "finished":
        store.runs.finish_run(claim.run_id, RunResult(RunStatus.OK, 7, exit_code=0), now)
    before = store.runs.get_run(claim.run_id)
    node, executor = resumed_node(store, pg_url)

    async def steps() -> None:
        await start_waiting_for_a_slot(node, claim)
        await in_flight(node.dispatcher, claim.run_id)
        assert await node.dispatcher.cancel_run(claim.run_id, "Cancelled through the API") is False
        assert node.dispatcher.in_flight_run_ids == ()

    try:
        run_and_stop(node, steps)
        assert executor.at_spawn == []
        assert store.runs.get_run(claim.run_id) == before
    finally:
        store.close()


def test_a_cancel_of_a_claim_still_the_nodes_own_is_recorded(pg_url: str) -> None:
    """The same cancel of a waiting claim that is still n1's: recorded as `cancelled`
    before it started, in place."""
    store = PostgresStore(pg_url)
    now = plan_tick(store)
    (claim,) = store.cluster.claim_runs("n1", [], now, 5)
    node, executor = real_node(store, pg_url, "n1")

    async def steps() -> None:
        await start_waiting_for_a_slot(node, claim)
        await in_flight(node.dispatcher, claim.run_id)
        assert await node.dispatcher.cancel_run(claim.run_id, "Cancelled through the API")
        assert node.dispatcher.in_flight_run_ids == ()

    try:
        run_and_stop(node, steps)
        assert executor.at_spawn == []
        row = store.runs.get_run(claim.run_id)
        assert row is not None
        assert (row["status"], row["node_id"], row["error"]) == (
            "cancelled",
            "n1",
            "Cancelled through the API before it started",
        )
    finally:
        store.close()


def test_a_cancel_the_database_refuses_until_the_stop_leaves_the_claim_to_the_last_sweep(
    pg_url: str,
) -> None:
    """The database refuses the guarded cancel of n1's waiting claim until the stop's last
    moment: nothing is written, cancel_run answers False (the cancel did not happen: the API
    says 409), no child starts, and the row is still n1's pending claim. The runner's last
    sweep gives it back to the pool, as every claim of a stopping node: no row is left
    running or held by the stopped node."""
    store = PostgresStore(pg_url)
    now = plan_tick(store)
    (claim,) = store.cluster.claim_runs("n1", [], now, 5)
    node, executor = real_node(store, pg_url, "n1")
    refused: list[int] = []

    def refuse(run_id: int, *args: object) -> bool:
        refused.append(run_id)
        raise StoreError("The database is busy; try again")

    store.cluster.cancel_claimed = refuse  # type: ignore[method-assign]
    answers: list[bool] = []

    async def steps() -> None:
        await start_waiting_for_a_slot(node, claim)
        await in_flight(node.dispatcher, claim.run_id)
        cancel = asyncio.ensure_future(
            node.dispatcher.cancel_run(claim.run_id, "Cancelled through the API")
        )
        deadline = time.monotonic() + 5
        while not refused:
            assert time.monotonic() < deadline, "the cancel never reached the database"
            await asyncio.sleep(0.005)
        # The stop, as the runner makes it; the dispatcher's last moment ends the retries.
        node.dispatcher.accepting = False
        await node.stop()
        await node.dispatcher.shutdown(0.1)
        answers.append(await cancel)

    try:
        asyncio.run(steps())
        assert answers == [False]
        assert executor.at_spawn == []
        assert status_of(store, claim.run_id) == ("pending", "n1")
        at = format_instant(datetime.now(UTC))
        closed = store.cluster.close_node_runs("n1", at, STOPPED_DURING_RUN, STOPPED_BEFORE_RUN)
        assert closed == 0
        assert status_of(store, claim.run_id) == ("pending", None)
    finally:
        store.close()


def test_a_leader_that_cannot_write_gives_the_lock_up_until_a_heartbeat_lands(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its lock session answers, but its writes (heartbeats, plans: the pool) fail: after as
    long as peers wait before declaring a node lost, it resigns, so another node can lead;
    once a heartbeat is written again, it may lead again."""
    store = PostgresStore(pg_url)
    clock = FakeClock(NOW)
    node = ClusterNode(
        store=store,
        link=PostgresClusterLink(pg_url, "n1"),
        dispatcher=IdleDispatcher(),  # type: ignore[arg-type]
        clock=clock,
        zone=UTC,
        identity=NodeIdentity("n1", "host", ("n1",), 2.0),
    )
    other = PostgresClusterLink(pg_url, "n2")
    beat = store.cluster.beat

    def failing(*args: object) -> bool:
        raise StoreError("the pool's connections fail")

    async def scenario() -> None:
        try:
            await node._beat()
            await node._lead_loop()
            assert node.leading
            assert not await asyncio.to_thread(other.try_lead)
            monkeypatch.setattr(store.cluster, "beat", failing)
            clock.advance(5)  # under 3 heartbeats without one written: still leading
            with pytest.raises(StoreError):
                await node._beat()
            await node._lead_loop()
            assert node.leading
            clock.advance(2)  # past 6 s
            await node._lead_loop()
            assert not node.leading
            assert await asyncio.to_thread(other.try_lead)  # the lock is free for a peer
            await asyncio.to_thread(other.resign)
            monkeypatch.setattr(store.cluster, "beat", beat)
            await node._beat()
            await node._lead_loop()
            assert node.leading
        finally:
            await node.stop()
            await asyncio.to_thread(other.close)

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_a_claim_whose_job_was_disabled_keeps_its_instant_when_it_was_due_before(
    pg_url: str,
) -> None:
    """A node that takes up claims late (loaded) finds their jobs disabled meanwhile. Disabled
    after the instant came: the instant was an enabled job's fire and keeps its row, as a
    skip with the reason (never silently gone). Disabled before it: no fire, no row."""
    store = PostgresStore(pg_url)
    for job_id in ("late", "early"):
        store.jobs.add_job(
            Job(id=job_id, name=job_id, schedule="@yearly", script="", command=("true",)),
            at(-60),
        )
    due = format_instant(datetime.now(UTC) - timedelta(seconds=2))
    plans = [JobPlan(j, None, due, (due,)) for j in ("late", "early")]
    store.cluster.write_plans(plans, at(-60))
    claims = store.cluster.claim_runs("n1", [], due, 5)
    assert len(claims) == 2
    store.jobs.set_enabled("late", False, format_instant(datetime.now(UTC)))  # after `due`
    store.jobs.set_enabled("early", False, at(-30))  # before it (as written by then)
    node, executor = real_node(store, pg_url, "n1")

    async def steps() -> None:
        await node._start_group(due, claims)

    try:
        run_and_stop(node, steps)
        assert executor.at_spawn == []
        by_job = {c.job_id: c.run_id for c in claims}
        late = store.runs.get_run(by_job["late"])
        assert late is not None and late["status"] == "skipped", late
        assert late["error"] == cluster_module.DISABLED_SINCE_DUE
        assert store.runs.get_run(by_job["early"]) is None
    finally:
        store.close()


def test_a_claim_dropped_for_its_disabled_job_is_not_deleted_once_another_nodes(
    pg_url: str,
) -> None:
    """n1 claimed a fire whose job was disabled before its instant, then froze; a peer gave
    the claim to n2 (whose decision it now is: the job may be enabled again by the time n2
    looks). n1, resumed, drops only its own claims: n2's row stays."""
    store = PostgresStore(pg_url)
    store.jobs.add_job(
        Job(id="early", name="e", schedule="@yearly", script="", command=("true",)), at(-60)
    )
    due = format_instant(datetime.now(UTC) - timedelta(seconds=2))
    store.cluster.write_plans([JobPlan("early", None, due, (due,))], at(-60))
    store.cluster.beat(NodeBeat("n1", "host", ("n1",), 1000, due, at(-60), False))
    (claim,) = store.cluster.claim_runs("n1", [], due, 5)
    store.jobs.set_enabled("early", False, at(-30))  # before its instant
    assert store.cluster.sweep_lost(due) != []
    (again,) = store.cluster.claim_runs("n2", [], due, 5)
    assert again.run_id == claim.run_id
    node, executor = resumed_node(store, pg_url)

    async def steps() -> None:
        await node._start_group(due, [claim])

    try:
        run_and_stop(node, steps)
        assert executor.at_spawn == []
        assert status_of(store, claim.run_id) == ("pending", "n2")
    finally:
        store.close()


def test_a_cancel_of_a_manual_run_not_yet_adopted_is_recorded(pg_url: str) -> None:
    """A manual run on a cluster node waits for a slot; its row has no node yet (the next
    heartbeat adopts it). Cancelled meanwhile: recorded `cancelled`, as this node's, and
    cancel_run says so (the guard lets through what start_runs lets through)."""
    store = PostgresStore(pg_url)
    plan_tick(store)
    node, _ = real_node(store, pg_url, "n1")
    answer: list[bool] = []
    made: list[int] = []

    async def steps() -> None:
        slots = node.dispatcher.slots
        for _ in range(slots.limit):
            await slots.acquire()
        run_id = await node.dispatcher.start_run("tick")
        made.append(run_id)
        await in_flight(node.dispatcher, run_id)
        answer.append(await node.dispatcher.cancel_run(run_id, "Cancelled through the API"))

    try:
        run_and_stop(node, steps)
        assert answer == [True]
        assert status_of(store, made[0]) == ("cancelled", "n1")
    finally:
        store.close()
