"""The real PostgreSQL server the tests use: one database per test run (`jr_test_<random>`),
dropped at the end, and one fresh schema per test inside it.

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
