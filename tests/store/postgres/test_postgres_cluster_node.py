"""The leader's turn of `scheduling.cluster.ClusterNode` against real PostgreSQL: it takes
over from the planned instants in the database, and a plan write that failed is caught up by
taking over again (no fire left unplanned). A fake clock; real store, real leader lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from jeeves_runner.clock import FakeClock
from jeeves_runner.cluster_model import JobPlan
from jeeves_runner.models import Job, format_instant
from jeeves_runner.scheduling import cluster as cluster_module
from jeeves_runner.scheduling.cluster import ClusterNode, NodeIdentity
from jeeves_runner.store.errors import StoreError
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
