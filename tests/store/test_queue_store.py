"""QueueStore contract: definitions, dedup scopes, claims and leases, the operator views, and
the maintenance passes, run once per backend (see conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jeeves_runner.queue_model import (
    LEASE_EXPIRED_ERROR,
    DedupScope,
    ItemStatus,
    QueueDefinition,
    QueueExistsError,
)
from jeeves_runner.store.protocols import QueueStore, Store

T0 = "2026-03-02T01:00:00.000Z"
T0_PLUS_999 = "2026-03-02T01:00:00.999Z"
T0_PLUS_1S = "2026-03-02T01:00:01.000Z"
T0_PLUS_1M = "2026-03-02T01:01:00.000Z"


@pytest.fixture
def queues(store: Store) -> QueueStore:
    return store.queues


def put(queues: QueueStore, queue: str, payload: Any, priority: int = 0, at: str = T0) -> int:
    return queues.enqueue(queue, json.dumps(payload), priority, None, at)


def item_row(queues: QueueStore, item_id: int) -> dict[str, Any]:
    row = queues.get_item(item_id)
    assert row is not None
    return row


# -- definitions ------------------------------------------------------------------------------


def test_add_queue_refuses_a_duplicate_unless_replacing(queues: QueueStore) -> None:
    first = queues.add_queue(QueueDefinition(id="q", name="Q", max_attempts=3), T0)
    assert first.created_at == T0
    with pytest.raises(QueueExistsError, match="Queue 'q' already exists"):
        queues.add_queue(QueueDefinition(id="q", name="Other"), T0_PLUS_1S)
    put(queues, "q", {"n": 1})
    replaced = queues.add_queue(
        QueueDefinition(id="q", name="Renamed", lease_ms=1000, dedup_scope=DedupScope.ALL),
        T0_PLUS_1S,
        replace=True,
    )
    assert (replaced.name, replaced.lease_ms, replaced.dedup_scope) == ("Renamed", 1000, "all")
    assert replaced.created_at == T0  # the queue is the same queue; its items stay
    assert queues.queue_status("q", T0_PLUS_1S) == {
        "depth": 1,
        "claimedCount": 0,
        "failedCount": 0,
        "oldestAge": 1000,
    }


def test_replace_creates_a_missing_queue(queues: QueueStore) -> None:
    created = queues.add_queue(QueueDefinition(id="new", name="New"), T0, replace=True)
    assert created.created_at == T0


def test_enqueue_to_an_undefined_queue_creates_the_default_definition(
    queues: QueueStore,
) -> None:
    put(queues, "auto", {"n": 1})
    assert queues.get_queue("auto") == QueueDefinition(
        id="auto",
        name="auto",
        dedup_scope=DedupScope.PENDING,
        max_attempts=1,
        retention_days=7,
        lease_ms=300_000,
        created_at=T0,
    )


# -- dedup scopes -----------------------------------------------------------------------------


def test_dedup_scope_pending_ignores_done_and_failed_items(queues: QueueStore) -> None:
    queues.add_queue(QueueDefinition(id="q", name="q", dedup_expr="$.url"), T0)
    first = put(queues, "q", {"url": "a"})
    assert put(queues, "q", {"url": "a"}) == -1  # pending
    [claimed] = queues.claim("q", 1, T0)
    assert put(queues, "q", {"url": "a"}) == -1  # processing
    assert queues.done(claimed.id, T0) is True
    second = put(queues, "q", {"url": "a"})  # done: out of scope
    assert second > first
    assert put(queues, "q", {"url": "b"}) > second


def test_dedup_scope_all_includes_done_but_not_failed(queues: QueueStore) -> None:
    definition = QueueDefinition(id="q", name="q", dedup_expr="$.url", dedup_scope=DedupScope.ALL)
    queues.add_queue(definition, T0)
    put(queues, "q", {"url": "a"})
    [claimed] = queues.claim("q", 1, T0)
    queues.done(claimed.id, T0)
    assert put(queues, "q", {"url": "a"}) == -1  # done still counts
    put(queues, "q", {"url": "f"})
    [failing] = queues.claim("q", 1, T0)
    assert queues.fail(failing.id, "boom", T0) is ItemStatus.FAILED
    assert put(queues, "q", {"url": "f"}) > 0  # a failed item may be sent again


def test_payloads_without_a_dedup_match_are_always_enqueued(queues: QueueStore) -> None:
    queues.add_queue(QueueDefinition(id="q", name="q", dedup_expr="$.url"), T0)
    assert put(queues, "q", {"other": 1}) > 0
    assert put(queues, "q", {"other": 1}) > 0


# -- claims, done, fail -----------------------------------------------------------------------


def test_claim_order_is_priority_then_age(queues: QueueStore) -> None:
    low = put(queues, "q", "low", priority=0)
    high_old = put(queues, "q", "high-old", priority=5)
    high_new = put(queues, "q", "high-new", priority=5)
    negative = put(queues, "q", "negative", priority=-1)
    assert [i.id for i in queues.peek("q", 10)] == [high_old, high_new, low, negative]
    claimed = queues.claim("q", 3, T0)
    assert [i.id for i in claimed] == [high_old, high_new, low]
    assert [i.payload for i in claimed] == ["high-old", "high-new", "low"]
    assert all(i.attempts == 1 and i.lease_expires_at is not None for i in claimed)
    assert [i.id for i in queues.claim("q", 3, T0)] == [negative]
    assert queues.claim("q", 3, T0) == []


def test_claim_from_an_unknown_queue_is_empty(queues: QueueStore) -> None:
    assert queues.claim("nobody", 5, T0) == []


def test_claim_sets_a_lease_of_the_queues_length(queues: QueueStore) -> None:
    queues.add_queue(QueueDefinition(id="q", name="q", lease_ms=1000), T0)
    put(queues, "q", 1)
    [item] = queues.claim("q", 1, T0)
    assert item.lease_expires_at == T0_PLUS_1S
    row = item_row(queues, item.id)
    assert (row["status"], row["claimed_at"]) == ("processing", T0)


def test_an_expired_lease_is_reclaimed_inside_the_next_claim(queues: QueueStore) -> None:
    queues.add_queue(QueueDefinition(id="q", name="q", lease_ms=1000, max_attempts=2), T0)
    item_id = put(queues, "q", {"n": 1})
    queues.claim("q", 1, T0)
    assert queues.claim("q", 1, T0_PLUS_999) == []  # still leased
    [again] = queues.claim("q", 1, T0_PLUS_1S)  # lease over: delivered again
    assert (again.id, again.attempts) == (item_id, 2)
    assert item_row(queues, item_id)["error"] == LEASE_EXPIRED_ERROR
    # Its attempts are used up now; the next expiry dead-letters it.
    assert queues.claim("q", 1, T0_PLUS_1M) == []
    row = item_row(queues, item_id)
    assert (row["status"], row["finished_at"]) == ("failed", T0_PLUS_1M)


def test_done_only_finishes_a_claimed_item(queues: QueueStore) -> None:
    item_id = put(queues, "q", 1)
    assert not queues.done(item_id, T0)  # pending, not claimed
    queues.claim("q", 1, T0)
    assert queues.done(item_id, T0_PLUS_1S) is True
    row = item_row(queues, item_id)
    assert (row["status"], row["finished_at"], row["lease_expires_at"]) == (
        "done",
        T0_PLUS_1S,
        None,
    )
    assert not queues.done(item_id, T0_PLUS_1S)
    assert not queues.done(9999, T0)


def test_fail_retries_until_max_attempts_then_dead_letters(queues: QueueStore) -> None:
    item_id = queues.enqueue("q", '{"n":1}', 0, 2, T0)
    queues.claim("q", 1, T0)
    assert queues.fail(item_id, "first", T0) is ItemStatus.PENDING
    row = item_row(queues, item_id)
    assert (row["status"], row["error"], row["finished_at"]) == ("pending", "first", None)
    queues.claim("q", 1, T0)
    assert queues.fail(item_id, "second", T0_PLUS_1S) is ItemStatus.FAILED
    row = item_row(queues, item_id)
    assert (row["status"], row["attempts"], row["finished_at"]) == ("failed", 2, T0_PLUS_1S)
    assert queues.fail(item_id, "again", T0) is None
    assert queues.fail(9999, None, T0) is None


def test_done_and_fail_can_be_fenced_to_one_claim(queues: QueueStore) -> None:
    item_id = queues.enqueue("q", "1", 0, 3, T0)
    queues.claim("q", 1, T0)
    assert not queues.done(item_id, T0, attempt=2)
    assert queues.fail(item_id, None, T0, attempt=2) is None
    assert queues.fail(item_id, None, T0, attempt=1) is ItemStatus.PENDING
    queues.claim("q", 1, T0)
    assert queues.done(item_id, T0, attempt=2)


# -- operator views ---------------------------------------------------------------------------


def test_list_with_counts_and_status(queues: QueueStore) -> None:
    queues.add_queue(QueueDefinition(id="empty", name="Empty"), T0)
    for n in range(4):
        put(queues, "work", n, at=T0 if n == 0 else T0_PLUS_1S)
    first, _second = queues.claim("work", 2, T0_PLUS_1S)
    queues.fail(first.id, "x", T0_PLUS_1S)
    rows = {row["id"]: row for row in queues.list_queues_with_counts()}
    assert (rows["work"]["pending"], rows["work"]["processing"], rows["work"]["failed"]) == (
        2,
        1,
        1,
    )
    assert (rows["empty"]["pending"], rows["empty"]["processing"]) == (0, 0)
    assert queues.queue_status("work", T0_PLUS_1M) == {
        "depth": 2,
        "claimedCount": 1,
        "failedCount": 1,
        "oldestAge": 59_000,
    }
    assert queues.queue_status("empty", T0)["oldestAge"] is None  # type: ignore[index]
    assert queues.queue_status("nobody", T0) is None


def test_oldest_age_is_never_negative_when_the_clock_stepped_back(queues: QueueStore) -> None:
    put(queues, "q", 1, at=T0_PLUS_1M)
    status = queues.queue_status("q", T0)
    assert status is not None
    assert status["oldestAge"] == 0


def test_peek_does_not_claim(queues: QueueStore) -> None:
    put(queues, "q", {"n": 1})
    assert [i.payload for i in queues.peek("q", 5)] == [{"n": 1}]
    assert [i.payload for i in queues.claim("q", 5, T0)] == [{"n": 1}]
    assert queues.peek("q", 5) == []


# -- maintenance ------------------------------------------------------------------------------


def test_expire_leases_returns_or_dead_letters_across_queues(queues: QueueStore) -> None:
    queues.add_queue(QueueDefinition(id="retry", name="r", lease_ms=1000, max_attempts=3), T0)
    queues.add_queue(QueueDefinition(id="once", name="o", lease_ms=1000), T0)
    queues.add_queue(QueueDefinition(id="long", name="l", lease_ms=3_600_000), T0)
    for queue in ("retry", "once", "long"):
        put(queues, queue, queue)
        queues.claim(queue, 1, T0)

    swept = queues.expire_leases(T0_PLUS_1M)

    assert (swept.returned, swept.dead_lettered) == (1, 1)
    assert [row["pending"] for row in queues.list_queues_with_counts()] == [0, 0, 1]
    assert queues.queue_status("once", T0_PLUS_1M)["failedCount"] == 1  # type: ignore[index]
    assert queues.queue_status("long", T0_PLUS_1M)["claimedCount"] == 1  # type: ignore[index]


def test_prune_finished_honours_each_queues_retention(queues: QueueStore) -> None:
    queues.add_queue(QueueDefinition(id="short", name="s", retention_days=1), T0)
    queues.add_queue(QueueDefinition(id="long", name="l", retention_days=30), T0)
    finished = []
    for queue in ("short", "long"):
        for n in range(5):
            put(queues, queue, n)
        done_one, failed_one, _processing, _ = queues.claim(queue, 4, T0)
        queues.done(done_one.id, T0)
        queues.fail(failed_one.id, None, T0)
        finished += [done_one.id, failed_one.id]

    # Exactly one day after they finished the short queue's items are kept; 1 ms later not.
    assert queues.prune_finished("2026-03-03T01:00:00.000Z") == 0
    assert queues.prune_finished("2026-03-03T01:00:00.001Z", batch=1) == 2
    remaining = {row["id"]: row for row in queues.list_queues_with_counts()}
    assert (remaining["short"]["pending"], remaining["short"]["processing"]) == (1, 2)
    assert remaining["short"]["failed"] == 0
    assert remaining["long"]["failed"] == 1
    assert queues.get_item(finished[0]) is None
    assert queues.get_item(finished[2]) is not None


def test_integers_take_the_whole_64_bit_range(queues: QueueStore) -> None:
    big = 2**63 - 1
    queues.add_queue(QueueDefinition(id="q", name="q", max_attempts=big), T0)
    item_id = queues.enqueue("q", "1", -(2**63), big, T0)
    top = queues.enqueue("q", "2", big, None, T0)
    [first] = queues.claim("q", 1, T0)
    assert (first.id, first.priority, first.max_attempts) == (top, big, big)
    assert queues.fail(first.id, None, T0, attempt=1) is ItemStatus.PENDING
    assert item_row(queues, item_id)["priority"] == -(2**63)
