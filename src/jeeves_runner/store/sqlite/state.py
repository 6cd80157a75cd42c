"""Script state: (namespace, key) -> text value with an optional expiry, and a collection of
items under each key.

An expired row reads as missing everywhere, before maintenance deletes it: every read
filters on `expires_at > now`, and a write to an expired key first removes the old row and
its items so nothing of the expired value comes back. Instants are `format_instant` text, so
comparing them as text compares them as times.
"""

from __future__ import annotations

from typing import Any

from jeeves_runner.state_model import ExpiredState, StateEntry
from jeeves_runner.store.sqlite.database import Database

# A row is live when it has no expiry or its expiry is still ahead of now.
_LIVE = "(expires_at IS NULL OR expires_at > ?)"

_GET = f"SELECT value FROM state WHERE namespace = ? AND key = ? AND {_LIVE}"
_GET_ENTRY = f"""
SELECT namespace, key, value, expires_at, updated_at FROM state
WHERE namespace = ? AND key = ? AND {_LIVE}
"""
_DROP_IF_EXPIRED = """
DELETE FROM state WHERE namespace = ? AND key = ? AND expires_at IS NOT NULL AND expires_at <= ?
"""
_UPSERT = """
INSERT INTO state (namespace, key, value, expires_at, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value, expires_at = excluded.expires_at, updated_at = excluded.updated_at
"""
_DELETE = "DELETE FROM state WHERE namespace = ? AND key = ? RETURNING expires_at"
_ENSURE_PARENT = """
INSERT INTO state (namespace, key, value, expires_at, updated_at) VALUES (?, ?, NULL, NULL, ?)
ON CONFLICT (namespace, key) DO NOTHING
"""

# Items are visible only while their parent key is live.
_PARENT_LIVE = """
EXISTS (SELECT 1 FROM state s WHERE s.namespace = ? AND s.key = ?
        AND (s.expires_at IS NULL OR s.expires_at > ?))
"""
_HAS_ITEM = f"""
SELECT 1 FROM state_items WHERE namespace = ? AND key = ? AND item_key = ? AND {_PARENT_LIVE}
"""
_GET_ITEM = f"""
SELECT value FROM state_items WHERE namespace = ? AND key = ? AND item_key = ? AND {_PARENT_LIVE}
"""
_UPSERT_ITEM = """
INSERT INTO state_items (namespace, key, item_key, value, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, key, item_key) DO UPDATE SET
    value = excluded.value, updated_at = excluded.updated_at
"""
_DELETE_ITEM = "DELETE FROM state_items WHERE namespace = ? AND key = ? AND item_key = ?"
_COUNT_ITEMS = (
    f"SELECT count(*) FROM state_items WHERE namespace = ? AND key = ? AND {_PARENT_LIVE}"
)
# Newest first by last write; rowid (insertion order) breaks ties within one millisecond.
_ITEM_KEYS_DESC = f"""
SELECT item_key FROM state_items WHERE namespace = ? AND key = ? AND {_PARENT_LIVE}
ORDER BY updated_at DESC, rowid DESC LIMIT ?
"""
_ITEM_KEYS_ASC = f"""
SELECT item_key FROM state_items WHERE namespace = ? AND key = ? AND {_PARENT_LIVE}
ORDER BY updated_at ASC, rowid ASC LIMIT ?
"""
# Pruning finds the newest item past the ones kept, then deletes it and everything older as
# one range of state_items_order: no sort of the collection, and only deleted rows are read.
_PRUNE_CUTOFF = """
SELECT updated_at, rowid FROM state_items WHERE namespace = ? AND key = ?
ORDER BY updated_at DESC, rowid DESC LIMIT 1 OFFSET ?
"""
_PRUNE_ITEMS = """
DELETE FROM state_items WHERE namespace = ? AND key = ? AND (updated_at, rowid) <= (?, ?)
"""
_LIST_ITEMS = f"""
SELECT item_key, value, created_at, updated_at FROM state_items
WHERE namespace = ? AND key = ? AND {_PARENT_LIVE}
ORDER BY updated_at DESC, rowid DESC LIMIT ?
"""

_NAMESPACES = f"""
SELECT namespace, count(*) AS keys FROM state WHERE {_LIVE} GROUP BY namespace ORDER BY namespace
"""
_COUNT_KEYS = f"SELECT count(*) FROM state WHERE namespace = ? AND {_LIVE}"
_LIST_KEYS = """
SELECT s.key, s.value, s.expires_at, s.updated_at,
       (SELECT count(*) FROM state_items i WHERE i.namespace = s.namespace AND i.key = s.key)
           AS item_count
FROM state s WHERE s.namespace = ? AND (s.expires_at IS NULL OR s.expires_at > ?)
ORDER BY s.key LIMIT ?
"""

# Maintenance takes expired keys in batches; the same ORDER BY in both statements of one
# transaction picks the same batch, so the item count belongs to the keys deleted with it.
_EXPIRED_BATCH = """
SELECT namespace, key FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?
ORDER BY expires_at, rowid LIMIT ?
"""
_DELETE_EXPIRED_ITEMS = f"DELETE FROM state_items WHERE (namespace, key) IN ({_EXPIRED_BATCH})"
_DELETE_EXPIRED = """
DELETE FROM state WHERE rowid IN (
    SELECT rowid FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?
    ORDER BY expires_at, rowid LIMIT ?
)
"""

_NO_LIMIT = -1  # SQLite reads a negative LIMIT as "no limit"


