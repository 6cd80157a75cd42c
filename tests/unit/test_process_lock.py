"""process_lock.py: one runner per database, whatever the spelling of its path, with real
processes holding and crashing."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jeeves_runner.models import Job
from jeeves_runner.process_lock import DatabaseInUseError, ProcessLock
from jeeves_runner.store import SqliteStore

HOLDER = """
import sys, time
from jeeves_runner.process_lock import ProcessLock
ProcessLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path.resolve() / "a" / "runner.sqlite"


@pytest.fixture
def held(db: Path) -> Iterator[ProcessLock]:
    lock = ProcessLock(str(db))
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def refusal(path: str | Path) -> str:
    with pytest.raises(DatabaseInUseError) as caught:
        ProcessLock(str(path)).acquire()
    return str(caught.value)


def test_a_second_lock_on_the_same_path_is_refused_naming_the_holder(
    db: Path, held: ProcessLock
) -> None:
    assert refusal(db) == (
        f"another runner (pid {os.getpid()}) is already using {db}; stop it first"
    )
    assert Path(f"{db}.lock").read_text() == str(os.getpid())


def test_a_symlink_to_the_database_is_refused(db: Path, tmp_path: Path, held: ProcessLock) -> None:
    link = tmp_path / "link.sqlite"
    link.symlink_to(db)
    assert refusal(link) == (
        f"another runner (pid {os.getpid()}) is already using {link} ({db}); stop it first"
    )
    # and a symlink to the folder
    folder_link = tmp_path / "b"
    folder_link.symlink_to(db.parent)
    assert "is already using" in refusal(folder_link / db.name)


def test_another_spelling_of_the_path_is_refused(db: Path, held: ProcessLock) -> None:
    spelled = db.parent / ".." / "a" / "." / db.name
    assert refusal(spelled) == (
        f"another runner (pid {os.getpid()}) is already using {spelled} ({db}); stop it first"
    )
    relative = os.path.relpath(db)
    assert refusal(relative) == (
        f"another runner (pid {os.getpid()}) is already using {relative} ({db}); stop it first"
    )


def test_deleting_the_lock_file_does_not_let_a_second_runner_in(
    db: Path, held: ProcessLock
) -> None:
    Path(f"{db}.lock").unlink()
    assert refusal(db) == f"another runner (pid unknown) is already using {db}; stop it first"
    # the refused attempt made a new pid file but did not take it over
    assert refusal(db) == f"another runner (pid unknown) is already using {db}; stop it first"


def test_released_means_free_again(db: Path) -> None:
    first = ProcessLock(str(db))
    first.acquire()
    first.release()
    second = ProcessLock(str(db))
    second.acquire()
    second.release()


def test_a_crashed_holder_does_not_block_the_next_start(db: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        assert refusal(db) == (
            f"another runner (pid {holder.pid}) is already using {db}; stop it first"
        )
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    after = ProcessLock(str(db))
    after.acquire()  # the kernel dropped the dead holder's lock
    after.release()


def test_sqlite_in_other_processes_reads_and_writes_while_the_lock_is_held(
    db: Path, held: ProcessLock
) -> None:
    # flock on the file and SQLite's POSIX locks are independent: job scripts and the CLI
    # keep working beside the runner.
    store = SqliteStore(db)
    try:
        store.jobs.add_job(Job(id="mine", name="m", schedule="@daily", script="/m.sh"), "t")
        write = (
            "import sys\n"
            "from jeeves_runner.models import Job\n"
            "from jeeves_runner.store import SqliteStore\n"
            "s = SqliteStore(sys.argv[1])\n"
            "s.jobs.add_job(Job(id='theirs', name='t', schedule='@daily', script='/t.sh'), 't')\n"
            "print(','.join(j.id for j in s.jobs.list_jobs()))\n"
            "s.close()\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", write, str(db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout == "mine,theirs\n"
        assert [j.id for j in store.jobs.list_jobs()] == ["mine", "theirs"]
        # our own writes still take SQLite's locks as usual
        store.jobs.delete_job("theirs")
        assert store.integrity_problem() is None
    finally:
        store.close()


def test_the_lock_makes_the_database_and_pid_file_private(tmp_path: Path) -> None:
    db = tmp_path.resolve() / "new" / "runner.sqlite"
    old = os.umask(0)
    try:
        lock = ProcessLock(str(db))
        lock.acquire()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(f"{db}.lock").stat().st_mode) == 0o600
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
        assert db.read_bytes() == b""  # an empty file is an empty SQLite database
    finally:
        lock.release()
