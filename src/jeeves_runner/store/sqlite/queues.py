"""Work queues: definitions (`queues`) and items (`queue_items`).

A claim is one `BEGIN IMMEDIATE` transaction: SQLite lets one writer in at a time across
every process using the file, so the conditional UPDATE that moves items from `pending` to
`processing` can never hand one item to two consumers. Each claim is a lease; an item whose
lease ran out goes back to `pending` (or to `failed` once it has used its attempts). That
happens lazily inside the next claim on the queue, so delivery never waits for maintenance,
and in maintenance for queues nobody is claiming from.

Instants are `format_instant` text; comparing them as text compares them as times.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from typing import Any

from jeeves_runner.models import format_instant, parse_instant
from jeeves_runner.queue_model import (  # noqa: F401 - re-exported
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETENTION_DAYS,
    LEASE_EXPIRED_ERROR,
    DedupExpressionError,
    DedupScope,
    ItemStatus,
    LeaseSweep,
    QueueDefinition,
    QueueExistsError,
    QueueItem,
    check_dedup_expr,
    dedup_key,
)
from jeeves_runner.store.sqlite.database import Database

_DEF_COLUMNS = (
    "id, name, description, dedup_expr, dedup_scope, max_attempts, retention_days, lease_ms, "
    "created_at"
)
_INSERT_QUEUE = f"INSERT INTO queues ({_DEF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_REPLACE_QUEUE = """
UPDATE queues SET name = ?, description = ?, dedup_expr = ?, dedup_scope = ?, max_attempts = ?,
       retention_days = ?, lease_ms = ?
WHERE id = ?
"""
_INSERT_DEFAULT_QUEUE = "INSERT INTO queues (id, name, created_at) VALUES (?, ?, ?)"
_GET_QUEUE = f"SELECT {_DEF_COLUMNS} FROM queues WHERE id = ?"
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
_ENQUEUE_DEF = "SELECT dedup_expr, dedup_scope, max_attempts FROM queues WHERE id = ?"
_DUPLICATE_PENDING = """
SELECT 1 FROM queue_items
WHERE queue_id = ? AND dedup_key = ? AND status IN ('pending', 'processing') LIMIT 1
"""
_DUPLICATE_ALL = """
SELECT 1 FROM queue_items
WHERE queue_id = ? AND dedup_key = ? AND status IN ('pending', 'processing', 'done') LIMIT 1
"""
_INSERT_ITEM = """
INSERT INTO queue_items (queue_id, payload, status, priority, attempts, max_attempts, dedup_key,
                         created_at)
VALUES (?, ?, 'pending', ?, 0, ?, ?, ?)
"""
_LEASE_MS = "SELECT lease_ms FROM queues WHERE id = ?"
# Highest priority first, then oldest (ids grow with insertion) — the claim index order.
_CLAIM = """
UPDATE queue_items
SET status = 'processing', attempts = attempts + 1, claimed_at = :now, lease_expires_at = :until
WHERE id IN (
    SELECT id FROM queue_items WHERE queue_id = :queue AND status = 'pending'
    ORDER BY priority DESC, id LIMIT :count
)
RETURNING id, queue_id, payload, priority, attempts, max_attempts, created_at, lease_expires_at
"""
_EXPIRE_LEASES = """
UPDATE queue_items SET
    status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END,
    finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE :now END,
    error = :error,
    lease_expires_at = NULL
WHERE status = 'processing' AND lease_expires_at <= :now
"""
_EXPIRE_LEASES_ALL = _EXPIRE_LEASES + " RETURNING status"
_EXPIRE_LEASES_OF_QUEUE = _EXPIRE_LEASES + " AND queue_id = :queue"
# Items claimed before leases existed (schema version 1) would otherwise stay claimed forever;
# their lease starts when maintenance first sees them.
_ADOPT_UNLEASED = """
UPDATE queue_items SET lease_expires_at = :until
WHERE queue_id = :queue AND status = 'processing' AND lease_expires_at IS NULL
"""
# `:attempt` fences a finish to one claim: after a lease ran out and the item was claimed
# again, the first consumer's late done/fail must not touch the second consumer's claim.
_THIS_CLAIM = "id = :id AND status = 'processing' AND (:attempt IS NULL OR attempts = :attempt)"
_DONE = f"""
UPDATE queue_items SET status = 'done', finished_at = :now, lease_expires_at = NULL
WHERE {_THIS_CLAIM}
"""
_FAIL = f"""
UPDATE queue_items SET
    status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END,
    finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE :now END,
    error = :error,
    lease_expires_at = NULL
