"""SqliteStore.integrity_problem(): PRAGMA quick_check on a file damaged on purpose, answered
in one line (what `start` refuses a database with)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jeeves_runner.models import Job
from jeeves_runner.store import SqliteStore, StoreError


def make_file_with_history(path: Path) -> tuple[int, int]:
    """A closed database with 2,000 runs; returns (page size, root page of runs_job_id)."""
    store = SqliteStore(path)
    try:
        store.jobs.add_job(Job(id="a", name="a", schedule="@daily", script="/a.sh"), "t")
        with store.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO runs (job_id, status, started_at) VALUES ('a', 'running', ?)",
                [(f"2026-01-01T00:00:{i % 60:02d}.000Z",) for i in range(2000)],
            )
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs_job_id'")
        root_page = int(root.fetchone()[0])
    finally:
        store.close()  # the last connection checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists()
    return page_size, root_page


def damage(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 16)


def test_a_healthy_file_has_no_problem(tmp_db: Path) -> None:
    make_file_with_history(tmp_db)
    store = SqliteStore(tmp_db)
    try:
        assert store.integrity_problem() is None
    finally:
        store.close()


def test_a_damaged_index_page_is_one_line_naming_the_file_and_the_first_problem(
    tmp_db: Path,
) -> None:
    page_size, root_page = make_file_with_history(tmp_db)
    damage(tmp_db, (root_page - 1) * page_size)  # the index's page header
    store = SqliteStore(tmp_db)  # opens: nothing has read that page yet
    try:
        problem = store.integrity_problem()
        assert problem is not None
        assert "\n" not in problem
        assert re.fullmatch(
            rf"{re.escape(str(tmp_db))} fails its integrity check: Page {root_page}: "
            r"btreeInitPage\(\) returns error code 11 \(and \d+ more problems\)",
            problem,
        ), problem
    finally:
        store.close()


def test_a_damaged_schema_page_is_one_line_too(tmp_db: Path) -> None:
    make_file_with_history(tmp_db)
    damage(tmp_db, 100)  # the b-tree header of sqlite_master, just after the file header
    message = f"{tmp_db} is not a usable SQLite database (database disk image is malformed)"
    store = SqliteStore(tmp_db)  # the version in the header is all opening reads
    try:
        assert store.integrity_problem() == message
        with pytest.raises(StoreError) as caught:
            store.jobs.list_jobs()
        assert str(caught.value) == message
    finally:
        store.close()