class SqliteStateStore:
    """Domain verbs over `state` and `state_items`. Every call takes `now` as an instant
    string (`format_instant`), so expiry is decided by the caller's clock."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- values ---------------------------------------------------------------------------

    def get(self, namespace: str, key: str, now: str) -> str | None:
        row = self._db.connection().execute(_GET, (namespace, key, now)).fetchone()
        return None if row is None else row[0]

    def get_entry(self, namespace: str, key: str, now: str) -> StateEntry | None:
        row = self._db.connection().execute(_GET_ENTRY, (namespace, key, now)).fetchone()
        if row is None:
            return None
        return StateEntry(row[0], row[1], row[2], row[3], row[4])

    def set(
        self, namespace: str, key: str, value: str | None, expires_at: str | None, now: str
    ) -> None:
        """Replace the value and its expiry (None = never expires)."""
        with self._db.transaction() as conn:
            # An expired key is gone: its old items must not reappear under the new value.
            conn.execute(_DROP_IF_EXPIRED, (namespace, key, now))
            conn.execute(_UPSERT, (namespace, key, value, expires_at, now))

    def delete(self, namespace: str, key: str, now: str) -> bool:
        """Delete the key and its items. True when a live value was there."""
        with self._db.transaction() as conn:
            row = conn.execute(_DELETE, (namespace, key)).fetchone()
        return row is not None and (row[0] is None or row[0] > now)

    # -- collections ----------------------------------------------------------------------

    def has_item(self, namespace: str, key: str, item_key: str, now: str) -> bool:
        params = (namespace, key, item_key, namespace, key, now)
        return self._db.connection().execute(_HAS_ITEM, params).fetchone() is not None

    def get_item(self, namespace: str, key: str, item_key: str, now: str) -> str | None:
        params = (namespace, key, item_key, namespace, key, now)
        row = self._db.connection().execute(_GET_ITEM, params).fetchone()
        return None if row is None else row[0]

    def set_item(
        self, namespace: str, key: str, item_key: str, value: str | None, now: str
    ) -> None:
        """Create or replace an item; creates the parent key (value NULL, no expiry) when it is
        missing or expired."""
        with self._db.transaction() as conn:
            conn.execute(_DROP_IF_EXPIRED, (namespace, key, now))
            conn.execute(_ENSURE_PARENT, (namespace, key, now))
            conn.execute(_UPSERT_ITEM, (namespace, key, item_key, value, now, now))

    def delete_item(self, namespace: str, key: str, item_key: str, now: str) -> bool:
        """True when a visible item was deleted."""
        with self._db.transaction() as conn:
            visible = conn.execute(
                _HAS_ITEM, (namespace, key, item_key, namespace, key, now)
            ).fetchone()
            conn.execute(_DELETE_ITEM, (namespace, key, item_key))
        return visible is not None

    def count_items(self, namespace: str, key: str, now: str) -> int:
        row = (
            self._db.connection()
            .execute(_COUNT_ITEMS, (namespace, key, namespace, key, now))
            .fetchone()
        )
        return int(row[0])

    def list_item_keys(
        self, namespace: str, key: str, now: str, limit: int | None, descending: bool
    ) -> list[str]:
        """Item keys by last write, newest first when `descending`."""
        sql = _ITEM_KEYS_DESC if descending else _ITEM_KEYS_ASC
        params = (namespace, key, namespace, key, now, _NO_LIMIT if limit is None else limit)
        return [row[0] for row in self._db.connection().execute(sql, params)]

    def prune_items(self, namespace: str, key: str, keep: int, now: str) -> int:
        """Keep the `keep` most recently written items, delete the rest; returns how many were
        deleted. Items under an expired key are already missing, so nothing is counted."""
        with self._db.transaction() as conn:
            live = conn.execute(_GET_ENTRY, (namespace, key, now)).fetchone()
            if live is None:
                return 0
            cutoff = conn.execute(_PRUNE_CUTOFF, (namespace, key, max(keep, 0))).fetchone()
            if cutoff is None:
                return 0
            cur = conn.execute(_PRUNE_ITEMS, (namespace, key, cutoff[0], cutoff[1]))
            return cur.rowcount

    # -- operator views -------------------------------------------------------------------

    def namespaces(self, now: str) -> list[dict[str, Any]]:
        """Namespaces that hold at least one live key, with how many."""
        rows = self._db.connection().execute(_NAMESPACES, (now,))
        return [{"namespace": row[0], "keys": int(row[1])} for row in rows]

    def count_keys(self, namespace: str, now: str) -> int:
        row = self._db.connection().execute(_COUNT_KEYS, (namespace, now)).fetchone()
        return int(row[0])

    def list_keys(self, namespace: str, now: str, limit: int) -> list[dict[str, Any]]:
        """Live keys of a namespace in key order, each with its value and item count."""
        cur = self._db.connection().execute(_LIST_KEYS, (namespace, now, limit))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def list_items(self, namespace: str, key: str, now: str, limit: int) -> list[dict[str, Any]]:
        """Items under a live key, most recently written first."""
        cur = self._db.connection().execute(
            _LIST_ITEMS, (namespace, key, namespace, key, now, limit)
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    # -- maintenance ----------------------------------------------------------------------

    def delete_expired(self, now: str, batch: int = 5000) -> ExpiredState:
        """Delete keys whose expiry has passed, with their items, in batches so a large sweep
        does not hold the write lock for long."""
        keys = items = 0
        while True:
            with self._db.transaction() as conn:
                items += conn.execute(_DELETE_EXPIRED_ITEMS, (now, batch)).rowcount
                deleted = conn.execute(_DELETE_EXPIRED, (now, batch)).rowcount
            keys += deleted
            if deleted < batch:
                return ExpiredState(keys=keys, items=items)
