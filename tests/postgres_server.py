"""The real PostgreSQL server the tests use: one database per test run (`jr_test_<random>`),
dropped at the end, and one fresh schema per test inside it (the store contract suite reuses
schemas, emptied between tests: see `emptied_schema`).

The server is `$JR_TEST_PG_URL` (default `postgresql://root@127.0.0.1:5432/postgres`, what
every machine of this project runs). When it cannot be reached, PostgreSQL tests skip with one
line naming what is missing, except under `CI=true`, where that fails them: CI must never
pass by skipping the second backend.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

ADMIN_URL_ENV = "JR_TEST_PG_URL"
DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/postgres"


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def with_schema(url: str, schema: str) -> str:
    """`url` whose connections create and find everything in `schema`."""
    parts = urlsplit(url)
    query = f"options={quote(f'-csearch_path={schema}')}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


class PostgresServer:
    def __init__(self) -> None:
        self.admin_url = os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL
        self._lock = threading.Lock()
        self._url: str | None = None
        self._problem: str | None = None
        self._conn: Any = None  # a psycopg connection to the test database
        self._emptied: list[str] = []  # schemas given back, emptied, for the next test
        self._migrations_seed: list[str] | None = None  # see _seeded_tables
        self.database = f"jr_test_{secrets.token_hex(4)}"

    def _unavailable(self, problem: str) -> None:
        message = f"PostgreSQL tests need a server at {self.admin_url}: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    def url(self) -> str:
        """The test run's own database (created on first use)."""
        with self._lock:
            if self._url is None and self._problem is None:
                self._create()
        if self._problem is not None:
            self._unavailable(self._problem)
        assert self._url is not None
        return self._url

    def _create(self) -> None:
        try:
            import psycopg
        except ImportError:
            self._problem = "psycopg is not installed (pip install -e '.[test]')"
            return
        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'CREATE DATABASE "{self.database}"')
        except psycopg.Error as exc:
            self._problem = " ".join(str(exc).split())
            return
        self._url = _with_database(self.admin_url, self.database)
        self._conn = psycopg.connect(self._url, autocommit=True)

    def new_schema(self) -> tuple[str, str]:
        """(schema name, URL using it) of a new, empty schema."""
        url = self.url()
        schema = f"t_{secrets.token_hex(6)}"
        with self._lock:
            self._conn.execute(f'CREATE SCHEMA "{schema}"')
        return schema, with_schema(url, schema)

    def drop_schema(self, schema: str) -> None:
        with self._lock:
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def emptied_schema(self) -> tuple[str, str]:
        """(schema name, URL) of a schema with no rows: one an earlier test gave back (already
        migrated: its tables stay, emptied, sequences restarted), else a new, empty one.

        Migrating a new schema for each test was most of the store contract suite's time on
        PostgreSQL (about 0.15 s a test, several times that on a busy machine); emptying one
        costs a few ms. What a store sees is the same: no rows, ids from 1."""
        with self._lock:
            schema = self._emptied.pop() if self._emptied else None
        if schema is None:
            return self.new_schema()
        return schema, with_schema(self.url(), schema)

    def give_back(self, schema: str) -> None:
        """Empty `schema` for the next test of `emptied_schema`; where that cannot be done
        (rows held by a connection the test left open, a server that refuses, a migration
        that puts rows in), the schema is dropped instead."""
        try:
            with self._lock:
                if self._migrations_seed is None:
                    self._migrations_seed = self._seeded_tables()
                if not self._migrations_seed and self._empty(schema):
                    self._emptied.append(schema)
                    return
        except Exception:  # any failure to empty it: a fresh schema next time
            pass
        self.drop_schema(schema)

    def _seeded_tables(self) -> list[str]:
        """Tables that the migrations themselves fill: emptying would lose those rows, so
        schemas are then not reused. Run once, on a schema of its own."""
        from jeeves_runner.store.postgres import PostgresStore

        schema = f"t_{secrets.token_hex(6)}"
        self._conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            assert self._url is not None
            PostgresStore(with_schema(self._url, schema)).close()
            seeded = []
            for table in self._tables(schema):
                query = f'SELECT EXISTS (SELECT 1 FROM "{schema}"."{table}")'
                if self._conn.execute(query).fetchone()[0]:
                    seeded.append(table)
            return seeded
        finally:
            self._conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def _tables(self, schema: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> %s",
            (schema, "schema_version"),
        ).fetchall()
        return [row[0] for row in rows]

    def _empty(self, schema: str) -> bool:
        """Delete every row of `schema` (its migrations record stays) and restart its
        sequences, in one transaction; False where that failed."""
        statements = [f'DELETE FROM "{schema}"."{t}"' for t in self._tables(schema)]
        sequences = self._conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = %s", (schema,)
        ).fetchall()
        statements += [f'ALTER SEQUENCE "{schema}"."{row[0]}" RESTART' for row in sequences]
        try:
            with self._conn.transaction():
                # Every table is emptied, so foreign keys and the runs triggers (which keep
                # jobs.last_run_id) have nothing to keep: skip them (needs a superuser, as the
                # test server's root is). A lock a leftover connection holds fails fast.
                self._conn.execute("SET LOCAL session_replication_role = replica")
                self._conn.execute("SET LOCAL lock_timeout = '2s'")
                for statement in statements:
                    self._conn.execute(statement)
        except Exception:
            return False
        return True

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """One statement on the test database, outside any store (to check what is stored)."""
        with self._lock:
            cur = self._conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def drop(self) -> None:
        """Drop the test run's database (at the end of the session)."""
        if self._url is None:
            return
        import psycopg

        self._conn.close()
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._url = None


SERVER = PostgresServer()
