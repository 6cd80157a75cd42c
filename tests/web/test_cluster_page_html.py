"""The Cluster page against a real runner in cluster mode on the real PostgreSQL: the nodes
GET /cluster lists, their state in words, the leader, and a peer's arrival and loss shown by
the page's poll without a reload."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import httpx

from jeeves_runner.cluster_model import NodeBeat
from jeeves_runner.models import format_instant
from jeeves_runner.store.postgres import PostgresStore
from live_runner import LiveRunner


def beat(store: PostgresStore, node_id: str, at: str, labels: tuple[str, ...] = ()) -> None:
    """A peer's heartbeat, as its runner would write it."""
    store.cluster.beat(NodeBeat(node_id, "peer-host", (*labels, node_id), 500, at, at, False))


def poll_until(http: httpx.Client, url: str, text: str, seconds: float = 10) -> str:
    """The fragment the page's poll swaps in, once it holds `text`."""
    deadline = time.monotonic() + seconds
    body = ""
    while time.monotonic() < deadline:
        response = http.get(url)
        if response.status_code == 200:
            body = response.text
            if text in body:
                return body
            found = re.search(r'hx-get="([^"]+)"', body)
            assert found
            url = found.group(1).replace("&amp;", "&")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; last fragment: {body[:800]}")


def test_the_cluster_page_shows_the_nodes_and_follows_them(tmp_path: Path, pg_url: str) -> None:
    cluster = {"enabled": True, "nodeId": "alpha", "labels": ["gpu"], "heartbeatMs": 200}
    runner = LiveRunner(tmp_path, dbUrl=pg_url, cluster=cluster).start()
    peers = PostgresStore(pg_url)
    try:
        now = runner.runner.clock.now()
        beat(peers, "beta", format_instant(now))
        peers.cluster.leave("beta", format_instant(now), "stopped")
        with httpx.Client(base_url=runner.url, timeout=10) as http:
            assert 'href="/ui/cluster"' in http.get("/ui").text  # in the nav in cluster mode
            poll_until(http, "/ui/cluster/rows", '<tr id="node-alpha" data-state="up" data-leader')
            page = http.get("/ui/cluster")
            assert page.status_code == 200
            alpha = re.search(r'<tr id="node-alpha".*?</tr>', page.text, re.S)
            beta = re.search(r'<tr id="node-beta".*?</tr>', page.text, re.S)
            assert alpha and beta, page.text
            # State and role in words beside the colour; the labels; this node marked.
            assert "</span> up</span>" in alpha.group(0) and "leader</span>" in alpha.group(0)
            assert '<span class="tag">gpu</span>' in alpha.group(0)
            assert "this node" in alpha.group(0)
            assert "</span> stopped</span>" in beta.group(0) and "follower" in beta.group(0)
            assert "1 of 2 nodes up · leader: " in page.text
            rows_url = re.search(r'hx-get="([^"]+)"', page.text)
            assert rows_url
            # A peer whose last heartbeat is long past: it shows up, then the leader's sweep
            # declares it lost, and the polled fragment says so without a reload.
            beat(peers, "gamma", format_instant(now - timedelta(seconds=30)))
            lost = poll_until(http, rows_url.group(1), 'id="node-gamma" data-state="lost"')
            gamma = re.search(r'<tr id="node-gamma".*?</tr>', lost, re.S)
            assert gamma and "</span> lost</span>" in gamma.group(0)
            assert "lost: no heartbeat since" in gamma.group(0)
            # The same nodes as GET /cluster.
            api = http.get("/cluster").json()
            assert {n["id"]: n["state"] for n in api["nodes"]} == {
                "alpha": "up",
                "beta": "stopped",
                "gamma": "lost",
            }
    finally:
        peers.close()
        runner.join()
