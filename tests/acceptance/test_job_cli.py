"""edit-job, remove-job, enable, disable, show-job, list-jobs: the real CLI as a child process,
with no runner and beside a real running runner (whose schedule must follow within 1 s)."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_process import RunnerProcess, wait_for

from jeeves_runner.models import parse_instant
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.opening import open_store

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
NEVER_DURING_TESTS = "0 0 1 1 *"


def assert_error(result: tuple[int, str, str], message: str, code: int = 1) -> None:
    got_code, _stdout, stderr = result
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [f"error: {message}"], stderr
    assert got_code == code


def assert_ok(result: tuple[int, str, str]) -> str:
    code, stdout, stderr = result
    assert (code, stderr) == (0, ""), stderr
    return stdout


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"dbPath": "runner.sqlite", "timezone": "UTC"}))
    SqliteStore(tmp_path / "runner.sqlite").close()  # made once, as `init` would
    return path


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "hello.sh"
    path.write_text("#!/bin/sh\necho hello\n")
    return path


@pytest.fixture
def cli(run_cli: Any, config: Path, tmp_path: Path) -> Any:
    def call(*args: str) -> Any:
        return run_cli(*args, "-c", str(config), cwd=tmp_path)

    return call


def add(cli: Any, job_id: str, script: Path, *extra: str, schedule: str = "0 3 * * *") -> None:
    assert_ok(
        cli("add-job", "--id", job_id, "--name", job_id.title(), "--schedule", schedule,
            "--script", str(script), *extra)
    )  # fmt: skip


def stored(config: Path, job_id: str) -> Any:
    store = SqliteStore(config.parent / "runner.sqlite")
    try:
        return store.jobs.get_job(job_id)
    finally:
        store.close()


# ---- without a runner --------------------------------------------------------------------


def test_edit_job_changes_only_the_options_given(cli: Any, config: Path, script: Path) -> None:
    add(cli, "report", script, "--timeout", "5000", "--description", "first")
    out = assert_ok(cli("edit-job", "report", "--schedule", "*/5 * * * *", "--no-timeout"))
    assert out == "Changed job 'report': schedule, timeout_ms\n"
    job = stored(config, "report")
    assert (job.schedule, job.timeout_ms, job.description) == ("*/5 * * * *", None, "first")
    assert assert_ok(cli("edit-job", "report", "--schedule", "*/5 * * * *")) == (
        "Job 'report' unchanged\n"
    )
    assert_ok(cli("edit-job", "report", "--description", ""))
    assert stored(config, "report").description is None


def test_add_job_and_edit_job_take_the_policies(cli: Any, config: Path, script: Path) -> None:
    add(cli, "report", script, "--retries", "2", "--retry-on", "timeout", "--retry-on", "75",
        "--catchup", "once", "--max-duration", "9000")  # fmt: skip
    job = stored(config, "report")
    assert (job.retries, job.retry_on, job.catchup) == (2, ("timeout", "75"), "once")
    assert (job.max_duration_ms, job.retry_delay_ms) == (9000, 10_000)
    out = assert_ok(cli("edit-job", "report", "--catchup", "all", "--catchup-max", "3"))
    assert out == "Changed job 'report': catchup, catchup_max\n"
    assert stored(config, "report").retries == 2
    shown = assert_ok(cli("show-job", "report")).splitlines()
    assert "catch-up:    all (at most 3, within 86400000 ms)" in shown
    assert (
        "retries:     2 on timeout, 75; waits up to 10000 ms x2 per try, at most 600000 ms "
        "(full jitter)" in shown
    )
    assert_error(
        cli("edit-job", "report", "--catchup", "every"),
        'catchup: must be skip, once or all, got "every"',
    )


def test_edit_job_applies_the_add_job_rules(cli: Any, config: Path, script: Path) -> None:
    add(cli, "report", script)
    assert_error(
        cli("edit-job", "report", "--schedule", "0 0 31 2 *"),
        "schedule: This schedule never fires.",
    )
    assert_error(cli("edit-job", "report", "--script", "missing.sh"), "script: "
                 f"{config.parent / 'missing.sh'} does not exist")  # fmt: skip
    assert_error(cli("edit-job", "ghost", "--name", "x"), "Job 'ghost' not found")
    assert stored(config, "report").schedule == "0 3 * * *"


def test_add_job_refuses_a_schedule_that_never_fires(cli: Any, script: Path) -> None:
    result = cli("add-job", "--id", "x", "--name", "X", "--schedule", "0 0 0 1 1 * 1999",
                 "--script", str(script))  # fmt: skip
    assert_error(result, "schedule: This schedule never fires.")


def test_enable_and_disable(cli: Any, config: Path, script: Path) -> None:
    add(cli, "report", script)
    assert assert_ok(cli("disable", "report")) == "Disabled job 'report'\n"
    assert stored(config, "report").enabled is False
    assert assert_ok(cli("enable", "report")) == "Enabled job 'report'\n"
    assert stored(config, "report").enabled is True
    assert_error(cli("enable", "ghost"), "Job 'ghost' not found")


def test_remove_job_deletes_it_and_its_runs(cli: Any, config: Path, script: Path) -> None:
    add(cli, "report", script)
    assert assert_ok(cli("remove-job", "report")) == "Removed job 'report'\n"
    assert stored(config, "report") is None
    assert_error(cli("remove-job", "report"), "Job 'report' not found")


def test_remove_job_refuses_a_job_with_an_open_run_unless_forced(
    cli: Any, config: Path, script: Path
) -> None:
    from jeeves_runner.models import RunStatus, RunTrigger

    add(cli, "report", script)
    store = SqliteStore(config.parent / "runner.sqlite")
    try:
        store.runs.create_run(
            "report", RunTrigger.MANUAL, RunStatus.RUNNING, "2026-03-02T12:00:00.000Z"
        )
    finally:
        store.close()
    assert_error(cli("remove-job", "report"), "Job 'report' has a run in flight")
    # No runner answers on the configured port: the open row is a leftover, and goes.
    assert assert_ok(cli("remove-job", "report", "--force")) == "Removed job 'report'\n"
    assert stored(config, "report") is None


@pytest.mark.slow
def test_show_job_prints_definition_next_fires_and_last_runs(cli: Any, script: Path) -> None:
    add(cli, "report", script, schedule="0 3 * * *")
    out = assert_ok(cli("show-job", "report"))
    lines = out.splitlines()
    assert lines[0] == "id:          report"
    assert "status:      enabled" in lines
    assert "schedule:    0 3 * * *" in lines
    assert f"script:      {script}" in lines
    assert "catch-up:    skip (missed fires are recorded, not run)" in lines
    fires = lines[lines.index("Next fires:") + 1 : lines.index("Next fires:") + 6]
    assert len(fires) == 5
    assert all(f.startswith("  ") and f.endswith("T03:00:00+00:00") for f in fires)
    assert lines[-1] == "Last runs: none"
    assert_ok(cli("disable", "report"))
    assert "Next fires: none (disabled)" in assert_ok(cli("show-job", "report"))
    assert_error(cli("show-job", "ghost"), "Job 'ghost' not found")


def test_list_jobs_columns_and_long_ids(cli: Any, script: Path) -> None:
    long_id = "a" * 60
    add(cli, long_id, script, schedule="0 3 * * *")
    add(cli, "off", script, "--disabled")
    lines = [re.split(r"\s{2,}", line) for line in assert_ok(cli("list-jobs")).splitlines()]
    assert lines[0] == ["ID", "STATUS", "LAST RESULT", "NEXT FIRE", "SCHEDULE", "NAME"]
    assert lines[1][:3] == ["a" * 39 + "…", "enabled", "-"]
    assert lines[1][3].endswith("T03:00:00+00:00")
    assert lines[2][:4] == ["off", "disabled", "-", "-"]


# ---- beside a running runner ---------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RunnerProcess]:
    # The periodic reconcile is a minute away: only the watch can make changes felt in time.
    (tmp_path / "live").mkdir()
    proc = RunnerProcess(tmp_path / "live", reconcileIntervalMs=60_000, shutdownGraceMs=5_000)
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop(signal.SIGKILL)


def _cli(runner: RunnerProcess, *args: str) -> str:
    done = runner.cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_an_edit_from_another_process_fires_within_a_second(runner: RunnerProcess) -> None:
    runner.add_job("tick", NEVER_DURING_TESTS, str(SCRIPTS / "sleeps.sh"))
    runner.start()
    _cli(runner, "edit-job", "tick", "--schedule", "* * * * * *")
    # From the edit's commit (its updated_at), not from before the CLI started: starting
    # a Python process is no part of what is measured, and takes seconds on a busy host.
    store = open_store(runner.db_location)
    try:
        job = store.jobs.get_job("tick")
    finally:
        store.close()
    assert job is not None
    edited_at = parse_instant(job.updated_at).timestamp()
    runs = wait_for(lambda: runner.runs("tick"), 10, "a run after the edit")
    first_start = min(parse_instant(r["started_at"]).timestamp() for r in runs)
    # Within the watch's second, plus up to a second for the next `* * * * * *` slot.
    assert first_start - edited_at < 2.2

    _cli(runner, "disable", "tick")
    assert wait_for(lambda: _quiet_for(runner, "tick", 1.5), 10, "firing to stop")


def _quiet_for(runner: RunnerProcess, job_id: str, seconds: float) -> bool:
    """True when no run of the job started in the last `seconds`."""
    runs = runner.runs(job_id)
    newest = max((parse_instant(r["started_at"]).timestamp() for r in runs), default=0.0)
    return time.time() - newest > seconds


@pytest.mark.slow
def test_remove_job_force_stops_the_run_through_the_runner(runner: RunnerProcess) -> None:
    runner.add_job("hang", "* * * * * *", str(SCRIPTS / "grandchild.sh"))
    runner.start()
    wait_for(lambda: any(r["status"] == "running" for r in runner.runs("hang")), 20, "a run")
    refused = runner.cli("remove-job", "hang")
    assert (refused.returncode, refused.stderr) == (1, "error: Job 'hang' has a run in flight\n")
    assert _cli(runner, "remove-job", "hang", "--force") == "Removed job 'hang'\n"
    assert runner.runs("hang") == []
    time.sleep(1.5)  # a deleted job must not fire again: nothing to poll for but absence
    assert runner.runs("hang") == []


@pytest.mark.slow
def test_add_and_edit_the_run_fields(cli: Any, config: Path, script: Path, tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    add(cli, "report", script, "--arg", "a b", "--arg", "c", "--env", "GREETING=hi there",
        "--cwd", "work", "--timezone", "Asia/Tokyo", "--tag", "mail")  # fmt: skip
    job = stored(config, "report")
    assert job.args == ("a b", "c")
    assert job.env == {"GREETING": "hi there"}
    assert job.cwd == str(tmp_path / "work")  # relative to where the command ran
    assert (job.timezone, job.tags) == ("Asia/Tokyo", ("mail",))
    out = assert_ok(cli("show-job", "report"))
    assert "args:        'a b' c" in out.splitlines()
    assert "timezone:    Asia/Tokyo" in out.splitlines()
    assert "T03:00:00+09:00" in out  # next fires in the job's own zone
    changed = assert_ok(cli("edit-job", "report", "--command", "rsync -a 'my src' dst"))
    assert changed == "Changed job 'report': script, command, args\n"  # args were the script's
    job = stored(config, "report")
    assert (job.script, job.command) == ("", ("rsync", "-a", "my src", "dst"))
    assert_ok(cli("edit-job", "report", "--timezone", "", "--cwd", ""))
    job = stored(config, "report")
    assert (job.timezone, job.cwd) == (None, None)
    changed = assert_ok(cli("edit-job", "report", "--run-on", "gpu", "--run-on", "box-1"))
    assert changed == "Changed job 'report': run_on\n"
    assert stored(config, "report").run_on == ("gpu", "box-1")
    assert "run on:      gpu, box-1" in assert_ok(cli("show-job", "report")).splitlines()
    assert_ok(cli("edit-job", "report", "--name", "Report"))  # other edits keep run_on
    assert stored(config, "report").run_on == ("gpu", "box-1")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--env", "NOVALUE"), "env: 'NOVALUE' is not NAME=VALUE"),
        (("--timezone", "Mars/Base"), "timezone: unknown time zone 'Mars/Base'"),
        (("--cwd", "missing"), "cwd: {tmp}/missing does not exist"),
        (
            ("--command", "echo 'unclosed"),
            "command: cannot be split into words (No closing quotation)",
        ),
    ],
)
def test_bad_run_fields_are_one_sentence(
    cli: Any, script: Path, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    result = cli("add-job", "--id", "x", "--name", "X", "--schedule", "@daily", "--script",
                 str(script), *extra)  # fmt: skip
    assert_error(result, message.format(tmp=tmp_path))


def test_add_job_with_a_command_instead_of_a_script(cli: Any, config: Path) -> None:
    out = assert_ok(cli("add-job", "--id", "c", "--name", "C", "--schedule", "@daily",
                        "--command", "echo hi"))  # fmt: skip
    assert out == "Added job 'c' (@daily) -> echo hi\n"
    assert stored(config, "c").command == ("echo", "hi")
    assert_error(cli("add-job", "--id", "d", "--name", "D", "--schedule", "@daily"),
                 "script: is required (or give a command)")  # fmt: skip
