"""The state and queue commands of the real CLI, each a child process: one line of JSON on
stdout, or one `error:` line and a non-zero exit. Also the shell example job that uses them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.client import RunnerClient
from jeeves_runner.store import SqliteStore

# `run_cli` (tests/conftest.py) runs `python -m jeeves_runner ARGS` and returns a CliResult
# named tuple: (code, stdout, stderr).
RunCli = Callable[..., Any]
CliResult = Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shell-state.sh"


def ok_json(result: CliResult) -> Any:
    assert (result.code, result.stderr) == (0, ""), result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def assert_error(result: CliResult, message: str, code: int = 1) -> None:
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {message}"], result.stderr
    assert (result.code, result.stdout) == (code, "")


@pytest.fixture
def jr_env(tmp_db: Path) -> dict[str, str]:
    """JR_DB_PATH naming a database that exists (the data verbs refuse a missing file)."""
    SqliteStore(tmp_db).close()
    return {"JR_DB_PATH": str(tmp_db)}


def test_state_set_get_delete(run_cli: RunCli, jr_env: dict[str, str], tmp_db: Path) -> None:
    assert ok_json(run_cli("state", "get", "ns", "k", env=jr_env)) == {
        "namespace": "ns",
        "key": "k",
        "value": None,
        "expires_at": None,
    }
    assert run_cli("state", "get", "ns", "k", "--raw", env=jr_env) == (0, "", "")
    set_out = ok_json(run_cli("state", "set", "ns", "k", "héllo wörld", env=jr_env))
    assert set_out == {"namespace": "ns", "key": "k", "value": "héllo wörld", "expires_at": None}
    assert ok_json(run_cli("state", "get", "ns", "k", env=jr_env))["value"] == "héllo wörld"
    assert run_cli("state", "get", "ns", "k", "--raw", env=jr_env).stdout == "héllo wörld\n"
    with RunnerClient(tmp_db) as jr:  # the Python client sees what the CLI wrote
        assert jr.get_state("ns", "k") == "héllo wörld"
    assert ok_json(run_cli("state", "delete", "ns", "k", env=jr_env))["deleted"] is True
    assert ok_json(run_cli("state", "delete", "ns", "k", env=jr_env))["deleted"] is False


def test_state_ttl(run_cli: RunCli, jr_env: dict[str, str]) -> None:
    out = ok_json(run_cli("state", "set", "ns", "k", "v", "--ttl", "30d", env=jr_env))
    expires = datetime.fromisoformat(out["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert (
        ok_json(run_cli("state", "get", "ns", "k", env=jr_env))["expires_at"] == out["expires_at"]
    )

    ok_json(run_cli("state", "set", "ns", "brief", "v", "--ttl", "1s", env=jr_env))
    deadline = time.monotonic() + 20
    while ok_json(run_cli("state", "get", "ns", "brief", env=jr_env))["value"] is not None:
        assert time.monotonic() < deadline, "a 1s TTL value was still there after 20 s"
        time.sleep(0.2)

    assert_error(
        run_cli("state", "set", "ns", "k", "v", "--ttl", "1w", env=jr_env),
        "ttl '1w' is not valid: use a whole number above 0 followed by s, m, h or d "
        "(e.g. 90s, 60m, 24h, 30d)",
    )


@pytest.mark.slow
def test_state_items(run_cli: RunCli, jr_env: dict[str, str]) -> None:
    def cli(*args: str) -> Any:
        return ok_json(run_cli("state", "items", *args, env=jr_env))

    assert cli("set", "ns", "seen", "a") == {
        "namespace": "ns",
        "key": "seen",
        "item_key": "a",
        "value": None,
    }
    cli("set", "ns", "seen", "b", "payload")
    cli("set", "ns", "seen", "c")
    assert cli("has", "ns", "seen", "a")["exists"] is True
    assert cli("has", "ns", "seen", "zz")["exists"] is False
    assert cli("get", "ns", "seen", "b") == {
        "namespace": "ns",
        "key": "seen",
        "item_key": "b",
        "exists": True,
        "value": "payload",
    }
    assert cli("get", "ns", "seen", "zz")["exists"] is False
    assert cli("count", "ns", "seen")["count"] == 3
    # Written in one millisecond or not, later writes list first (insertion breaks ties).
    assert cli("list", "ns", "seen")["item_keys"] == ["c", "b", "a"]
    assert cli("list", "ns", "seen", "--order", "asc", "--limit", "2")["item_keys"] == ["a", "b"]
    assert cli("prune", "ns", "seen", "--keep", "1")["deleted"] == 2
    assert cli("delete", "ns", "seen", "c")["deleted"] is True
    assert cli("count", "ns", "seen")["count"] == 0


def test_queue_round_trip(run_cli: RunCli, jr_env: dict[str, str], tmp_db: Path) -> None:
    first = ok_json(run_cli("queue", "enqueue", "work", '{"n": 1}', env=jr_env))
    assert first == {"queue": "work", "id": 1, "duplicate": False}
    urgent = ok_json(
        run_cli("queue", "enqueue", "work", "-", "--priority", "5", env=jr_env, input='"urgent"')
    )
    assert urgent["id"] == 2

    claimed = ok_json(run_cli("queue", "dequeue", "work", "-n", "5", env=jr_env))
    assert [(i["id"], i["payload"], i["attempts"]) for i in claimed["items"]] == [
        (2, "urgent", 1),
        (1, {"n": 1}, 1),
    ]
    assert ok_json(run_cli("queue", "dequeue", "work", env=jr_env)) == {
        "queue": "work",
        "items": [],
    }
    assert ok_json(run_cli("queue", "done", "2", env=jr_env)) == {"id": 2, "status": "done"}
    assert ok_json(run_cli("queue", "fail", "1", "--error", "no luck", env=jr_env)) == {
        "id": 1,
        "status": "failed",  # the default queue gives one attempt
    }
    with RunnerClient(tmp_db) as jr:
        assert jr.dequeue("work") == []

    assert_error(
        run_cli("queue", "done", "2", env=jr_env),
        "Queue item 2 is done, not processing: only a claimed item can be marked done",
    )
    assert_error(
        run_cli("queue", "fail", "1", env=jr_env),
        "Queue item 1 is failed, not processing: only a claimed item can be marked failed",
    )
    assert_error(run_cli("queue", "done", "99", env=jr_env), "Queue item 99 not found")


def test_enqueue_refuses_bad_input(run_cli: RunCli, jr_env: dict[str, str]) -> None:
    assert_error(
        run_cli("queue", "enqueue", "work", "{not json", env=jr_env),
        "JSON argument is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    )
    assert_error(
        run_cli("queue", "enqueue", "a b", "1", env=jr_env),
        "queue 'a b' may hold only letters, digits, '-', '_', '.' and ':'",
    )
    result = run_cli("queue", "enqueue", "work", "1", "--priority", "high", env=jr_env)
    assert_error(result, "Invalid value for '--priority': 'high' is not a valid integer.", 2)
    result = run_cli("queue", "dequeue", "work", "-n", "0", env=jr_env)
    assert result.code == 2
    assert result.stderr.startswith("error: Invalid value for '-n' / '--count': 0 is not in")


def test_queue_definitions_and_dedup(run_cli: RunCli, jr_env: dict[str, str]) -> None:
    defined = ok_json(
        run_cli(
            "add-queue",
            "--id",
            "links",
            "--name",
            "Links to fetch",
            "--dedup-expr",
            "$.url",
            "--dedup-scope",
            "all",
            "--max-attempts",
            "3",
            "--retention-days",
            "2",
            "--lease",
            "60000",
            env=jr_env,
        )
    )
    assert {k: v for k, v in defined.items() if k != "created_at"} == {
        "id": "links",
        "name": "Links to fetch",
        "description": None,
        "dedup_expr": "$.url",
        "dedup_scope": "all",
        "max_attempts": 3,
        "retention_days": 2,
        "lease_ms": 60000,
    }
    assert ok_json(run_cli("queue", "enqueue", "links", '{"url": "a"}', env=jr_env))["id"] == 1
    assert ok_json(run_cli("queue", "enqueue", "links", '{"url": "a"}', env=jr_env)) == {
        "queue": "links",
        "id": -1,
        "duplicate": True,
    }
    [item] = ok_json(run_cli("queue", "dequeue", "links", env=jr_env))["items"]
    assert item["max_attempts"] == 3
    assert ok_json(run_cli("queue", "fail", "1", env=jr_env))["status"] == "pending"

    assert_error(
        run_cli("add-queue", "--id", "links", "--name", "again", env=jr_env),
        "Queue 'links' already exists; use --replace to change its settings",
    )
    replaced = ok_json(
        run_cli("add-queue", "--id", "links", "--name", "Renamed", "--replace", env=jr_env)
    )
    # --replace changes what it is told and keeps the rest.
    assert (replaced["name"], replaced["dedup_expr"]) == ("Renamed", "$.url")
    assert_error(
        run_cli("add-queue", "--id", "x", "--name", "x", "--dedup-expr", "$[", env=jr_env),
        "dedup expression '$[' is not valid JSONPath: unexpected end of query",
    )
    result = run_cli("add-queue", "--id", "x", "--name", "x", "--lease", "0", env=jr_env)
    assert result.code == 2
    assert result.stderr.startswith("error: Invalid value for '--lease': 0 is not in the range")

    listed = ok_json(run_cli("list-queues", "--json", env=jr_env))["queues"]
    assert [(q["id"], q["name"], q["pending"], q["processing"], q["failed"]) for q in listed] == [
        ("links", "Renamed", 1, 0, 0)
    ]


def test_which_database(run_cli: RunCli, tmp_path: Path, jr_env: dict[str, str]) -> None:
    from_env, flag_db, config_db = (
        Path(jr_env["JR_DB_PATH"]),
        tmp_path / "flag.sqlite",
        tmp_path / "cfg" / "runner.sqlite",
    )
    config = tmp_path / "cfg" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"dbPath": "runner.sqlite"}), encoding="utf-8")
    work = tmp_path / "cwd"
    work.mkdir()
    for path in (flag_db, config_db, work / "data" / "runner.sqlite"):
        SqliteStore(path).close()

    ok_json(run_cli("state", "set", "ns", "k", "env", env=jr_env))
    ok_json(run_cli("state", "set", "ns", "k", "flag", "--db", str(flag_db), env=jr_env))
    ok_json(run_cli("state", "set", "ns", "k", "config", "-c", str(config), env=jr_env))
    no_env = {"JR_DB_PATH": ""}
    ok_json(run_cli("state", "set", "ns", "k", "default", cwd=work, env=no_env))

    for path, value in (
        (from_env, "env"),
        (flag_db, "flag"),
        (config_db, "config"),
        (work / "data" / "runner.sqlite", "default"),
    ):
        with RunnerClient(path) as jr:
            assert jr.get_state("ns", "k") == value, path
    assert_error(
        run_cli("state", "get", "ns", "k", "--db", str(flag_db), "-c", str(config)),
        "use either --db or -c, not both",
    )
    assert_error(
        run_cli("state", "get", "ns", "k", "-c", str(tmp_path / "missing.json")),
        f"{tmp_path / 'missing.json'}: file not found",
    )


def test_an_unusable_database_is_one_error_line(run_cli: RunCli, tmp_path: Path) -> None:
    not_sqlite = tmp_path / "notes.txt"
    not_sqlite.write_text("just text, not a database\n" * 100, encoding="utf-8")
    result = run_cli("queue", "dequeue", "q", "--db", str(not_sqlite))
    assert result.code == 1
    assert result.stderr.startswith(f"error: {not_sqlite} is not a usable SQLite database")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_the_shell_example_sets_state_and_enqueues(tmp_path: Path, tmp_db: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        JR_DB_PATH=str(tmp_db),
        HOSTS="web1 db1",
        PYTHONIOENCODING="utf-8",
    )
    env.pop("JR_CLI", None)
    SqliteStore(tmp_db).close()  # the runner makes it before any job runs
    assert shutil.which("jeeves-runner", path=env["PATH"]), "the CLI is not installed"

    def run_example() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(EXAMPLE)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = run_example()
    assert (first.returncode, first.stderr) == (0, ""), first.stderr
    assert first.stdout.splitlines()[0] == "previous run: none"
    assert first.stdout.splitlines()[-1] == "enqueued 2 check(s)"

    with RunnerClient(tmp_db) as jr:
        last_run = jr.get_state("shell-example", "last-run")
        assert last_run is not None
        assert jr.get_state("shell-example", "heartbeat") == last_run
        assert jr.list_item_keys("shell-example", "hosts", order="asc") == ["web1", "db1"]
        claimed = jr.dequeue("host-checks", 10)
        assert [item.payload for item in claimed] == [
            {"host": "db1", "at": last_run},  # priority 10 first
            {"host": "web1", "at": last_run},
        ]

    second = run_example()
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[0] == f"previous run: {last_run}"


# -- PostgreSQL: the same verbs through JR_DB_URL or --db URL ---------------------------------


def test_state_and_queue_verbs_on_postgres_through_jr_db_url(run_cli: RunCli, pg_url: str) -> None:
    env = {"JR_DB_URL": pg_url, "JR_DB_PATH": "/nonexistent/ignored.sqlite"}
    ok_json(run_cli("state", "set", "ns", "k", "v", "--ttl", "1h", env=env))
    assert ok_json(run_cli("state", "get", "ns", "k", env=env))["value"] == "v"
    first = ok_json(run_cli("queue", "enqueue", "q", '{"n": 1}', "--priority", "-1", env=env))
    claimed = ok_json(run_cli("queue", "dequeue", "q", env=env))
    assert [item["id"] for item in claimed["items"]] == [first["id"]]
    assert ok_json(run_cli("queue", "done", str(first["id"]), env=env))["status"] == "done"
    with RunnerClient(pg_url) as jr:  # the client sees what the CLI wrote
        assert jr.get_state("ns", "k") == "v"
        assert jr.dequeue("q") == []


def test_db_option_takes_a_postgres_url(run_cli: RunCli, pg_url: str) -> None:
    ok_json(run_cli("state", "items", "set", "ns", "k", "a", "--db", pg_url))
    assert ok_json(run_cli("state", "items", "count", "ns", "k", "--db", pg_url))["count"] == 1


def test_an_unreachable_postgres_is_one_line(run_cli: RunCli) -> None:
    result = run_cli(
        "state", "get", "ns", "k", env={"JR_DB_URL": "postgresql://u:pw@127.0.0.1:1/x"}
    )
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "error: cannot connect to PostgreSQL at postgresql://u:***@127.0.0.1:1/x:"
    )
    assert (result.code, result.stdout) == (1, "")
