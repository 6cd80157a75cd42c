"""The real runner's files are private to its user, and a token file others can read is
named in one warning line at start."""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_process import RunnerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture
def started() -> Iterator[list[RunnerProcess]]:
    runners: list[RunnerProcess] = []
    yield runners
    for runner in runners:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.stop(signal.SIGKILL)


def test_database_wal_shm_lock_and_folder_are_private_and_a_shared_token_is_named(
    folder: Path, started: list[RunnerProcess]
) -> None:
    token = folder / "slack.token"
    token.write_text("xoxb-not-real\n")
    os.chmod(token, 0o644)
    runner = RunnerProcess(
        folder,
        dbPath=str(folder / "data" / "runner.sqlite"),
        notifications={"slackTokenPath": str(token)},
    )
    started.append(runner)
    runner.start()
    db = Path(runner.db_path)
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}.lock")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert runner.stop() == 0
    warnings = [
        line
        for line in (json.loads(text) for text in runner.log().splitlines() if text.startswith("{"))
        if "can be read by other users" in line.get("event", "")
    ]
    assert warnings == [
        {
            **warnings[0],
            "event": f"token file {token} can be read by other users; run chmod 600 on it",
            "key": "notifications.slackTokenPath",
            "file": str(token),
            "level": "warning",
        }
    ]
