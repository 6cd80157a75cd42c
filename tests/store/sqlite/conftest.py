"""SQLite-only tests: the concrete `SqliteStore` on a real file in the test's tmp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jeeves_runner.store import SqliteStore


@pytest.fixture
def store(tmp_db: Path) -> Iterator[SqliteStore]:
    """A migrated store on `tmp_db`, closed after the test."""
    opened = SqliteStore(tmp_db)
    try:
        yield opened
    finally:
        opened.close()
