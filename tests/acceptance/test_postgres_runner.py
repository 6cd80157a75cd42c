"""The real runner on PostgreSQL (`dbUrl`): jobs run and their scripts reach the database
through JR_DB_URL (the Python client and the CLI verbs), a second runner on the same schema is
refused (and one that lost its lock to another stops), and a bad or unreachable server is one
line, never a traceback."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from runner_process import RunnerProcess, wait_for

from jeeves_runner.store.postgres import PostgresStore
from postgres_server import SERVER

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOW = "2026-03-02T01:00:00.000Z"


@pytest.fixture
def runner(tmp_path: Path, pg_url: str) -> Iterator[RunnerProcess]:
    folder = tmp_path / "first"
    folder.mkdir()
    proc = RunnerProcess(folder, dbUrl=pg_url)
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop(signal.SIGKILL)


def test_jobs_run_and_their_scripts_reach_postgres_through_jr_db_url(
    runner: RunnerProcess, pg_url: str
) -> None:
    runner.add_job("hello", "0 0 1 1 *", str(EXAMPLES / "hello.py"))
    runner.add_job("shell", "0 0 1 1 *", str(EXAMPLES / "shell-state.sh"))
    runner.start()
    with httpx.Client(base_url=runner.url, timeout=60) as http:
        for job_id in ("hello", "shell"):
            result = http.post(f"/jobs/{job_id}/run").json()["result"]
            assert result["status"] == "ok", result
        listed = {j["id"]: j for j in http.get("/jobs").json()["jobs"]}
    assert listed["hello"]["last_status"] == "ok"
    store = PostgresStore(pg_url, pool_size=1)
    try:
        assert store.state.get("hello", "runs", NOW) == "1"  # the Python client
        assert store.state.get("shell-example", "last-run", NOW) is not None  # the CLI
        assert store.queues.queue_status("host-checks", NOW)["depth"] == 2  # type: ignore[index]
        assert [r["status"] for r in store.runs.list_runs("hello", 10)] == ["ok"]
    finally:
        store.close()
    assert runner.stop() == 0


def test_a_second_runner_on_the_same_schema_is_refused_until_the_first_dies(
    runner: RunnerProcess, tmp_path: Path, pg_url: str
) -> None:
    runner.start()
    folder = tmp_path / "second"
    folder.mkdir()
    second = RunnerProcess(folder, dbUrl=pg_url)
    done = second.cli("start")
    assert done.returncode == 1
    assert runner.proc is not None
    assert done.stderr.strip().startswith("error: another runner (jeeves-runner ")
    assert done.stderr.strip().endswith(
        f" pid {runner.proc.pid} at 127.0.0.1) is already using {pg_url}; stop it first"
    )
    assert runner.healthy()
    # The lock is the first runner's session: killed with -9, it ends with the process.
    runner.stop(signal.SIGKILL)
    second.start()
    try:
        wait_for(second.healthy, 30, "the second runner")
    finally:
        assert second.stop() == 0


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    proc = RunnerProcess(tmp_path, dbUrl="postgresql://root:hunter2@127.0.0.1:1/jr")
    done = proc.cli("start")
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line and "hunter2" not in line
    assert line.startswith(
        "error: cannot connect to PostgreSQL at postgresql://root:***@127.0.0.1:1/jr"
    )


def test_a_bad_db_url_is_a_config_error(tmp_path: Path) -> None:
    proc = RunnerProcess(tmp_path, dbUrl="mysql://root@127.0.0.1/jr")
    done = proc.cli("start")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: {proc.config_path}: dbUrl: must start with postgresql:// "
        '(e.g. postgresql://user@host:5432/database), got "mysql://root@127.0.0.1/jr"'
    )


_LOCK_SESSIONS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND application_name LIKE 'jeeves-runner % pid %'
"""
_TAKE_LOCK = (
    "SELECT pg_advisory_lock(19026, hashtext(current_database() || '.' || current_schema()))"
)


def lock_holders() -> int:
    return len(lock_holder_sessions())


def lock_holder_sessions() -> set[int]:
    """The backend pids of the sessions holding a runner's lock."""
    rows = SERVER.execute(
        "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
        "AND a.application_name LIKE 'jeeves-runner % pid %'"
    )
    return {int(row[0]) for row in rows}


def test_a_runner_whose_lock_session_ends_takes_the_lock_again(
    runner: RunnerProcess, tmp_path: Path, pg_url: str
) -> None:
    runner.start()
    (before,) = lock_holder_sessions()
    SERVER.execute(_LOCK_SESSIONS)  # a server restart, an administrator
    # A new session holds it: the ended one may still be listed for a moment after its end.
    wait_for(
        lambda: len(now := lock_holder_sessions()) == 1 and before not in now,
        30,
        "the runner to take its lock again",
    )
    assert runner.healthy()
    folder = tmp_path / "second"
    folder.mkdir()
    refused = RunnerProcess(folder, dbUrl=pg_url).cli("start")
    assert refused.returncode == 1
    assert "is already using" in refused.stderr
    assert runner.stop() == 0


def test_a_runner_that_lost_its_lock_to_another_stops_with_exit_1(
    runner: RunnerProcess, pg_url: str
) -> None:
    runner.start()
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute(_LOCK_SESSIONS)
        other.execute(_TAKE_LOCK)  # waits for the ended session, then holds the lock
        assert runner.proc is not None
        assert runner.proc.wait(30) == 1
    assert "another runner took over the database" in runner.log()


def test_runs_are_recorded_after_the_server_ended_every_pool_connection(
    runner: RunnerProcess,
) -> None:
    runner.add_job("hello", "0 0 1 1 *", str(EXAMPLES / "hello.py"))
    runner.start()
    with httpx.Client(base_url=runner.url, timeout=60) as http:
        assert http.post("/jobs/hello/run").json()["result"]["status"] == "ok"
        # Every pooled connection of the runner goes (not its lock's session).
        SERVER.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'jeeves-runner'"
        )
        for _ in range(2):
            result = http.post("/jobs/hello/run").json()["result"]
            assert result["status"] == "ok", result
        runs = http.get("/jobs/hello/runs").json()["runs"]
        assert [r["status"] for r in runs] == ["ok", "ok", "ok"]
        assert http.get("/health").status_code == 200
    assert runner.stop() == 0
