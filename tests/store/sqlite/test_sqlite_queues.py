"""SQLite queues: what a file written by the original runner holds."""

from __future__ import annotations

import json

from jeeves_runner.queue_model import LeaseSweep, QueueDefinition
from jeeves_runner.store import SqliteStore

T0 = "2026-03-02T01:00:00.000Z"
T0_PLUS_1S = "2026-03-02T01:00:01.000Z"


def test_items_claimed_without_a_lease_get_one(store: SqliteStore) -> None:
    # What a database from the original runner holds: processing, no lease.
    queues = store.queues
    queues.add_queue(QueueDefinition(id="q", name="q", lease_ms=1000, max_attempts=2), T0)
    item_id = queues.enqueue("q", json.dumps(1), 0, None, T0)
    with store.db.transaction() as conn:
        conn.execute(
            "UPDATE queue_items SET status = 'processing', attempts = 1 WHERE id = ?", (item_id,)
        )
    assert queues.expire_leases(T0) == LeaseSweep(returned=0, dead_lettered=0)
    item = queues.get_item(item_id)
    assert item is not None
    assert item["lease_expires_at"] == T0_PLUS_1S
    assert queues.expire_leases(T0_PLUS_1S).returned == 1
