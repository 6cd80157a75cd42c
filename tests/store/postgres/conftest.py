"""PostgreSQL-only tests: the concrete `PostgresStore` on a fresh schema of the test run's
database (see tests/postgres_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jeeves_runner.store.postgres import PostgresStore


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    """A migrated store on a fresh schema, closed after the test."""
    opened = PostgresStore(pg_url)
    try:
        yield opened
    finally:
        opened.close()