WHERE {_THIS_CLAIM}
RETURNING status
"""
_GET_ITEM = """
SELECT id, queue_id, payload, status, priority, attempts, max_attempts, dedup_key, error,
       created_at, claimed_at, finished_at, lease_expires_at
FROM queue_items WHERE id = ?
"""
# Walks queue_items_claim (queue_id, status, ...) for one queue's failed items.
_FAILED = """
SELECT id, payload, attempts, error, finished_at FROM queue_items
WHERE queue_id = ? AND status = 'failed' ORDER BY id DESC LIMIT ?
"""
_PEEK = """
SELECT id, queue_id, payload, priority, attempts, max_attempts, created_at, lease_expires_at
FROM queue_items WHERE queue_id = ? AND status = 'pending'
ORDER BY priority DESC, id LIMIT ?
"""
_STATUS = """
SELECT
    (SELECT count(*) FROM queue_items WHERE queue_id = :queue AND status = 'pending'),
    (SELECT count(*) FROM queue_items WHERE queue_id = :queue AND status = 'processing'),
    (SELECT count(*) FROM queue_items WHERE queue_id = :queue AND status = 'failed'),
    (SELECT min(created_at) FROM queue_items WHERE queue_id = :queue AND status = 'pending')
"""
_RETENTIONS = "SELECT id, retention_days, lease_ms FROM queues"
_PRUNE_FINISHED = """
DELETE FROM queue_items WHERE id IN (
    SELECT id FROM queue_items
    WHERE queue_id = ? AND status IN ('done', 'failed') AND finished_at < ?
    LIMIT ?
)
"""


def _definition(row: sqlite3.Row) -> QueueDefinition:
    return QueueDefinition(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        dedup_expr=row["dedup_expr"],
        dedup_scope=DedupScope(row["dedup_scope"]),
        max_attempts=row["max_attempts"],
        retention_days=row["retention_days"],
        lease_ms=row["lease_ms"],
        created_at=row["created_at"],
    )


def _item(row: sqlite3.Row) -> QueueItem:
    return QueueItem(
        id=row["id"],
        queue=row["queue_id"],
        payload=json.loads(row["payload"]),
        priority=row["priority"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        created_at=row["created_at"],
        lease_expires_at=row["lease_expires_at"],
    )


def _plus_ms(instant: str, ms: int) -> str:
    return format_instant(parse_instant(instant) + timedelta(milliseconds=ms))


def _sweep(statuses: list[str]) -> LeaseSweep:
    failed = statuses.count(ItemStatus.FAILED.value)
    return LeaseSweep(returned=len(statuses) - failed, dead_lettered=failed)


class SqliteQueueStore:
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
            if replace:
                cur = conn.execute(_REPLACE_QUEUE, (*settings, d.id))
                replaced = cur.rowcount == 1
            else:
                replaced = False
            if not replaced:
                try:
                    conn.execute(_INSERT_QUEUE, (d.id, *settings, now))
                except sqlite3.IntegrityError:
                    raise QueueExistsError(d.id) from None
        stored = self.get_queue(d.id)
        assert stored is not None
        return stored

    def get_queue(self, queue_id: str) -> QueueDefinition | None:
        row = self._db.connection().execute(_GET_QUEUE, (queue_id,)).fetchone()
        return None if row is None else _definition(row)

    def list_queues(self) -> list[QueueDefinition]:
        return [_definition(row) for row in self._db.connection().execute(_LIST_QUEUES)]

    def list_queues_with_counts(self) -> list[dict[str, Any]]:
        """Every definition with its pending, processing and failed counts."""
        cur = self._db.connection().execute(_LIST_QUEUES_WITH_COUNTS)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def pending_summary(self) -> list[tuple[str, int, str | None]]:
        """(queue id, pending items, created_at of the oldest pending item or None)."""
        return [
            (str(row[0]), int(row[1]), row[2])
            for row in self._db.connection().execute(_PENDING_SUMMARY)
        ]

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
        with self._db.transaction() as conn:
            # The dedup check and the insert share one write transaction, so two producers
            # racing with the same key cannot both get in.
            row = conn.execute(_ENQUEUE_DEF, (queue_id,)).fetchone()
            if row is None:
                conn.execute(_INSERT_DEFAULT_QUEUE, (queue_id, queue_id, now))
                expr, scope, default_attempts = None, DedupScope.PENDING, DEFAULT_MAX_ATTEMPTS
            else:
                expr, scope, default_attempts = row[0], DedupScope(row[1]), row[2]
            key = dedup_key(expr, json.loads(payload_json)) if expr else None
            if key is not None:
                duplicate = _DUPLICATE_ALL if scope is DedupScope.ALL else _DUPLICATE_PENDING
                if conn.execute(duplicate, (queue_id, key)).fetchone() is not None:
                    return -1
            attempts = default_attempts if max_attempts is None else max_attempts
            cur = conn.execute(_INSERT_ITEM, (queue_id, payload_json, priority, attempts, key, now))
            return int(cur.lastrowid or 0)

    def claim(self, queue_id: str, count: int, now: str) -> list[QueueItem]:
        """Move up to `count` pending items to `processing` under a lease and return them,
        highest priority first, then oldest. One write transaction: atomic across processes."""
        with self._db.transaction() as conn:
            conn.execute(
                _EXPIRE_LEASES_OF_QUEUE,
                {"now": now, "error": LEASE_EXPIRED_ERROR, "queue": queue_id},
            )
            lease = conn.execute(_LEASE_MS, (queue_id,)).fetchone()
            if lease is None:
                return []
            params = {
                "now": now,
                "until": _plus_ms(now, int(lease[0])),
                "queue": queue_id,
                "count": count,
            }
            rows = conn.execute(_CLAIM, params).fetchall()
        # RETURNING does not promise an order; hand items out in claim order.
        items = [_item(row) for row in rows]
        items.sort(key=lambda item: (-item.priority, item.id))
        return items

    def done(self, item_id: int, now: str, attempt: int | None = None) -> bool:
        """Mark a claimed item done. False when it is unknown or not `processing`, or, with
        `attempt`, when it is claimed under another attempt (someone else's claim now)."""
        params = {"id": item_id, "now": now, "attempt": attempt}
        with self._db.transaction() as conn:
            return conn.execute(_DONE, params).rowcount == 1

    def fail(
        self, item_id: int, error: str | None, now: str, attempt: int | None = None
    ) -> ItemStatus | None:
        """Give a claimed item back: `pending` while it has attempts left, else `failed`.
        None when it is unknown or not `processing` (under `attempt`, if given)."""
        params = {"id": item_id, "error": error, "now": now, "attempt": attempt}
        with self._db.transaction() as conn:
            row = conn.execute(_FAIL, params).fetchone()
        return None if row is None else ItemStatus(row[0])

    # -- operator views -------------------------------------------------------------------

    def get_item(self, item_id: int) -> dict[str, Any] | None:
        cur = self._db.connection().execute(_GET_ITEM, (item_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def failed_items(self, queue_id: str, limit: int) -> list[dict[str, Any]]:
        cur = self._db.connection().execute(_FAILED, (queue_id, limit))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def peek(self, queue_id: str, limit: int) -> list[QueueItem]:
        """The next pending items in claim order, without claiming them."""
        rows = self._db.connection().execute(_PEEK, (queue_id, limit))
        return [_item(row) for row in rows]

    def queue_status(self, queue_id: str, now: str) -> dict[str, Any] | None:
        """depth (pending), claimedCount (processing), failedCount, and oldestAge: how long
        the oldest pending item has waited, in ms (None when nothing is pending)."""
        conn = self._db.connection()
        if conn.execute(_GET_QUEUE, (queue_id,)).fetchone() is None:
            return None
        pending, processing, failed, oldest = conn.execute(_STATUS, {"queue": queue_id}).fetchone()
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
        batches so a large prune does not hold the write lock for long."""
        moment = parse_instant(now)
        total = 0
        retentions = self._db.connection().execute(_RETENTIONS).fetchall()
        for queue_id, retention_days, _lease in retentions:
            cutoff = format_instant(moment - timedelta(days=int(retention_days)))
            while True:
                with self._db.transaction() as conn:
                    deleted = conn.execute(_PRUNE_FINISHED, (queue_id, cutoff, batch)).rowcount
                total += deleted
                if deleted < batch:
                    break
        return total
