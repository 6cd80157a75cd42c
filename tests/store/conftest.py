"""The store contract suite: every test in `tests/store/*.py` runs once per backend, through
the `store.protocols.Store` verbs only. Tests of one backend's own machinery (SQLite's
migrations, pragmas, file bytes and modes) live in `tests/store/<backend>/`.

Adding a backend (issue 12 adds PostgreSQL) is one entry in `BACKENDS`: a function that,
given the test's tmp folder, returns a `Backend` whose `open()` gives a store on a fresh,
empty database (for PostgreSQL, e.g. a new schema or database per test, dropped at the end
through `cleanup`). Every contract test then runs against it unchanged, as `test_x[postgres]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_backends import BACKENDS, Backend

from jeeves_runner.store.protocols import Store


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = BACKENDS[request.param](tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    """A migrated, empty store of each backend, closed after the test."""
    opened = backend.open()
    try:
        yield opened
    finally:
        opened.close()
