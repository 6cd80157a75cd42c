"""API tokens (hashes only) and the audit log."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from jeeves_runner.access_model import AuditEntry, Scope, StoredToken, TokenExistsError
from jeeves_runner.store.sqlite.database import Database

_TOKEN_COLUMNS = "name, scope, token_hash, created_at, created_by"
_INSERT_TOKEN = f"INSERT INTO api_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
_LIST_TOKENS = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
_GET_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE name = ?"
_DELETE_TOKEN = "DELETE FROM api_tokens WHERE name = ?"
_COUNT_TOKENS = "SELECT count(*) FROM api_tokens"

_INSERT_AUDIT = """
INSERT INTO audit_log (at, actor, address, action, target, before_json, after_json)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_LIST_AUDIT = """
SELECT id, at, actor, address, action, target, before_json, after_json FROM audit_log
WHERE at >= ? ORDER BY id DESC LIMIT ?
"""
_PRUNE_AUDIT = """
DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? LIMIT ?)
"""


def _token(row: sqlite3.Row) -> StoredToken:
    return StoredToken(
        name=row["name"],
        scope=Scope(row["scope"]),
        token_hash=row["token_hash"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


class SqliteTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create_token(self, token: StoredToken) -> None:
        try:
            with self._db.transaction() as conn:
                conn.execute(
                    _INSERT_TOKEN,
                    (
                        token.name,
                        token.scope.value,
                        token.token_hash,
                        token.created_at,
                        token.created_by,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "api_tokens.name" in str(exc):
                raise TokenExistsError(token.name) from None
            raise

    def list_tokens(self) -> list[StoredToken]:
        return [_token(row) for row in self._db.connection().execute(_LIST_TOKENS)]

    def get_token(self, name: str) -> StoredToken | None:
        row = self._db.connection().execute(_GET_TOKEN, (name,)).fetchone()
        return None if row is None else _token(row)

    def revoke_token(self, name: str) -> bool:
        with self._db.transaction() as conn:
            return conn.execute(_DELETE_TOKEN, (name,)).rowcount == 1

    def count_tokens(self) -> int:
        return int(self._db.connection().execute(_COUNT_TOKENS).fetchone()[0])


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


class SqliteAuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, entry: AuditEntry) -> int:
        with self._db.transaction() as conn:
            cur = conn.execute(
                _INSERT_AUDIT,
                (
                    entry.at,
                    entry.actor,
                    entry.address,
                    entry.action.value,
                    entry.target,
                    _dumps(entry.before),
                    _dumps(entry.after),
                ),
            )
            return int(cur.lastrowid or 0)

    def list_entries(self, limit: int, since: str | None = None) -> list[dict[str, Any]]:
        rows = self._db.connection().execute(_LIST_AUDIT, (since or "", limit)).fetchall()
        return [
            {
                "id": row["id"],
                "at": row["at"],
                "actor": row["actor"],
                "address": row["address"],
                "action": row["action"],
                "target": row["target"],
                "before": None if row["before_json"] is None else json.loads(row["before_json"]),
                "after": None if row["after_json"] is None else json.loads(row["after_json"]),
            }
            for row in rows
        ]

    def prune(self, before: str, batch: int = 5000) -> int:
        deleted = 0
        while True:
            with self._db.transaction() as conn:
                count = conn.execute(_PRUNE_AUDIT, (before, batch)).rowcount
            deleted += count
            if count < batch:
                return deleted
