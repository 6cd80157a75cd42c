"""Cluster mode end to end: three real runner processes on one PostgreSQL schema, SIGKILL of
the leader and of another node, and exactly one run per (job, second) (issue 12's "Show",
shortened to 12 s; benchmarks/bench_cluster.py runs the full 60 s). One start of the three
nodes serves every check: GET /cluster, manual runs and run_on, the shared runner lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_scenario import run_freeze_scenario, run_scenario
from runner_process import RunnerProcess, wait_for

from jeeves_runner.cluster_model import JobPlan, NodeBeat
from jeeves_runner.models import Job, RunResult, RunStatus, format_instant, parse_instant
from jeeves_runner.store.postgres import PostgresStore

OPEN = ("pending", "running")
# The window of the three-node test and its two kills: 4 s apart, each more than the 2 s the
# new leader has to plan and the 3 heartbeats (1 s) in which a killed node is found lost.
WINDOW_S = 12
KILLS_AT = (4.0, 8.0)


def check_live_nodes(nodes: dict[str, RunnerProcess], folder: Path, pg_url: str) -> None:
    a, b = nodes["a"], nodes["b"]

    def listed() -> list[dict[str, object]] | None:
        body = httpx.get(f"{a.url}/cluster", timeout=5).json()
        up = [n for n in body["nodes"] if n["state"] == "up"]
        return body["nodes"] if len(up) == 3 and any(n["leader"] for n in up) else None

    listed_nodes = wait_for(listed, 10, "three nodes up, one leading")
    assert [n["id"] for n in listed_nodes] == ["a", "b", "c"]
    assert sum(1 for n in listed_nodes if n["leader"]) == 1
    assert listed_nodes[0]["labels"] == ["a"]
    assert set(listed_nodes[0]) >= {"host", "last_heartbeat", "running", "started_at"}
    body = httpx.get(f"{b.url}/cluster", timeout=5).json()
    assert (body["enabled"], body["node_id"]) == (True, "b")
    # A manual run of a job pinned to `a`, asked of `b`: it runs on `a`, and `b` answers
    # with its result.
    job = {"id": "pinned", "name": "P", "schedule": "@yearly", "command": ["true"]}
    created = httpx.post(f"{a.url}/jobs", json={**job, "run_on": ["a"]}, timeout=5)
    assert created.status_code == 201, created.text
    ran = httpx.post(f"{b.url}/jobs/pinned/run", timeout=30)
    assert ran.status_code == 200 and ran.json()["result"]["status"] == "ok", ran.text
    (run,) = httpx.get(f"{a.url}/jobs/pinned/runs", timeout=5).json()["runs"]
    detail = httpx.get(f"{a.url}/runs/{run['id']}", timeout=5).json()["run"]
    assert (detail["node_id"], detail["trigger"]) == ("a", "manual"), detail
    # A single runner (cluster mode off) refuses to start beside the nodes.
    (folder / "single").mkdir()
    refused = RunnerProcess(folder / "single", dbUrl=pg_url).cli("start")
    assert refused.returncode != 0 and "already using" in refused.stderr, refused.stderr


@pytest.mark.slow
def test_three_nodes_each_instant_runs_exactly_once_through_two_kills(
    tmp_path: Path, pg_url: str
) -> None:
    outcome = run_scenario(
        tmp_path,
        pg_url,
        seconds=WINDOW_S,
        kills_at=KILLS_AT,
        heartbeat_ms=1000,
        before_window=lambda nodes: check_live_nodes(nodes, tmp_path, pg_url),
    )
    summary = outcome.as_dict()
    print(summary)  # shown with -s
    assert outcome.instants == 20 * WINDOW_S, summary  # 20 jobs, every second
    assert outcome.missing == [], summary
    assert outcome.doubled == [], summary
    assert outcome.left_open == 0, summary
    assert outcome.pinned_nodes == {"a"}, summary
    assert len(outcome.killed) == 2 and "a" not in outcome.killed, summary
    assert outcome.failover_s is not None and outcome.failover_s <= 2.0, summary
    # The killed nodes show as lost, not leading; `a` is up (it answered).
    states = {n["id"]: (n["state"], n["leader"]) for n in outcome.final_view["nodes"]}
    assert states["b"] == ("lost", False) and states["c"] == ("lost", False), states
    assert states["a"][0] == "up"


@pytest.mark.slow
def test_a_frozen_leader_is_deposed_and_resumed_it_fires_nothing_twice(
    tmp_path: Path, pg_url: str
) -> None:
    """SIGSTOP of the leader keeps its session, and the leader lock, open: its peers end
    that session once its lock and heartbeat have been silent for 3 heartbeats, and a new
    leader plans. Resumed with SIGCONT, the old leader finds it leads no more and that its
    claims went to others: no child starts twice, no (job, second) has two runs, none is
    left open."""
    heartbeat_ms = 1000
    outcome = run_freeze_scenario(
        tmp_path, pg_url, jobs=4, heartbeat_ms=heartbeat_ms, before_s=1.5, after_s=2.0
    )
    summary = outcome.as_dict()
    print(summary)  # shown with -s
    bound_s = 3 * heartbeat_ms / 1000 + 2  # README, "Cluster mode": failover
    assert outcome.failover_s is not None and outcome.failover_s <= bound_s, summary
    assert outcome.new_leader not in (None, outcome.frozen), summary
    assert outcome.leader_after == outcome.new_leader, summary
    assert outcome.instants > 0 and outcome.doubled == [], summary
    assert outcome.started_twice == [], summary
    assert outcome.left_open == 0, summary
    assert "leadership lost" in outcome.resumed_log, outcome.resumed_log[-3000:]


@pytest.mark.slow
def test_retries_of_a_killed_node_are_taken_up_by_it_and_of_a_lost_node_by_the_pool(
    tmp_path: Path, pg_url: str
) -> None:
    """What nodes killed with -9 leave: `a` (killed a moment ago, starting again) and `x`
    (silent for a minute, never back) each ran a failed try whose retry waits for its time
    with the node's id. Started again, `a` takes up its own retry; it finds `x` lost, and
    `x`'s retry goes to the pool, where `a` claims it. Each retry runs once, at its time,
    as the second try (it fails again and, with retries: 1, is not retried a third time)."""
    store = PostgresStore(pg_url)
    starts = tmp_path / "started.txt"
    now = datetime.now(UTC)
    earlier = format_instant(now - timedelta(seconds=10))
    due = format_instant(now + timedelta(seconds=5))
    retries: dict[str, int] = {}
    try:
        store.cluster.beat(NodeBeat("a", "host", ("a",), 1000, earlier, format_instant(now), False))
        lost_beat = format_instant(now - timedelta(seconds=60))
        store.cluster.beat(NodeBeat("x", "host", ("x",), 1000, earlier, lost_beat, False))
        for job_id, node in (("mine", "a"), ("orphan", "x")):
            script = f'echo "$JR_RUN_ID" >> "{starts}"; exit 1'
            job = Job(
                id=job_id, name=job_id, schedule="@yearly", script="",
                command=("sh", "-c", script), retries=1,
            )  # fmt: skip
            store.jobs.add_job(job, earlier)
            store.cluster.write_plans([JobPlan(job_id, None, earlier, (earlier,))], earlier)
            (claim,) = store.cluster.claim_runs(node, [node], earlier, 1)
            assert store.cluster.start_runs(node, [claim.run_id], earlier) == {claim.run_id}
            failed = RunResult(RunStatus.ERROR, 5, exit_code=1, error="Exit code 1")
            retry_id = store.runs.finish_run(
                claim.run_id, failed, earlier, retry=(due, 2, claim.run_id)
            )
            assert retry_id is not None
            retries[job_id] = retry_id
        (tmp_path / "a").mkdir()
        node_a = RunnerProcess(
            tmp_path / "a",
            dbUrl=pg_url,
            timezone="UTC",
            cluster={"enabled": True, "nodeId": "a", "heartbeatMs": 1000},
        )
        node_a.start()
        try:

            def finished() -> list[dict[str, Any]] | None:
                rows = [store.runs.get_run(run_id) for run_id in retries.values()]
                done = [r for r in rows if r is not None and r["status"] not in OPEN]
                return done if len(done) == len(retries) else None

            rows = wait_for(finished, 20, "both retries run", step=0.1)
        finally:
            node_a.stop()
        for row in rows:
            assert (row["status"], row["exit_code"], row["node_id"]) == ("error", 1, "a"), row
            assert row["attempt"] == 2 and row["trigger"] == "retry", row
            assert parse_instant(row["started_at"]) >= parse_instant(due), row
        for job_id in retries:
            assert len(store.runs.list_runs(job_id, 10)) == 2  # the first try and its retry
        assert sorted(starts.read_text().split()) == sorted(str(r) for r in retries.values())
        nodes = {n["id"]: n for n in store.cluster.list_nodes()}
        assert nodes["x"]["stop_reason"].startswith("lost"), nodes["x"]
    finally:
        store.close()
