"""The Cluster page in a real Chromium against a runner in cluster mode on the real
PostgreSQL: the nodes with their state in words, a peer joining shown without a reload, and
the page's screenshots (light, dark, phone)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_shots import screenshots

from jeeves_runner.cluster_model import NodeBeat
from jeeves_runner.models import format_instant
from jeeves_runner.store.postgres import PostgresStore
from live_runner import LiveRunner

pytestmark = pytest.mark.slow


def beat(store: PostgresStore, node_id: str, at: str, labels: tuple[str, ...] = ()) -> None:
    store.cluster.beat(NodeBeat(node_id, "build-02", (*labels, node_id), 2000, at, at, False))


def test_the_cluster_page_follows_its_nodes(
    browser: Any, tmp_path: Path, pg_url: str, shots_dir: Path | None
) -> None:
    from playwright.sync_api import expect

    cluster = {"enabled": True, "nodeId": "node-a", "labels": ["gpu"], "heartbeatMs": 500}
    runner = LiveRunner(tmp_path, dbUrl=pg_url, cluster=cluster).start()
    peers = PostgresStore(pg_url)
    context = browser.new_context(base_url=runner.url)
    try:
        now = runner.runner.clock.now()
        beat(peers, "node-b", format_instant(now), ("arm",))
        peers.cluster.leave("node-b", format_instant(now), "stopped")
        beat(peers, "node-c", format_instant(now - timedelta(minutes=5)))  # swept as lost
        page = context.new_page()
        page.goto("/ui")
        page.get_by_role("link", name="Cluster").click()
        expect(page.locator("#node-node-a")).to_have_attribute("data-leader", "true")
        expect(page.locator("#node-node-a .badge").first).to_have_text(re.compile("up$"))
        expect(page.locator("#node-node-b .badge").first).to_have_text(re.compile("stopped$"))
        expect(page.locator("#node-node-c .badge").first).to_have_text(re.compile("lost$"))
        # A node joins: the open page shows it without a reload.
        page.evaluate("window.notReloaded = true")
        beat(peers, "node-d", format_instant(runner.runner.clock.now()))
        expect(page.locator("#node-node-d .badge").first).to_have_text(re.compile("up$"))
        assert page.evaluate("window.notReloaded") is True
        expect(page.locator("#cluster-nodes .summary")).to_contain_text("leader: node-a")
        screenshots(browser, runner.url, shots_dir, "/ui/cluster", "cluster")
    finally:
        context.close()
        peers.close()
        runner.join()
