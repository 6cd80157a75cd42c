"""Cluster mode end to end: three real runner processes on one PostgreSQL schema, SIGKILL of
the leader and of another node, and exactly one run per (job, second) (issue 12's "Show",
shortened to 20 s; benchmarks/bench_cluster.py runs the full 60 s). One start of the three
nodes serves every check: GET /cluster, manual runs and run_on, the shared runner lock."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cluster_scenario import run_scenario
from runner_process import RunnerProcess, wait_for


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
        seconds=20,
        kills_at=(7, 14),
        heartbeat_ms=1000,
        before_window=lambda nodes: check_live_nodes(nodes, tmp_path, pg_url),
    )
    summary = outcome.as_dict()
    print(summary)  # shown with -s
    assert outcome.instants == 400, summary
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
