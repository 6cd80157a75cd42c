"""Work queues (PostgreSQL): definitions (`queues`) and items (`queue_items`).

A claim locks the items it takes with `FOR UPDATE SKIP LOCKED`: consumers in any number of
processes (on any number of machines) take disjoint items without waiting for each other,
and the conditional UPDATE that moves them from `pending` to `processing` can never hand one
item to two consumers. Leases, attempts and dedup behave exactly as in the SQLite backend:
an expired lease is returned inside the next claim on its queue, and in maintenance.

Two producers racing with the same dedup key are serialized by an advisory lock on
(queue, key) taken before the duplicate check, so both cannot get in.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from jeeves_runner.models import format_instant, parse_instant
from jeeves_runner.queue_model import (
    DEFAULT_MAX_ATTEMPTS,
    LEASE_EXPIRED_ERROR,
    DedupScope,
    ItemStatus,
    LeaseSweep,
    QueueDefinition,
    QueueExistsError,
    QueueItem,
    dedup_key,
)
from jeeves_runner.store.postgres.database import Database

_DEF_COLUMNS = (
    "id, name, description, dedup_expr, dedup_scope, max_attempts, retention_days, lease_ms, "
    "created_at"
)
_INSERT_QUEUE = (
    f"INSERT INTO queues ({_DEF_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO NOTHING"
)
_REPLACE_QUEUE = """
UPDATE queues SET name = %s, description = %s, dedup_expr = %s, dedup_scope = %s,
       max_attempts = %s, retention_days = %s, lease_ms = %s
WHERE id = %s
"""
_GET_QUEUE = f"SELECT {_DEF_COLUMNS} FROM queues WHERE id = %s"
_LIST_QUEUES = f"SELECT {_DEF_COLUMNS} FROM queues ORDER BY id"
_LIST_QUEUES_WITH_COUNTS = f"""
SELECT {_DEF_COLUMNS},
    (SELECT count(*) FROM queue_items i WHERE i.queue_id = q.id AND i.status = 'pending')
        AS pending,
    (SELECT count(*) FROM queue_items i WHERE i.queue_id = q.id AND i.status = 'processing')
        AS processing,
    (SELECT count(*) FROM queue_items i WHERE i.queue_id = q.id AND i.status = 'failed')
        AS failed
FROM queues q ORDER BY q.id
"""
_PENDING_SUMMARY = """
SELECT q.id, count(i.id), min(i.created_at)
FROM queues q LEFT JOIN queue_items i ON i.queue_id = q.id AND i.status = 'pending'
GROUP BY q.id ORDER BY q.id
"""
_ENQUEUE_DEF = "SELECT dedup_expr, dedup_scope, max_attempts FROM queues WHERE id = %s"
_DEDUP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('jeeves-runner dedup ' || %s), hashtext(%s))"
_DUPLICATE_PENDING = """
SELECT 1 FROM queue_items
WHERE queue_id = %s AND dedup_key = %s AND status IN ('pending', 'processing') LIMIT 1
"""
_DUPLICATE_ALL = """
SELECT 1 FROM queue_items
WHERE queue_id = %s AND dedup_key = %s AND status IN ('pending', 'processing', 'done') LIMIT 1
"""
_INSERT_ITEM = """
INSERT INTO queue_items (queue_id, payload, status, priority, attempts, max_attempts,
                         dedup_key, created_at)
