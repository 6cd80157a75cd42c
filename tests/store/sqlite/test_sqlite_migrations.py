"""SQLite schema versions: migrated forward (never backward), one transaction per upgrade."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest

import jeeves_runner.store
from jeeves_runner.store import SCHEMA_VERSION, SchemaTooNewError, SqliteStore, StoreError

MIGRATIONS_DIR = Path(jeeves_runner.store.__file__).parent / "sqlite" / "migrations"
TABLES = {"jobs", "runs", "state", "state_items", "queues", "queue_items", "notify_state"}


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def schema_of(path: Path) -> set[tuple[str, str, str]]:
    """Every table, index and column, so two files can be compared for the same schema."""
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        found = {(kind, name, "") for kind, name in objects}
        for kind, table in objects:
            if kind == "table":
                for col in conn.execute(f"PRAGMA table_info({table})"):
                    found.add(("column", table, f"{col[1]} {col[2]} {col[3]} {col[4]}"))
        return found
    finally:
        conn.close()


def make_v1_database(path: Path) -> None:
    """A file as the first schema left it: only migration 0001, user_version 1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.executescript((MIGRATIONS_DIR / "0001_initial.sql").read_text("utf-8"))
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    finally:
        conn.close()


def file_fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_size


# --- a fresh file ---------------------------------------------------------------------------


def test_migration_files_are_numbered_without_gaps() -> None:
    names = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert [int(n[:4]) for n in names] == list(range(1, len(names) + 1))
    assert len(names) == SCHEMA_VERSION
    assert SCHEMA_VERSION >= 2


