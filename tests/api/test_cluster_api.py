"""GET /cluster (api/cluster.py) on a single runner; a cluster's nodes are listed in
tests/acceptance/test_cluster.py, with real nodes."""

from __future__ import annotations

import httpx


def test_a_single_runner_says_cluster_mode_is_off(client: httpx.Client) -> None:
    response = client.get("/cluster")
    assert response.status_code == 200
    assert response.json() == {"enabled": False, "node_id": None, "nodes": []}