VALUES (%(queue)s, %(payload)s, 'pending', %(priority)s, 0, %(attempts)s, %(key)s, %(now)s)
RETURNING id
"""
_INSERT_ITEM_AND_QUEUE = f"""
WITH queue AS (
    INSERT INTO queues (id, name, created_at) VALUES (%(queue)s, %(queue)s, %(now)s)
    ON CONFLICT (id) DO NOTHING
)
{_INSERT_ITEM}"""
_ITEM_COLUMNS = (
    "id, queue_id, payload, priority, attempts, max_attempts, created_at, lease_expires_at"
)
# Highest priority first, then oldest (ids grow with insertion): the claim index order.
# Items another consumer has locked are skipped, never waited for.
_CLAIM = f"""
UPDATE queue_items
SET status = 'processing', attempts = attempts + 1, claimed_at = %(now)s,
    lease_expires_at = (
        -- now + the queue's lease, as `format_instant` writes it (ms, Z); evaluated once
        SELECT to_char(
            ((%(now)s::text)::timestamptz + q.lease_ms * interval '1 millisecond')
                AT TIME ZONE 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        FROM queues q WHERE q.id = %(queue)s
    )
WHERE id IN (
    SELECT id FROM queue_items WHERE queue_id = %(queue)s AND status = 'pending'
    ORDER BY priority DESC, id LIMIT %(count)s
    FOR UPDATE SKIP LOCKED
)
RETURNING {_ITEM_COLUMNS}
"""
_EXPIRED_SET = """
SET status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END,
    finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE %(now)s END,
    error = %(error)s,
    lease_expires_at = NULL
"""
_EXPIRE_LEASES_OF_QUEUE = f"""
UPDATE queue_items {_EXPIRED_SET}
WHERE id IN (
    SELECT id FROM queue_items
    WHERE queue_id = %(queue)s AND status = 'processing' AND lease_expires_at <= %(now)s
    FOR UPDATE SKIP LOCKED
)
"""
_EXPIRE_LEASES_ALL = f"""
UPDATE queue_items {_EXPIRED_SET}
WHERE id IN (
    SELECT id FROM queue_items
    WHERE status = 'processing' AND lease_expires_at <= %(now)s
    FOR UPDATE SKIP LOCKED
)
RETURNING status
"""
_ADOPT_UNLEASED = """
UPDATE queue_items SET lease_expires_at = %(until)s
WHERE queue_id = %(queue)s AND status = 'processing' AND lease_expires_at IS NULL
"""
# `attempt` fences a finish to one claim: after a lease ran out and the item was claimed
# again, the first consumer's late done/fail must not touch the second consumer's claim.
_THIS_CLAIM = (
    "id = %(id)s AND status = 'processing' "
    "AND (%(attempt)s::bigint IS NULL OR attempts = %(attempt)s::bigint)"
)
_DONE = f"""
UPDATE queue_items SET status = 'done', finished_at = %(now)s, lease_expires_at = NULL
WHERE {_THIS_CLAIM}
"""
_FAIL = f"""
UPDATE queue_items {_EXPIRED_SET}
WHERE {_THIS_CLAIM}
RETURNING status
"""
_GET_ITEM = """
SELECT id, queue_id, payload, status, priority, attempts, max_attempts, dedup_key, error,
       created_at, claimed_at, finished_at, lease_expires_at
FROM queue_items WHERE id = %s
"""
_PEEK = f"""
SELECT {_ITEM_COLUMNS} FROM queue_items WHERE queue_id = %s AND status = 'pending'
ORDER BY priority DESC, id LIMIT %s
"""
_STATUS = """
SELECT
    (SELECT count(*) FROM queue_items WHERE queue_id = %(queue)s AND status = 'pending'),
    (SELECT count(*) FROM queue_items WHERE queue_id = %(queue)s AND status = 'processing'),
    (SELECT count(*) FROM queue_items WHERE queue_id = %(queue)s AND status = 'failed'),
    (SELECT min(created_at) FROM queue_items WHERE queue_id = %(queue)s AND status = 'pending')
"""
_RETENTIONS = "SELECT id, retention_days, lease_ms FROM queues ORDER BY id"
_PRUNE_FINISHED = """
DELETE FROM queue_items WHERE id IN (
    SELECT id FROM queue_items
    WHERE queue_id = %s AND status IN ('done', 'failed') AND finished_at < %s
    LIMIT %s
)
"""


def _definition(row: tuple[Any, ...]) -> QueueDefinition:
    return QueueDefinition(
        id=row[0],
        name=row[1],
        description=row[2],
        dedup_expr=row[3],
        dedup_scope=DedupScope(row[4]),
        max_attempts=row[5],
        retention_days=row[6],
        lease_ms=row[7],
        created_at=row[8],
    )


def _item(row: tuple[Any, ...]) -> QueueItem:
    return QueueItem(
        id=row[0],
        queue=row[1],
        payload=json.loads(row[2]),
        priority=row[3],
        attempts=row[4],
        max_attempts=row[5],
        created_at=row[6],
        lease_expires_at=row[7],
    )


def _plus_ms(instant: str, ms: int) -> str:
    return format_instant(parse_instant(instant) + timedelta(milliseconds=ms))


def _sweep(statuses: list[str]) -> LeaseSweep:
    failed = statuses.count(ItemStatus.FAILED.value)
    return LeaseSweep(returned=len(statuses) - failed, dead_lettered=failed)


class PostgresQueueStore:
    """Domain verbs over `queues` and `queue_items`. `now` is always an instant string
    (`format_instant`) from the caller's clock."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- definitions ----------------------------------------------------------------------

    def add_queue(
        self, definition: QueueDefinition, now: str, *, replace: bool = False
    ) -> QueueDefinition:
        """Store a definition. An existing queue raises QueueExistsError unless `replace`,
        which changes its settings in place (items and created_at are kept)."""
        d = definition
        settings = (
            d.name,
            d.description,
            d.dedup_expr,
            d.dedup_scope.value,
            d.max_attempts,
            d.retention_days,
            d.lease_ms,
        )
        with self._db.transaction() as conn:
            replaced = replace and conn.execute(_REPLACE_QUEUE, (*settings, d.id)).rowcount == 1
            if not replaced and conn.execute(_INSERT_QUEUE, (d.id, *settings, now)).rowcount == 0:
                raise QueueExistsError(d.id)
        stored = self.get_queue(d.id)
        assert stored is not None
        return stored

    def get_queue(self, queue_id: str) -> QueueDefinition | None:
        with self._db.connection() as conn:
            row = conn.execute(_GET_QUEUE, (queue_id,)).fetchone()
        return None if row is None else _definition(row)

    def list_queues(self) -> list[QueueDefinition]:
        with self._db.connection() as conn:
            return [_definition(row) for row in conn.execute(_LIST_QUEUES)]

    def list_queues_with_counts(self) -> list[dict[str, Any]]:
        """Every definition with its pending, processing and failed counts."""
        with self._db.connection() as conn:
            cur = conn.execute(_LIST_QUEUES_WITH_COUNTS)
            assert cur.description is not None
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur]

    def pending_summary(self) -> list[tuple[str, int, str | None]]:
        """(queue id, pending items, created_at of the oldest pending item or None)."""
        with self._db.connection() as conn:
            rows = conn.execute(_PENDING_SUMMARY).fetchall()
        return [(str(row[0]), int(row[1]), row[2]) for row in rows]

    # -- producers and consumers ----------------------------------------------------------

    def enqueue(
        self,
        queue_id: str,
        payload_json: str,
        priority: int,
        max_attempts: int | None,
        now: str,
    ) -> int:
        """Add an item; returns its id, or -1 when the queue's dedup expression finds a
        duplicate in its scope. A queue without a definition gets the default one (as the
        original runner did), named after its id."""
        with self._db.connection() as conn:
            # The definition is read on its own: an enqueue racing with `add-queue --replace`
            # then behaves as if it came just before it.
            row = conn.execute(_ENQUEUE_DEF, (queue_id,)).fetchone()
            if row is None:
                expr, scope, default_attempts = None, DedupScope.PENDING, DEFAULT_MAX_ATTEMPTS
            else:
                expr, scope, default_attempts = row[0], DedupScope(row[1]), row[2]
            key = dedup_key(expr, json.loads(payload_json)) if expr else None
            attempts = default_attempts if max_attempts is None else max_attempts
            params = {
                "queue": queue_id,
                "payload": payload_json,
                "priority": priority,
                "attempts": attempts,
                "key": key,
                "now": now,
            }
            if key is None:
                # One statement, its own transaction: with the default definition when the
                # queue has none yet.
                sql = _INSERT_ITEM if row is not None else _INSERT_ITEM_AND_QUEUE
                inserted = conn.execute(sql, params).fetchone()
            else:
                with conn.transaction():
                    # Held to the commit: a second producer with this key waits here, and
                    # its duplicate check (a new statement, so a new snapshot) sees our item.
                    conn.execute(_DEDUP_LOCK, (queue_id, key))
                    duplicate = _DUPLICATE_ALL if scope is DedupScope.ALL else _DUPLICATE_PENDING
                    if conn.execute(duplicate, (queue_id, key)).fetchone() is not None:
                        return -1
                    inserted = conn.execute(_INSERT_ITEM, params).fetchone()
        assert inserted is not None
        return int(inserted[0])

    def claim(self, queue_id: str, count: int, now: str) -> list[QueueItem]:
        """Move up to `count` pending items to `processing` under a lease and return them,
        highest priority first, then oldest. Atomic across processes (SKIP LOCKED)."""
        with self._db.connection() as conn:
            # Two statements, each its own transaction (two round trips, not five): leases
            # that ran out go back first, so the claim can take them; a claim that fails
            # after that leaves them pending, which is where they belong anyway.
            conn.execute(
                _EXPIRE_LEASES_OF_QUEUE,
                {"now": now, "error": LEASE_EXPIRED_ERROR, "queue": queue_id},
            )
            params = {"now": now, "queue": queue_id, "count": count}
            rows = conn.execute(_CLAIM, params).fetchall()
        # RETURNING does not promise an order; hand items out in claim order.
        items = [_item(row) for row in rows]
        items.sort(key=lambda item: (-item.priority, item.id))
        return items

    def done(self, item_id: int, now: str, attempt: int | None = None) -> bool:
        """Mark a claimed item done. False when it is unknown or not `processing`, or, with
        `attempt`, when it is claimed under another attempt (someone else's claim now)."""
        params = {"id": item_id, "now": now, "attempt": attempt}
        with self._db.connection() as conn:
            return conn.execute(_DONE, params).rowcount == 1

    def fail(
        self, item_id: int, error: str | None, now: str, attempt: int | None = None
    ) -> ItemStatus | None:
        """Give a claimed item back: `pending` while it has attempts left, else `failed`.
        None when it is unknown or not `processing` (under `attempt`, if given)."""
        params = {"id": item_id, "error": error, "now": now, "attempt": attempt}
        with self._db.connection() as conn:
            row = conn.execute(_FAIL, params).fetchone()
        return None if row is None else ItemStatus(row[0])

    # -- operator views -------------------------------------------------------------------

    def get_item(self, item_id: int) -> dict[str, Any] | None:
        with self._db.connection() as conn:
            cur = conn.execute(_GET_ITEM, (item_id,))
            row = cur.fetchone()
            if row is None:
                return None
            assert cur.description is not None
            return dict(zip([d.name for d in cur.description], row, strict=True))

    def failed_items(self, queue_id: str, limit: int) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            cur = conn.execute(
                "SELECT id, payload, attempts, error, finished_at FROM queue_items"
                " WHERE queue_id = %s AND status = 'failed' ORDER BY id DESC LIMIT %s",
                (queue_id, limit),
            )
            assert cur.description is not None
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur]

    def peek(self, queue_id: str, limit: int) -> list[QueueItem]:
        """The next pending items in claim order, without claiming them."""
        with self._db.connection() as conn:
            return [_item(row) for row in conn.execute(_PEEK, (queue_id, limit))]

    def queue_status(self, queue_id: str, now: str) -> dict[str, Any] | None:
        """depth (pending), claimedCount (processing), failedCount, and oldestAge: how long
        the oldest pending item has waited, in ms (None when nothing is pending)."""
        with self._db.connection() as conn:
            if conn.execute(_GET_QUEUE, (queue_id,)).fetchone() is None:
                return None
            row = conn.execute(_STATUS, {"queue": queue_id}).fetchone()
        assert row is not None
        pending, processing, failed, oldest = row
        age: int | None = None
        if oldest is not None:
            waited = parse_instant(now) - parse_instant(oldest)
            # A clock stepped back can put `now` before the item; it has not waited < 0 ms.
            age = max(0, waited // timedelta(milliseconds=1))
        return {
            "depth": int(pending),
            "claimedCount": int(processing),
            "failedCount": int(failed),
            "oldestAge": age,
        }

    # -- maintenance ----------------------------------------------------------------------

    def expire_leases(self, now: str) -> LeaseSweep:
        """Return every item whose lease has run out: to `pending` while it has attempts
        left, else to `failed`. Also starts a lease on items claimed without one."""
        with self._db.transaction() as conn:
            for queue_id, _retention, lease_ms in conn.execute(_RETENTIONS).fetchall():
                conn.execute(
                    _ADOPT_UNLEASED, {"queue": queue_id, "until": _plus_ms(now, int(lease_ms))}
                )
            rows = conn.execute(
                _EXPIRE_LEASES_ALL, {"now": now, "error": LEASE_EXPIRED_ERROR}
            ).fetchall()
        return _sweep([row[0] for row in rows])

    def prune_finished(self, now: str, batch: int = 5000) -> int:
        """Delete done and failed items finished longer ago than their queue's retention, in
        batches so a large prune does not hold its locks for long."""
        moment = parse_instant(now)
        total = 0
        with self._db.connection() as conn:
            retentions = conn.execute(_RETENTIONS).fetchall()
        for queue_id, retention_days, _lease in retentions:
            cutoff = format_instant(moment - timedelta(days=int(retention_days)))
            while True:
                with self._db.connection() as conn:
                    deleted = conn.execute(_PRUNE_FINISHED, (queue_id, cutoff, batch)).rowcount
                total += deleted
                if deleted < batch:
                    break
        return total
