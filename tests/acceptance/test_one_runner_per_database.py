"""One runner per database with the real `start` command: a symlink to the database, or a
deleted `<db>.lock`, does not let a second runner in; a SIGKILLed runner does not block the
next one."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_process import RunnerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RunnerProcess]:
    first = tmp_path.resolve() / "first"
    first.mkdir()
    proc = RunnerProcess(first, dbPath=str(first / "data" / "runner.sqlite"))
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop(signal.SIGKILL)


def second_runner(tmp_path: Path, db_path: str) -> RunnerProcess:
    folder = tmp_path / "second"
    folder.mkdir(exist_ok=True)
    return RunnerProcess(folder, dbPath=db_path)


def refusal(runner: RunnerProcess, shown: str) -> str:
    holder = runner.proc.pid if runner.proc else 0
    return f"error: another runner (pid {holder}) is already using {shown}; stop it first"


def test_a_symlink_to_the_database_is_refused(runner: RunnerProcess, tmp_path: Path) -> None:
    runner.start()
    link = tmp_path / "link.sqlite"
    link.symlink_to(runner.db_path)
    done = second_runner(tmp_path, str(link)).cli("start")
    assert done.returncode == 1
    assert done.stderr.strip() == refusal(runner, f"{link} ({runner.db_path})")
    assert runner.healthy()


def test_deleting_the_lock_file_does_not_let_a_second_runner_in(
    runner: RunnerProcess, tmp_path: Path
) -> None:
    runner.start()
    Path(f"{runner.db_path}.lock").unlink()
    done = second_runner(tmp_path, runner.db_path).cli("start")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: another runner (pid unknown) is already using {runner.db_path}; stop it first"
    )
    assert runner.healthy()


def test_a_killed_runner_does_not_block_the_next_start(
    runner: RunnerProcess, tmp_path: Path
) -> None:
    runner.start()
    assert runner.stop(signal.SIGKILL) == -signal.SIGKILL
    again = second_runner(tmp_path, runner.db_path)
    again.start()
    try:
        assert again.healthy()
    finally:
        assert again.stop() == 0
