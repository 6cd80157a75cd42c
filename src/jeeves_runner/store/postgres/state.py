"""Script state (PostgreSQL): (namespace, key) -> text value with an optional expiry, and a
collection of items under each key. Same rules as the SQLite backend: an expired row reads
as missing everywhere, and a write to an expired key first removes it and its items."""

from __future__ import annotations

from typing import Any

import psycopg

from jeeves_runner.state_model import ExpiredState, StateEntry
from jeeves_runner.store.postgres.database import Database

_LIVE = "(expires_at IS NULL OR expires_at > %(now)s)"

_GET = f"SELECT value FROM state WHERE namespace = %(ns)s AND key = %(key)s AND {_LIVE}"
_GET_ENTRY = f"""
SELECT namespace, key, value, expires_at, updated_at FROM state
WHERE namespace = %(ns)s AND key = %(key)s AND {_LIVE}
"""
# FOR UPDATE: a prune holds the key while it decides what to delete.
_LOCK_LIVE_KEY = _GET_ENTRY + " FOR UPDATE"
_DROP_IF_EXPIRED = """
DELETE FROM state WHERE namespace = %(ns)s AND key = %(key)s
  AND expires_at IS NOT NULL AND expires_at <= %(now)s
"""
_UPSERT = """
INSERT INTO state (namespace, key, value, expires_at, updated_at)
VALUES (%(ns)s, %(key)s, %(value)s, %(expires)s, %(now)s)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value, expires_at = excluded.expires_at, updated_at = excluded.updated_at
"""
_DELETE = "DELETE FROM state WHERE namespace = %(ns)s AND key = %(key)s RETURNING expires_at"
_ENSURE_PARENT = """
INSERT INTO state (namespace, key, value, expires_at, updated_at)
VALUES (%(ns)s, %(key)s, NULL, NULL, %(now)s)
ON CONFLICT (namespace, key) DO NOTHING
"""

# Items are visible only while their parent key is live.
_PARENT_LIVE = """
EXISTS (SELECT 1 FROM state s WHERE s.namespace = %(ns)s AND s.key = %(key)s
        AND (s.expires_at IS NULL OR s.expires_at > %(now)s))
"""
_ITEM = "namespace = %(ns)s AND key = %(key)s"
_HAS_ITEM = f"SELECT 1 FROM state_items WHERE {_ITEM} AND item_key = %(item)s AND {_PARENT_LIVE}"
_GET_ITEM = (
    f"SELECT value FROM state_items WHERE {_ITEM} AND item_key = %(item)s AND {_PARENT_LIVE}"
)
_UPSERT_ITEM = """
INSERT INTO state_items (namespace, key, item_key, value, created_at, updated_at)
VALUES (%(ns)s, %(key)s, %(item)s, %(value)s, %(now)s, %(now)s)
ON CONFLICT (namespace, key, item_key) DO UPDATE SET
    value = excluded.value, updated_at = excluded.updated_at
"""
_DELETE_ITEM = f"""
DELETE FROM state_items WHERE {_ITEM} AND item_key = %(item)s RETURNING {_PARENT_LIVE}
"""
_COUNT_ITEMS = f"SELECT count(*) FROM state_items WHERE {_ITEM} AND {_PARENT_LIVE}"
# Newest first by last write; insertion order (seq) breaks ties within one millisecond.
_ITEM_KEYS_DESC = f"""
SELECT item_key FROM state_items WHERE {_ITEM} AND {_PARENT_LIVE}
ORDER BY updated_at DESC, seq DESC LIMIT %(limit)s
"""
_ITEM_KEYS_ASC = f"""
SELECT item_key FROM state_items WHERE {_ITEM} AND {_PARENT_LIVE}
ORDER BY updated_at ASC, seq ASC LIMIT %(limit)s
"""
_PRUNE_CUTOFF = f"""
SELECT updated_at, seq FROM state_items WHERE {_ITEM}
ORDER BY updated_at DESC, seq DESC LIMIT 1 OFFSET %(keep)s
"""
_PRUNE_ITEMS = f"""
DELETE FROM state_items WHERE {_ITEM} AND (updated_at, seq) <= (%(updated)s, %(seq)s)
"""
_LIST_ITEMS = f"""
SELECT item_key, value, created_at, updated_at FROM state_items
WHERE {_ITEM} AND {_PARENT_LIVE}
ORDER BY updated_at DESC, seq DESC LIMIT %(limit)s
"""
_NAMESPACES = f"""
SELECT namespace, count(*) AS keys FROM state WHERE {_LIVE}
GROUP BY namespace ORDER BY namespace
"""
_COUNT_KEYS = f"SELECT count(*) FROM state WHERE namespace = %(ns)s AND {_LIVE}"
_LIST_KEYS = """
SELECT s.key, s.value, s.expires_at, s.updated_at,
       (SELECT count(*) FROM state_items i WHERE i.namespace = s.namespace AND i.key = s.key)
           AS item_count
FROM state s WHERE s.namespace = %(ns)s AND (s.expires_at IS NULL OR s.expires_at > %(now)s)
ORDER BY s.key LIMIT %(limit)s
"""
# One batch of expired keys, and their items, in one statement: both deletes take the keys
# the first CTE picked (and locked), so the item count belongs to the keys deleted with it.
_DELETE_EXPIRED = """
WITH batch AS (
    SELECT namespace, key FROM state
    WHERE expires_at IS NOT NULL AND expires_at <= %(now)s
    ORDER BY expires_at, namespace, key LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), items AS (
    DELETE FROM state_items i USING batch b WHERE i.namespace = b.namespace AND i.key = b.key
    RETURNING 1
), keys AS (
    DELETE FROM state s USING batch b WHERE s.namespace = b.namespace AND s.key = b.key
    RETURNING 1
)
SELECT (SELECT count(*) FROM keys), (SELECT count(*) FROM items)
"""


