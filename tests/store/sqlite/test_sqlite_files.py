"""The SQLite files the store makes are private to the runner's user: the database 0600, its
-wal and -shm files (SQLite gives them the database's mode) 0600, folders it creates 0700.
A database the user made is left with the mode they gave it."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from jeeves_runner.models import Job
from jeeves_runner.store import SqliteStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000, so what is private is private because we made it so."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_database_its_wal_shm_and_folders_are_private(
    tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / "made" / "by" / "us" / "runner.sqlite"
    store = SqliteStore(db)
    try:
        store.jobs.add_job(Job(id="a", name="a", schedule="@daily", script="/a.sh"), "t")
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        for folder in (tmp_path / "made", tmp_path / "made" / "by", db.parent):
            assert mode(folder) == 0o700, folder
    finally:
        store.close()


def test_an_existing_database_keeps_its_mode(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "theirs.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    os.chmod(db, 0o640)
    os.chmod(tmp_path, 0o755)
    SqliteStore(db).close()
    assert mode(db) == 0o640
    assert mode(tmp_path) == 0o755
