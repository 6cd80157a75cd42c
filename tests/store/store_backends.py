"""The backends the store contract suite runs against (see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jeeves_runner.store import SqliteStore
from jeeves_runner.store.protocols import Store


@dataclass
class Backend:
    """One database for one test. `open()` may be called more than once: each call is a new
    connection to the same data (what a restarted runner, or a second process, would see)."""

    name: str
    open: Callable[[], Store]
    cleanup: Callable[[], None] = field(default=lambda: None)


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "data" / "runner.sqlite"
    return Backend("sqlite", lambda: SqliteStore(path))


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": _sqlite,
    # "postgres": _postgres,  <- issue 12: one more entry here
}
