"""The real `jeeves-runner` CLI in a subprocess: init, validate, config-show, add-job,
list-jobs, service. Every error is one line on stderr starting `error:`, a non-zero exit,
and never a traceback."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner import __version__
from jeeves_runner.config import STARTER_CONFIG
from jeeves_runner.models import JobType, OverlapPolicy
from jeeves_runner.scheduling.cron import InvalidSchedule, parse
from jeeves_runner.store import SCHEMA_VERSION, SqliteStore

# `conftest.py` provides `run_cli(*args, cwd=..., env=...) -> (code, stdout, stderr)`.


def assert_error(result: tuple[int, str, str], message: str, code: int = 1) -> None:
    """The CLI failed with exactly `error: MESSAGE` as its one stderr line."""
    got_code, _stdout, stderr = result
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [f"error: {message}"], stderr
    assert got_code == code


def assert_error_line(result: tuple[int, str, str], code: int = 1) -> str:
    """The CLI failed with one `error:` line on stderr; returns the line."""
    got_code, _stdout, stderr = result
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert got_code == code
    return lines[0]


def assert_ok(result: tuple[int, str, str]) -> str:
    code, stdout, stderr = result
    assert (code, stderr) == (0, ""), stderr
    return stdout


def write_config(folder: Path, data: dict[str, Any], name: str = "config.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data), "utf-8")
    return path


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _add(
    run_cli: Any, config: Path, script_file: Path, cwd: Path, /, *flags: str, **options: str
) -> Any:
    """`add-job -c CONFIG` with a valid job, changed by `options` (`--key value`) and flags."""
    args = {"id": "job", "name": "Job", "schedule": "* * * * *", "script": str(script_file)}
    args.update(options)
    argv = ["add-job", "-c", str(config), *flags]
    for key, value in args.items():
        argv += [f"--{key.replace('_', '-')}", value]
    return run_cli(*argv, cwd=cwd)


@pytest.fixture
def config_no_db(tmp_path: Path) -> Path:
    """A config in its own folder whose database, next to it, does not exist yet."""
    return write_config(tmp_path / "etc", {"dbPath": "db/runner.sqlite"})


@pytest.fixture
def config(config_no_db: Path) -> Path:
    """The same with its database made (commands other than start, init, add-job and
    add-queue refuse a missing database; those say once that they created it)."""
    SqliteStore(config_no_db.parent / "db" / "runner.sqlite").close()
    return config_no_db


@pytest.fixture
def db_path(config_no_db: Path) -> Path:
    return config_no_db.parent / "db" / "runner.sqlite"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "scripts" / "hello.sh"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\necho hello\n")
    return path


# --- the program ----------------------------------------------------------------------------


def test_version(run_cli: Any) -> None:
    assert assert_ok(run_cli("--version")) == f"jeeves-runner, version {__version__}\n"


def test_help_lists_the_foundation_commands(run_cli: Any) -> None:
    out = assert_ok(run_cli("--help"))
    for command in ("init", "validate", "config-show", "add-job", "list-jobs", "service"):
        assert f"  {command} " in out


@pytest.mark.parametrize("args", [(), ("service",)])
def test_a_group_without_a_command_shows_its_help(run_cli: Any, args: tuple[str, ...]) -> None:
    out = assert_ok(run_cli(*args))
    assert out.startswith("Usage: jeeves-runner")
    assert "Commands:" in out


def test_an_unknown_command_is_one_error_line(run_cli: Any) -> None:
    # click words these (and may add a suggestion); the command's name must be in the line
    assert "'frobnicate'" in assert_error_line(run_cli("frobnicate"), code=2)
    assert "'reinstall'" in assert_error_line(run_cli("service", "reinstall"), code=2)


def test_an_unknown_option_is_one_error_line(run_cli: Any, tmp_path: Path) -> None:
    assert "--colour" in assert_error_line(run_cli("list-jobs", "--colour", cwd=tmp_path), code=2)
    assert not (tmp_path / "data").exists()


# --- init -----------------------------------------------------------------------------------


def test_init_writes_the_starter_config_in_cwd(run_cli: Any, tmp_path: Path) -> None:
    written = tmp_path / "jeeves-runner.config.json"
    database = tmp_path / "data" / "runner.sqlite"
    assert run_cli("init", cwd=tmp_path) == (
        0,
        "Wrote jeeves-runner.config.json\n",
        f"Created database {database}\n",
    )
    assert database.is_file()
    assert json.loads(written.read_text("utf-8")) == STARTER_CONFIG
    # what init writes, validate accepts
    assert assert_ok(run_cli("validate", "-c", str(written), cwd=tmp_path)).startswith(
        "Config is valid.\n"
    )


def test_init_with_output_path(run_cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "conf" / "mine.json"
    target.parent.mkdir()
    database = tmp_path / "conf" / "data" / "runner.sqlite"  # dbPath is read from the file's folder
    assert run_cli("init", "-o", str(target)) == (
        0,
        f"Wrote {target}\n",
        f"Created database {database}\n",
    )
    assert json.loads(target.read_text("utf-8")) == STARTER_CONFIG
    other = tmp_path / "conf" / "other.json"
    # The database is there already: said once.
    assert run_cli("init", "--output", str(other)) == (0, f"Wrote {other}\n", "")
    assert other.is_file()


def test_init_refuses_to_overwrite(run_cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text('{"port": 4000}\n')
    before = digest(target)
    assert_error(run_cli("init", "-o", str(target)), f"{target} already exists; not overwriting it")
    assert digest(target) == before


def test_init_makes_a_missing_folder(run_cli: Any, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "dir" / "cfg.json"
    code, out, _ = run_cli("init", "-o", str(target))
    assert (code, out) == (0, f"Wrote {target}\n")
    assert json.loads(target.read_text("utf-8")) == STARTER_CONFIG


def test_init_where_no_folder_can_be_made_is_one_error_line(run_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    target = tmp_path / "blocker" / "config.json"
    assert_error(
        run_cli("init", "-o", str(target)), f"cannot make folder {target.parent}: File exists"
    )


# --- validate -------------------------------------------------------------------------------


def test_validate_prints_the_resolved_values(run_cli: Any, tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "etc",
        {"$schema": "./s.json", "port": 2001, "dbPath": "db.sqlite", "log": {"level": "warn"}},
    )
    out = assert_ok(run_cli("validate", "-c", str(path), cwd=tmp_path))
    first, rest = out.split("\n", 1)
    assert first == "Config is valid."
    resolved = json.loads(rest)
    assert resolved["port"] == 2001
    assert resolved["dbPath"] == str(path.parent.resolve() / "db.sqlite")
    assert resolved["log"]["level"] == "warn"
    assert resolved["maxConcurrency"] == 4  # defaults filled in
    assert "$schema" not in resolved


def test_validate_without_config_uses_the_defaults(run_cli: Any, tmp_path: Path) -> None:
    out = assert_ok(run_cli("validate", cwd=tmp_path))
    resolved = json.loads(out.split("\n", 1)[1])
    assert (resolved["port"], resolved["host"]) == (1937, "127.0.0.1")
    assert resolved["dbPath"] == "./data/runner.sqlite"


def test_validate_reports_every_problem_on_one_line(run_cli: Any, tmp_path: Path) -> None:
    path = write_config(tmp_path, {"portt": 1, "maxConcurrency": "four", "runRetentionDays": -2})
    line = assert_error_line(run_cli("validate", "-c", str(path)))
    assert line.startswith(f"error: {path}: 3 problems: ")
    assert "portt: unknown key (did you mean 'port'?)" in line
    assert 'maxConcurrency: must be an integer ≥ 1, got "four"' in line
    assert "runRetentionDays: must be an integer ≥ 1, got -2" in line


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"maxConcurrency": "four"}, 'maxConcurrency: must be an integer ≥ 1, got "four"'),
        ({"shutdownGraceMs": -1}, "shutdownGraceMs: must be an integer ≥ 0, got -1"),
        ({"portt": 1937}, "portt: unknown key (did you mean 'port'?)"),
        (
            {"log": {"level": "verbose"}},
            'log.level: must be one of trace, debug, info, warn, error, fatal, got "verbose"',
        ),
    ],
)
def test_validate_names_the_key_and_the_problem(
    run_cli: Any, tmp_path: Path, data: dict[str, Any], problem: str
) -> None:
    path = write_config(tmp_path, data)
    assert_error(run_cli("validate", "-c", str(path)), f"{path}: {problem}")


def test_validate_broken_json_names_line_and_column(run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "port": 1937\n  "host": "x"\n}\n')
    assert_error(
        run_cli("validate", "-c", str(path)),
        f"{path}: not valid JSON at line 3, column 3: Expecting ',' delimiter",
    )


def test_validate_a_missing_file(run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    assert_error(run_cli("validate", "-c", str(path)), f"{path}: file not found")


def test_validate_a_folder(run_cli: Any, tmp_path: Path) -> None:
    assert_error_line(run_cli("validate", "-c", str(tmp_path)), code=2)


def test_validate_needs_a_value_for_c(run_cli: Any) -> None:
    assert_error(run_cli("validate", "-c"), "Option '-c' requires an argument.", code=2)


# --- config-show ----------------------------------------------------------------------------


def test_config_show_prints_json_with_token_paths_redacted(run_cli: Any, tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "notifications": {"slackTokenPath": "secret/slack.token", "defaultOnFailure": "C1"},
            "gateway": {"tokenPath": "/very/secret/gw.token", "url": "http://gw:9"},
        },
    )
    out = assert_ok(run_cli("config-show", "-c", str(path)))
    shown = json.loads(out)
    assert shown["notifications"]["slackTokenPath"] == "<redacted>"
    assert shown["gateway"]["tokenPath"] == "<redacted>"
    assert shown["notifications"]["defaultOnFailure"] == "C1"
    assert shown["gateway"]["url"] == "http://gw:9"
    # neither path shows anywhere ("secretEnv", the key, is no secret)
    assert "secret/" not in out and "gw.token" not in out and "slack.token" not in out
    # validate prints the same redacted values (once the token files it checks exist)
    (tmp_path / "secret").mkdir()
    for name in ("slack.token", "gw.token"):
        (tmp_path / "secret" / name).write_text("t-1\n")
    path = write_config(
        tmp_path,
        {
            "notifications": {"slackTokenPath": "secret/slack.token", "defaultOnFailure": "C1"},
            "gateway": {"tokenPath": "secret/gw.token", "url": "http://gw:9"},
        },
    )
    validated = assert_ok(run_cli("validate", "-c", str(path)))
    assert "secret/" not in validated and "gw.token" not in validated


def test_config_show_errors(run_cli: Any, tmp_path: Path) -> None:
    assert_error(
        run_cli("config-show", "-c", str(tmp_path / "x.json")),
        f"{tmp_path / 'x.json'}: file not found",
    )
    path = write_config(tmp_path, {"gateway": {"tokenpath": "x"}})
    assert_error(
        run_cli("config-show", "-c", str(path)),
        f"{path}: gateway.tokenpath: unknown key (did you mean 'tokenPath'?)",
    )


# --- add-job --------------------------------------------------------------------------------


def test_add_job_with_every_option(run_cli: Any, config: Path, db_path: Path, script: Path) -> None:
    out = assert_ok(
        run_cli(
            "add-job",
            "--id", "hello.v1_x-y",
            "--name", "Say hello",
            "--schedule", "*/5 * * * *",
            "--script", "scripts/hello.sh",  # relative: resolved against cwd
            "--type", "script",
            "--description", "Greets",
            "--timeout", "60000",
            "--overlap", "queue",
            "--on-failure", "C-FAIL",
            "--on-success", "C-OK",
            "--disabled",
            "-c", str(config),
            cwd=script.parent.parent,
        )
    )  # fmt: skip
    assert out == f"Added job 'hello.v1_x-y' (*/5 * * * *) -> {script.resolve()}\n"
    store = SqliteStore(db_path)
    try:
        job = store.jobs.get_job("hello.v1_x-y")
    finally:
        store.close()
    assert job is not None
    assert job.name == "Say hello"
    assert job.schedule == "*/5 * * * *"
    assert job.script == str(script.resolve())
    assert job.type is JobType.SCRIPT
    assert job.description == "Greets"
    assert job.timeout_ms == 60_000
    assert job.overlap_policy is OverlapPolicy.QUEUE
    assert (job.on_failure, job.on_success) == ("C-FAIL", "C-OK")
    assert job.enabled is False
    assert job.created_at is not None and job.created_at.endswith("Z")
    assert len(job.created_at) == len("2026-03-02T01:03:00.000Z")


def test_add_job_defaults_and_session_jobs(
    run_cli: Any, config: Path, db_path: Path, script: Path
) -> None:
    assert_ok(_add(run_cli, config, script, script.parent, id="plain", schedule="@daily"))
    ask = {"id": "ask", "schedule": "0 9 * * MON-FRI", "type": "session"}
    assert_ok(_add(run_cli, config, script, script.parent, **ask, script="Summarise the inbox."))
    store = SqliteStore(db_path)
    try:
        plain = store.jobs.get_job("plain")
        ask = store.jobs.get_job("ask")
    finally:
        store.close()
    assert plain is not None and ask is not None
    assert (plain.type, plain.overlap_policy, plain.enabled) == (
        JobType.SCRIPT,
        OverlapPolicy.SKIP,
        True,
    )
    assert (plain.timeout_ms, plain.description, plain.on_failure) == (None, None, None)
    assert (ask.type, ask.script) == (JobType.SESSION, "Summarise the inbox.")


def test_add_job_without_config_uses_the_default_database(
    run_cli: Any, tmp_path: Path, script: Path
) -> None:
    job = ["--id", "d", "--name", "D", "--schedule", "* * * * *", "--script", str(script)]
    created = tmp_path / "data" / "runner.sqlite"
    assert run_cli("add-job", *job, cwd=tmp_path) == (
        0,
        f"Added job 'd' (* * * * *) -> {script.resolve()}\n",
        f"Created database {created}\n",
    )
    assert created.is_file()
    assert "d" in assert_ok(run_cli("list-jobs", cwd=tmp_path))
    # Said once: the second add-job finds the database.
    job[1] = "e"
    assert assert_ok(run_cli("add-job", *job, cwd=tmp_path)).startswith("Added job 'e'")


def test_list_jobs_refuses_a_missing_database(run_cli: Any, tmp_path: Path) -> None:
    assert_error(
        run_cli("list-jobs", cwd=tmp_path),
        f"no database at {tmp_path / 'data' / 'runner.sqlite'} (create it with "
        "'jeeves-runner init' or start the runner)",
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"id": ""}, "id: must not be empty"),
        ({"id": "has space"}, "id: 'has space' may hold only letters, digits, '-', '_' and '.'"),
        ({"id": "a/b"}, "id: 'a/b' may hold only letters, digits, '-', '_' and '.'"),
        ({"name": ""}, "name: must not be empty"),
        ({"overlap": "sometimes"}, "overlap: must be skip, queue or allow, got 'sometimes'"),
        ({"type": "shell"}, "type: must be script or session, got 'shell'"),
        ({"timeout": "0"}, "timeout: must be a positive number of milliseconds, got 0"),
        ({"timeout": "-100"}, "timeout: must be a positive number of milliseconds, got -100"),
        (
            {"type": "session", "script": "run.js"},
            "script: a session job takes prompt text or a .md/.txt file, not 'run.js'",
        ),
    ],
)
def test_add_job_checks_its_input_before_writing(
    run_cli: Any, config_no_db: Path, script: Path, options: dict[str, str], message: str
) -> None:
    assert_error(_add(run_cli, config_no_db, script, script.parent, **options), message)
    assert not (config_no_db.parent / "db").exists()  # rejected before the database was even opened


def test_add_job_refuses_a_missing_script(run_cli: Any, config_no_db: Path, tmp_path: Path) -> None:
    result = _add(run_cli, config_no_db, Path("nope.sh"), tmp_path, script="nope.sh")
    assert_error(result, f"script: {tmp_path.resolve() / 'nope.sh'} does not exist")
    assert_error(
        _add(run_cli, config_no_db, tmp_path, tmp_path), f"script: {tmp_path} is not a file"
    )
    assert not (config_no_db.parent / "db").exists()


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "@reboot", "0 0 31 2 *x"])
def test_add_job_refuses_an_invalid_schedule_with_the_cron_message(
    run_cli: Any, config_no_db: Path, script: Path, expression: str
) -> None:
    with pytest.raises(InvalidSchedule) as cron_error:
        parse(expression)
    result = _add(run_cli, config_no_db, script, script.parent, schedule=expression)
    assert_error(result, f"schedule: {cron_error.value}")
    assert not (config_no_db.parent / "db").exists()


def test_add_job_refuses_a_non_integer_timeout(run_cli: Any, config: Path, script: Path) -> None:
    result = _add(run_cli, config, script, script.parent, timeout="soon")
    assert_error(result, "Invalid value for '--timeout': 'soon' is not a valid integer.", code=2)


def test_add_job_requires_its_options(run_cli: Any, config: Path, script: Path) -> None:
    result = run_cli(
        "add-job", "--id", "x", "--name", "X", "--script", str(script), "-c", str(config)
    )
    assert_error(result, "Missing option '--schedule'.", code=2)


def test_add_job_refuses_a_duplicate_id(
    run_cli: Any, config: Path, db_path: Path, script: Path
) -> None:
    assert_ok(_add(run_cli, config, script, script.parent, id="twice", name="First"))
    assert_error(
        _add(run_cli, config, script, script.parent, id="twice", name="Second"),
        "Job 'twice' already exists",
    )
    store = SqliteStore(db_path)
    try:
        first = store.jobs.get_job("twice")
        assert first is not None and first.name == "First"
        assert store.jobs.count_jobs() == 1
    finally:
        store.close()


def test_add_job_with_a_broken_config(run_cli: Any, tmp_path: Path, script: Path) -> None:
    path = write_config(tmp_path, {"dbPath": 3})
    assert_error(
        _add(run_cli, path, script, tmp_path), f"{path}: dbPath: must be a non-empty string, got 3"
    )


# --- list-jobs ------------------------------------------------------------------------------


def test_list_jobs_empty(run_cli: Any, config: Path) -> None:
    assert assert_ok(run_cli("list-jobs", "-c", str(config))) == "No jobs.\n"


def test_list_jobs_shows_id_status_last_result_next_fire_schedule_name(
    run_cli: Any, config: Path, script: Path
) -> None:
    assert_ok(
        _add(run_cli, config, script, script.parent, id="zeta", name="Last one", schedule="@hourly")
    )
    first = {"id": "alpha", "name": "First one", "schedule": "0 3 * * *"}
    assert_ok(_add(run_cli, config, script, script.parent, "--disabled", **first))
    out = assert_ok(run_cli("list-jobs", "-c", str(config)))
    header, alpha, zeta = (re.split(r"\s{2,}", line) for line in out.splitlines())
    assert header == ["ID", "STATUS", "LAST RESULT", "NEXT FIRE", "SCHEDULE", "NAME"]
    assert alpha == ["alpha", "disabled", "-", "-", "0 3 * * *", "First one"]
    assert zeta[:3] == ["zeta", "enabled", "-"]
    assert zeta[3].endswith(":00:00+00:00")  # @hourly: the next whole hour (zone: UTC here)
    assert zeta[4:] == ["@hourly", "Last one"]


def test_list_jobs_refuses_a_newer_database_and_leaves_it_alone(
    run_cli: Any, config_no_db: Path, db_path: Path
) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE jobs (id TEXT)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    before = digest(db_path)
    assert_error(
        run_cli("list-jobs", "-c", str(config_no_db)),
        f"{db_path} has schema version {SCHEMA_VERSION + 1}, newer than this program supports "
        f"({SCHEMA_VERSION}); upgrade jeeves-runner to use it",
    )
    assert digest(db_path) == before


def test_list_jobs_on_a_file_that_is_not_a_database(
    run_cli: Any, config_no_db: Path, db_path: Path
) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_text("hello " * 1000)
    assert_error(
        run_cli("list-jobs", "-c", str(config_no_db)),
        f"{db_path} is not a usable SQLite database (file is not a database)",
    )


def test_add_job_when_the_database_folder_cannot_be_made(
    run_cli: Any, tmp_path: Path, script: Path
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    path = write_config(tmp_path, {"dbPath": "blocker/runner.sqlite"})
    line = assert_error_line(_add(run_cli, path, script, tmp_path))
    assert line.startswith(f"error: cannot create folder {tmp_path / 'blocker'} for ")


def test_list_jobs_with_a_missing_config(run_cli: Any, tmp_path: Path) -> None:
    assert_error(run_cli("list-jobs", "-c", "gone.json", cwd=tmp_path), "gone.json: file not found")
