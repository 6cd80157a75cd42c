"""Fixtures shared by every test tier: a temp database path, an open store, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

from jeeves_runner.store import SqliteStore
from postgres_server import SERVER

CLI_TIMEOUT_S = 60


class CliResult(NamedTuple):
    code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


def _run_cli(
    *args: str,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> CliResult:
    """`python -m jeeves_runner ARGS` as a real child process; `env` is added to ours."""
    child_env = dict(os.environ)
    child_env["PYTHONIOENCODING"] = "utf-8"
    if env:
        child_env.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "jeeves_runner", *args],
        cwd=cwd,
        env=child_env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def run_cli() -> RunCli:
    """`run_cli("list-jobs", "-c", path, cwd=tmp_path)` -> (code, stdout, stderr)."""
    return _run_cli


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    """A database path in a folder that does not exist yet (the store must create it)."""
    return tmp_path / "data" / "runner.sqlite"


@pytest.fixture
def store(tmp_db: Path) -> Iterator[SqliteStore]:
    """A migrated store on `tmp_db`, closed after the test."""
    opened = SqliteStore(tmp_db)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_test_database() -> Iterator[None]:
    """The PostgreSQL test database (made by the first test that needs it) goes at the end."""
    yield
    SERVER.drop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL of a fresh, empty PostgreSQL schema (dropped after the test); skips, or under
    CI=true fails, when there is no server (see postgres_server.py)."""
    schema, url = SERVER.new_schema()
    try:
        yield url
    finally:
        SERVER.drop_schema(schema)
