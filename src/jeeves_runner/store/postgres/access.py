"""API tokens (hashes only) and the audit log (PostgreSQL, migration 0003)."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from jeeves_runner.access_model import AuditEntry, Scope, StoredToken, TokenExistsError
from jeeves_runner.store.postgres.database import Database

_TOKEN_COLUMNS = "name, scope, token_hash, created_at, created_by"
_INSERT_TOKEN = f"INSERT INTO api_tokens ({_TOKEN_COLUMNS}) VALUES (%s, %s, %s, %s, %s)"
_LIST_TOKENS = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY name"
_GET_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE name = %s"
_DELETE_TOKEN = "DELETE FROM api_tokens WHERE name = %s"
_COUNT_TOKENS = "SELECT count(*) FROM api_tokens"
# The primary key's constraint: a name taken (a hash taken is another unique violation).
_NAME_TAKEN = "api_tokens_pkey"

_INSERT_AUDIT = """
INSERT INTO audit_log (at, actor, address, action, target, before_json, after_json)
VALUES (%s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""
_LIST_AUDIT = """
SELECT id, at, actor, address, action, target, before_json, after_json FROM audit_log
WHERE at >= %s ORDER BY id DESC LIMIT %s
"""
_PRUNE_AUDIT = """
DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < %s LIMIT %s)
"""


def _token(row: tuple[Any, ...]) -> StoredToken:
    return StoredToken(
        name=row[0],
        scope=Scope(row[1]),
        token_hash=row[2],
        created_at=row[3],
        created_by=row[4],
    )


class PostgresTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create_token(self, token: StoredToken) -> None:
        try:
            with self._db.connection() as conn:
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
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == _NAME_TAKEN:
                raise TokenExistsError(token.name) from None
            raise

    def list_tokens(self) -> list[StoredToken]:
        with self._db.connection() as conn:
            return [_token(row) for row in conn.execute(_LIST_TOKENS)]

    def get_token(self, name: str) -> StoredToken | None:
        with self._db.connection() as conn:
            row = conn.execute(_GET_TOKEN, (name,)).fetchone()
        return None if row is None else _token(row)

    def revoke_token(self, name: str) -> bool:
        with self._db.connection() as conn:
            return conn.execute(_DELETE_TOKEN, (name,)).rowcount == 1

    def count_tokens(self) -> int:
        with self._db.connection() as conn:
            row = conn.execute(_COUNT_TOKENS).fetchone()
        assert row is not None
        return int(row[0])


def _dumps(value: dict[str, Any] | None) -> str | None:
    # json.dumps writes NUL as \u0000, so the text never holds one.
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class PostgresAuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, entry: AuditEntry) -> int:
        """Append one entry in its own commit; returns its id."""
        with self._db.connection() as conn:
            row = conn.execute(
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
            ).fetchone()
        assert row is not None
        return int(row[0])

    def list_entries(self, limit: int, since: str | None = None) -> list[dict[str, Any]]:
        with self._db.connection() as conn:
            rows = conn.execute(_LIST_AUDIT, (since or "", limit)).fetchall()
        return [
            {
                "id": row[0],
                "at": row[1],
                "actor": row[2],
                "address": row[3],
                "action": row[4],
                "target": row[5],
                "before": _loads(row[6]),
                "after": _loads(row[7]),
            }
            for row in rows
        ]

    def prune(self, before: str, batch: int = 5000) -> int:
        """Delete entries older than `before`, in batches; returns how many."""
        deleted = 0
        while True:
            with self._db.connection() as conn:
                count = conn.execute(_PRUNE_AUDIT, (before, batch)).rowcount
            deleted += count
            if count < batch:
                return deleted