def test_empty_to_current_creates_parent_folders_and_every_table(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "runner.sqlite"
    store = SqliteStore(path)
    try:
        assert path.is_file()
        assert store.db.schema_version() == SCHEMA_VERSION
        tables = {
            r[0]
            for r in store.db.connection().execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        assert tables >= TABLES
    finally:
        store.close()
    assert user_version(path) == SCHEMA_VERSION


def test_reopening_a_current_file_changes_nothing(tmp_db: Path) -> None:
    SqliteStore(tmp_db).close()
    before = schema_of(tmp_db)
    again = SqliteStore(tmp_db)
    try:
        assert again.db.schema_version() == SCHEMA_VERSION
    finally:
        again.close()
    assert schema_of(tmp_db) == before


def test_many_openers_of_one_new_file_migrate_it_once(tmp_db: Path) -> None:
    # Several processes may start on a fresh file at once; the exclusive migration
    # transaction re-reads the version, so nobody applies a migration twice.
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_it() -> None:
        try:
            barrier.wait()
            SqliteStore(tmp_db).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert user_version(tmp_db) == SCHEMA_VERSION


# --- an older file --------------------------------------------------------------------------


def test_older_schema_is_migrated_with_its_data_kept(tmp_db: Path) -> None:
    make_v1_database(tmp_db)
    conn = sqlite3.connect(tmp_db)
    jobs = [
        ("busy", "Busy", "* * * * *", "/s/busy.sh", "script", "desc", 1, 5000, "queue", "C1", None),
        ("skippy", "Skippy", "@daily", "Say hi", "session", None, 0, None, "skip", None, "C2"),
        ("idle", "Idle", "0 3 * * *", "/s/idle.sh", "script", None, 1, None, "allow", None, None),
    ]
    conn.executemany(
        "INSERT INTO jobs (id, name, schedule, script, type, description, enabled, timeout_ms,"
        " overlap_policy, on_failure, on_success, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2025-01-01T00:00:00.000Z',"
        " '2025-01-02T00:00:00.000Z')",
        jobs,
    )
    runs = [
        # id, job, status, started, finished
        (1, "busy", "ok", "2025-01-01T00:01:00.000Z", "2025-01-01T00:01:01.000Z"),
        (2, "skippy", "skipped", "2025-01-01T00:01:30.000Z", "2025-01-01T00:01:30.000Z"),
        (3, "busy", "error", "2025-01-01T00:02:00.000Z", "2025-01-01T00:02:05.000Z"),
        (4, "busy", "skipped", "2025-01-01T00:02:01.000Z", "2025-01-01T00:02:01.000Z"),
        (5, "skippy", "ok", "2025-01-01T00:03:00.000Z", "2025-01-01T00:03:09.000Z"),
        (6, "skippy", "skipped", "2025-01-01T00:03:05.000Z", "2025-01-01T00:03:05.000Z"),
    ]
    conn.executemany(
        "INSERT INTO runs (id, job_id, status, started_at, finished_at, stdout)"
        " VALUES (?, ?, ?, ?, ?, 'out')",
        runs,
    )
    conn.execute(
        "INSERT INTO state (namespace, key, value, updated_at) VALUES ('ns', 'k', '\"v\"', 't')"
    )
    conn.execute(
        "INSERT INTO queues (id, name, created_at) VALUES ('q', 'Queue', '2025-01-01T00:00:00Z')"
    )
    conn.execute(
        "INSERT INTO queue_items (queue_id, payload, created_at) VALUES ('q', '{\"a\":1}', 't')"
    )
    conn.commit()
    conn.close()
    assert user_version(tmp_db) == 1

    store = SqliteStore(tmp_db)
    try:
        assert store.db.schema_version() == SCHEMA_VERSION
        db = store.db.connection()
        # jobs and runs kept, field by field
        stored_jobs = db.execute(
            "SELECT id, name, schedule, script, type, description, enabled, timeout_ms,"
            " overlap_policy, on_failure, on_success FROM jobs ORDER BY id"
        ).fetchall()
        assert [tuple(r) for r in stored_jobs] == sorted(jobs)
        stored_runs = db.execute(
            "SELECT id, job_id, status, started_at, finished_at FROM runs ORDER BY id"
        ).fetchall()
        assert [tuple(r) for r in stored_runs] == runs
        assert db.execute("SELECT value FROM state").fetchone()[0] == '"v"'
        assert db.execute("SELECT payload FROM queue_items").fetchone()[0] == '{"a":1}'
        # last_run_id backfilled to the latest run that executed, skips ignored
        last = dict(db.execute("SELECT id, last_run_id FROM jobs").fetchall())
        assert last == {"busy": 3, "skippy": 5, "idle": None}
        # and the store reads it through the new column
        shown = {j["id"]: j["last_status"] for j in store.jobs.list_jobs_with_last_run()}
        assert shown == {"busy": "error", "skippy": "ok", "idle": None}
        # the new columns exist with their defaults
        assert db.execute("SELECT lease_ms FROM queues").fetchone()[0] == 300_000
        assert db.execute("SELECT count(*) FROM runs WHERE skipped_count IS NULL").fetchone()[
            0
        ] == len(runs)
        # new rows keep counting after the old ids
        assert store.jobs.get_job("busy") is not None
    finally:
        store.close()


def test_an_upgraded_file_has_the_same_schema_as_a_new_one(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    new = tmp_path / "new.sqlite"
    make_v1_database(old)
    SqliteStore(old).close()
    SqliteStore(new).close()
    assert schema_of(old) == schema_of(new)


def test_a_failed_migration_leaves_the_file_at_its_version(tmp_db: Path) -> None:
    make_v1_database(tmp_db)
    conn = sqlite3.connect(tmp_db)
    # Something migration 2 will trip over: the column it adds is already there.
    conn.execute("ALTER TABLE jobs ADD COLUMN last_run_id INTEGER")
    conn.execute(
        "INSERT INTO jobs (id, name, schedule, script, created_at, updated_at)"
        " VALUES ('a', 'A', '@daily', '/a.sh', 't', 't')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as caught:
        SqliteStore(tmp_db)
    message = str(caught.value)
    assert message.startswith(f"cannot migrate {tmp_db} from schema version 1 to {SCHEMA_VERSION}")
    assert "duplicate column name: last_run_id" in message
    assert message.endswith("it stays at version 1")
    assert user_version(tmp_db) == 1
    # nothing of the half-applied migration is left
    conn = sqlite3.connect(tmp_db)
    try:
        run_columns = {c[1] for c in conn.execute("PRAGMA table_info(runs)")}
        assert "skipped_count" not in run_columns
        assert conn.execute("SELECT id FROM jobs").fetchall() == [("a",)]
    finally:
        conn.close()


# --- a newer file ---------------------------------------------------------------------------


def test_newer_schema_is_refused_and_the_file_left_byte_for_byte(tmp_db: Path) -> None:
    newer = SCHEMA_VERSION + 7
    tmp_db.parent.mkdir(parents=True)
    conn = sqlite3.connect(tmp_db)
    conn.execute("CREATE TABLE future (x TEXT)")
    conn.execute("INSERT INTO future VALUES ('from a newer runner')")
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.commit()
    conn.close()
    before = file_fingerprint(tmp_db)
    siblings = sorted(p.name for p in tmp_db.parent.iterdir())

    with pytest.raises(SchemaTooNewError) as caught:
        SqliteStore(tmp_db)

    assert str(caught.value) == (
        f"{tmp_db} has schema version {newer}, newer than this program supports "
        f"({SCHEMA_VERSION}); upgrade jeeves-runner to use it"
    )
    assert isinstance(caught.value, StoreError)
    assert file_fingerprint(tmp_db) == before
    # no -wal / -shm / -journal files: the file was not even switched to WAL
    assert sorted(p.name for p in tmp_db.parent.iterdir()) == siblings
    assert user_version(tmp_db) == newer


def make_database_at(path: Path, version: int) -> None:
    """A file as schema `version` left it: migrations 1..version, nothing after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        for migration in sorted(MIGRATIONS_DIR.glob("*.sql"))[:version]:
            conn.executescript(migration.read_text("utf-8"))
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()


def test_version_4_fills_finished_at_and_the_last_run_pointer(tmp_db: Path) -> None:
    make_database_at(tmp_db, 3)
    conn = sqlite3.connect(tmp_db)
    conn.execute(
        "INSERT INTO jobs (id, name, schedule, script, created_at, updated_at)"
        " VALUES ('a', 'A', '@daily', '/a.sh', 't', 't'), ('b', 'B', '@daily', '/b.sh', 't', 't')"
    )
    conn.executemany(
        "INSERT INTO runs (id, job_id, status, started_at, finished_at) VALUES (?, ?, ?, ?, ?)",
        [
            (1, "a", "ok", "2025-01-01T00:00:00.000Z", None),  # finished, no finished_at
            (2, "a", "skipped", None, None),
            (3, "a", "running", "2025-01-02T00:00:00.000Z", None),  # still open: left alone
            (4, "b", "pending", "2025-01-03T00:00:00.000Z", None),
        ],
    )
    conn.commit()  # written without any pointer, as another process might have
    conn.close()
    store = SqliteStore(tmp_db)
    try:
        db = store.db.connection()
        finished = dict(db.execute("SELECT id, finished_at FROM runs").fetchall())
        assert finished == {
            1: "2025-01-01T00:00:00.000Z",
            2: "1970-01-01T00:00:00.000Z",
            3: None,
            4: None,
        }
        assert dict(db.execute("SELECT id, last_run_id FROM jobs").fetchall()) == {
            "a": 3,
            "b": None,
        }
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "runs_started_at" not in indexes
        assert "state_items_order" in indexes
    finally:
        store.close()
