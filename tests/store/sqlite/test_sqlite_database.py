"""SQLite files: opening, pragmas on every connection, transactions, files that are not
usable databases."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest

from jeeves_runner.models import Job
from jeeves_runner.store import SqliteStore, StoreError
from jeeves_runner.store.sqlite.database import BUSY_TIMEOUT_MS


def file_fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_size


def test_every_connection_has_the_pragmas(store: SqliteStore) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int, int]:
        return (
            str(conn.execute("PRAGMA journal_mode").fetchone()[0]),
            int(conn.execute("PRAGMA foreign_keys").fetchone()[0]),
            int(conn.execute("PRAGMA busy_timeout").fetchone()[0]),
            int(conn.execute("PRAGMA synchronous").fetchone()[0]),
        )

    expected = ("wal", 1, BUSY_TIMEOUT_MS, 2)  # synchronous 2 = FULL
    assert BUSY_TIMEOUT_MS >= 1000
    assert pragmas(store.db.connection()) == expected
    # each thread opens its own connection; it must be set up the same way
    seen: list[tuple[str, int, int, int]] = []
    worker = threading.Thread(target=lambda: seen.append(pragmas(store.db.connection())))
    worker.start()
    worker.join()
    assert seen == [expected]


def test_foreign_keys_are_enforced(store: SqliteStore) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"), store.db.transaction() as conn:
        conn.execute(
            "INSERT INTO runs (job_id, status, started_at) VALUES ('no-such-job', 'ok', 'x')"
        )


def test_a_file_that_is_not_a_database_is_refused(tmp_db: Path) -> None:
    tmp_db.parent.mkdir(parents=True)
    tmp_db.write_bytes(b"this is not sqlite, just some text long enough " * 40)
    before = file_fingerprint(tmp_db)
    with pytest.raises(StoreError) as caught:
        SqliteStore(tmp_db)
    assert str(caught.value) == (
        f"{tmp_db} is not a usable SQLite database (file is not a database)"
    )
    assert file_fingerprint(tmp_db) == before


def test_a_parent_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(StoreError) as caught:
        SqliteStore(blocker / "runner.sqlite")
    assert str(caught.value).startswith(
        f"cannot create folder {blocker} for {blocker / 'runner.sqlite'}: "
    )


def test_a_failed_write_rolls_back_and_the_store_stays_usable(store: SqliteStore) -> None:
    store.jobs.add_job(Job(id="a", name="A", schedule="@daily", script="/a.sh"), "t")
    with pytest.raises(RuntimeError, match="abandon"), store.db.transaction() as conn:
        conn.execute("DELETE FROM jobs")
        raise RuntimeError("abandon")
    assert [j.id for j in store.jobs.list_jobs()] == ["a"]
    assert not store.db.connection().in_transaction


def test_an_error_sqlite_already_rolled_back_is_the_error_raised(store: SqliteStore) -> None:
    # RAISE(ROLLBACK) ends the transaction inside SQLite; the store must not then fail on
    # its own ROLLBACK and hide the real error.
    conn = store.db.connection()
    conn.execute(
        "CREATE TEMP TRIGGER refuse BEFORE DELETE ON jobs BEGIN SELECT RAISE(ROLLBACK, 'no'); END"
    )
    store.jobs.add_job(Job(id="a", name="A", schedule="@daily", script="/a.sh"), "t")
    with pytest.raises(sqlite3.IntegrityError, match=r"^no$"):
        store.jobs.delete_job("a")
    assert not conn.in_transaction
    assert store.jobs.count_jobs() == 1
