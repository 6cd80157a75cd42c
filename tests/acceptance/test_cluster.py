"""Cluster mode end to end: three real runner processes on one PostgreSQL schema, SIGKILL of
the leader and of another node, and exactly one run per (job, second) (issue 12's "Show",
shortened to 20 s; benchmarks/bench_cluster.py runs the full 60 s)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cluster_scenario import PINNED, run_scenario, start_nodes
from runner_process import RunnerProcess, wait_for


@pytest.mark.slow
def test_three_nodes_each_instant_runs_exactly_once_through_two_kills(
    tmp_path: Path, pg_url: str
) -> None:
    outcome = run_scenario(tmp_path, pg_url, seconds=20, kills_at=(7, 14), heartbeat_ms=1000)
    summary = outcome.as_dict()
    print(summary)  # shown with -s
    assert outcome.instants == 400, summary
    assert outcome.missing == [], summary
    assert outcome.doubled == [], summary
    assert outcome.left_open == 0, summary
    assert outcome.pinned_nodes == {"a"}, summary
    assert len(outcome.killed) == 2 and "a" not in outcome.killed, summary
    assert outcome.failover_s is not None and outcome.failover_s <= 2.0, summary
    assert PINNED.startswith("job-")


def test_get_cluster_lists_the_nodes_manual_runs_follow_run_on_and_single_runners_refused(
    tmp_path: Path, pg_url: str
) -> None:
    nodes = start_nodes(tmp_path, pg_url, heartbeat_ms=500)
    try:
        a = nodes["a"]

        def listed() -> list[dict[str, object]] | None:
            body = httpx.get(f"{a.url}/cluster", timeout=5).json()
            up = [n for n in body["nodes"] if n["state"] == "up"]
            return body["nodes"] if len(up) == 3 and any(n["leader"] for n in up) else None

        listed_nodes = wait_for(listed, 10, "three nodes up, one leading")
        assert [n["id"] for n in listed_nodes] == ["a", "b", "c"]
        assert sum(1 for n in listed_nodes if n["leader"]) == 1
        assert listed_nodes[0]["labels"] == ["a"]
        assert set(listed_nodes[0]) >= {"host", "last_heartbeat", "running", "started_at"}
        body = httpx.get(f"{a.url}/cluster", timeout=5).json()
        assert (body["enabled"], body["node_id"]) == (True, "a")
        # A manual run of a job pinned to `a`, asked of `b`: it runs on `a`.
        job = {"id": "pinned", "name": "P", "schedule": "@yearly", "command": ["true"]}
        created = httpx.post(f"{a.url}/jobs", json={**job, "run_on": ["a"]}, timeout=5)
        assert created.status_code == 201, created.text
        ran = httpx.post(f"{nodes['b'].url}/jobs/pinned/run", timeout=30)
        assert ran.status_code == 200 and ran.json()["result"]["status"] == "ok", ran.text
        (run,) = httpx.get(f"{a.url}/jobs/pinned/runs", timeout=5).json()["runs"]
        detail = httpx.get(f"{a.url}/runs/{run['id']}", timeout=5).json()
        assert (detail["run"]["node_id"], detail["run"]["trigger"]) == ("a", "manual"), detail
        # A single runner (cluster mode off) refuses to start beside the nodes.
        (tmp_path / "single").mkdir()
        single = RunnerProcess(tmp_path / "single", dbUrl=pg_url)
        refused = single.cli("start")
        assert refused.returncode != 0 and "already using" in refused.stderr, refused.stderr
        nodes["b"].stop()
        stopped = httpx.get(f"{a.url}/cluster", timeout=5).json()["nodes"][1]
        assert (stopped["id"], stopped["state"], stopped["leader"]) == ("b", "stopped", False)
    finally:
        for node in nodes.values():
            node.stop()