def _dicts(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    assert cur.description is not None
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


class PostgresStateStore:
    """Domain verbs over `state` and `state_items`. Every call takes `now` as an instant
    string (`format_instant`), so expiry is decided by the caller's clock."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- values ---------------------------------------------------------------------------

    def get(self, namespace: str, key: str, now: str) -> str | None:
        with self._db.connection() as conn:
            row = conn.execute(_GET, {"ns": namespace, "key": key, "now": now}).fetchone()
        return None if row is None else row[0]

    def get_entry(self, namespace: str, key: str, now: str) -> StateEntry | None:
        with self._db.connection() as conn:
            row = conn.execute(_GET_ENTRY, {"ns": namespace, "key": key, "now": now}).fetchone()
        if row is None:
            return None
        return StateEntry(row[0], row[1], row[2], row[3], row[4])

    def set(
        self, namespace: str, key: str, value: str | None, expires_at: str | None, now: str
    ) -> None:
        """Replace the value and its expiry (None = never expires)."""
        params = {"ns": namespace, "key": key, "value": value, "expires": expires_at, "now": now}
        with self._db.transaction() as conn:
            # An expired key is gone: its old items must not reappear under the new value.
            conn.execute(_DROP_IF_EXPIRED, params)
            conn.execute(_UPSERT, params)

    def delete(self, namespace: str, key: str, now: str) -> bool:
        """Delete the key and its items. True when a live value was there."""
        with self._db.connection() as conn:
            row = conn.execute(_DELETE, {"ns": namespace, "key": key}).fetchone()
        return row is not None and (row[0] is None or row[0] > now)

    # -- collections ----------------------------------------------------------------------

    def has_item(self, namespace: str, key: str, item_key: str, now: str) -> bool:
        params = {"ns": namespace, "key": key, "item": item_key, "now": now}
        with self._db.connection() as conn:
            return conn.execute(_HAS_ITEM, params).fetchone() is not None

    def get_item(self, namespace: str, key: str, item_key: str, now: str) -> str | None:
        params = {"ns": namespace, "key": key, "item": item_key, "now": now}
        with self._db.connection() as conn:
            row = conn.execute(_GET_ITEM, params).fetchone()
        return None if row is None else row[0]

    def set_item(
        self, namespace: str, key: str, item_key: str, value: str | None, now: str
    ) -> None:
        """Create or replace an item; creates the parent key (value NULL, no expiry) when it is
        missing or expired."""
        params = {"ns": namespace, "key": key, "item": item_key, "value": value, "now": now}
        with self._db.transaction() as conn:
            conn.execute(_DROP_IF_EXPIRED, params)
            conn.execute(_ENSURE_PARENT, params)
            conn.execute(_UPSERT_ITEM, params)

    def delete_item(self, namespace: str, key: str, item_key: str, now: str) -> bool:
        """True when a visible item was deleted."""
        params = {"ns": namespace, "key": key, "item": item_key, "now": now}
        with self._db.connection() as conn:
            row = conn.execute(_DELETE_ITEM, params).fetchone()
        return row is not None and bool(row[0])

    def count_items(self, namespace: str, key: str, now: str) -> int:
        with self._db.connection() as conn:
            row = conn.execute(_COUNT_ITEMS, {"ns": namespace, "key": key, "now": now}).fetchone()
        assert row is not None
        return int(row[0])

    def list_item_keys(
        self, namespace: str, key: str, now: str, limit: int | None, descending: bool
    ) -> list[str]:
        """Item keys by last write, newest first when `descending`."""
        sql = _ITEM_KEYS_DESC if descending else _ITEM_KEYS_ASC
        params = {"ns": namespace, "key": key, "now": now, "limit": limit}  # NULL: no limit
        with self._db.connection() as conn:
            return [row[0] for row in conn.execute(sql, params)]

    def prune_items(self, namespace: str, key: str, keep: int, now: str) -> int:
        """Keep the `keep` most recently written items, delete the rest; returns how many were
        deleted. Items under an expired key are already missing, so nothing is counted."""
        params: dict[str, Any] = {"ns": namespace, "key": key, "now": now, "keep": max(keep, 0)}
        with self._db.transaction() as conn:
            if conn.execute(_LOCK_LIVE_KEY, params).fetchone() is None:
                return 0
            cutoff = conn.execute(_PRUNE_CUTOFF, params).fetchone()
            if cutoff is None:
                return 0
            params.update(updated=cutoff[0], seq=cutoff[1])
            return conn.execute(_PRUNE_ITEMS, params).rowcount

    # -- operator views -------------------------------------------------------------------

    def namespaces(self, now: str) -> list[dict[str, Any]]:
        """Namespaces that hold at least one live key, with how many."""
        with self._db.connection() as conn:
            rows = conn.execute(_NAMESPACES, {"now": now}).fetchall()
        return [{"namespace": row[0], "keys": int(row[1])} for row in rows]

    def count_keys(self, namespace: str, now: str) -> int:
        with self._db.connection() as conn:
            row = conn.execute(_COUNT_KEYS, {"ns": namespace, "now": now}).fetchone()
        assert row is not None
        return int(row[0])

    def list_keys(self, namespace: str, now: str, limit: int) -> list[dict[str, Any]]:
        """Live keys of a namespace in key order, each with its value and item count."""
        params = {"ns": namespace, "now": now, "limit": limit}
        with self._db.connection() as conn:
            return _dicts(conn.execute(_LIST_KEYS, params))

    def list_items(self, namespace: str, key: str, now: str, limit: int) -> list[dict[str, Any]]:
        """Items under a live key, most recently written first."""
        params = {"ns": namespace, "key": key, "now": now, "limit": limit}
        with self._db.connection() as conn:
            return _dicts(conn.execute(_LIST_ITEMS, params))

    # -- maintenance ----------------------------------------------------------------------

    def delete_expired(self, now: str, batch: int = 5000) -> ExpiredState:
        """Delete keys whose expiry has passed, with their items, in batches so a large sweep
        does not hold its locks for long."""
        keys = items = 0
        while True:
            with self._db.connection() as conn:
                row = conn.execute(_DELETE_EXPIRED, {"now": now, "batch": batch}).fetchone()
            assert row is not None
            keys += int(row[0])
            items += int(row[1])
            if int(row[0]) < batch:
                return ExpiredState(keys=keys, items=items)
