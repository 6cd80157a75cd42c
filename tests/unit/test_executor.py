"""The executor with real child processes: tails, result lines, timeouts, process groups."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from jeeves_runner.clock import SystemClock
from jeeves_runner.execution import event_loop
from jeeves_runner.execution.executor import (
    KILL_GRACE_S,
    PIPE_BYTES,
    ProcessExecutor,
    RunningProcess,
    SpawnError,
    command_for,
)
from jeeves_runner.models import Job, RunResult, RunStatus

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
T = TypeVar("T")
F_GETPIPE_SZ = 1032


def run(coro: Coroutine[Any, Any, T]) -> T:
    return event_loop.run(coro)


def job(script: str, timeout_ms: int | None = None) -> Job:
    return Job(id="j1", name="J1", schedule="* * * * *", script=script, timeout_ms=timeout_ms)


async def execute(j: Job, db: str = "/tmp/x.sqlite", kill_grace_s: float = 5.0) -> RunResult:
    executor = ProcessExecutor(db_path=db, clock=SystemClock())
    process = await executor.spawn(j, 17)
    return await process.wait(kill_grace_s)


def test_ok_run_env_result_line_and_closed_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JR_JOB_ID", "inherited-must-not-win")
    db = str(tmp_path / "r.sqlite")
    result = run(execute(job(str(SCRIPTS / "ok_with_result.py")), db))
    assert result.status is RunStatus.OK
    assert result.exit_code == 0
    assert result.error is None
    assert f"hello from j1 17 {db}" in result.stdout
    assert "stdin says: ''" in result.stdout
    assert result.tokens == 42
    assert result.result_meta == "model-x"
    assert result.stdout.endswith("bye")


def test_non_zero_exit_is_error_with_stderr_tail() -> None:
    result = run(execute(job(str(SCRIPTS / "fails.sh"))))
    assert result.status is RunStatus.ERROR
    assert result.exit_code == 3
    assert result.error == "something broke"
    assert result.stdout == "working"


def test_non_zero_exit_without_stderr_says_the_code() -> None:
    result = run(execute(job(str(SCRIPTS / "fails_quietly.sh"))))
    assert (result.status, result.exit_code, result.error) == (RunStatus.ERROR, 7, "Exit code 7")


def test_executable_without_known_extension_runs_directly() -> None:
    result = run(execute(job(str(SCRIPTS / "noext_executable"))))
    assert result.status is RunStatus.OK
    assert result.stdout == "ran directly"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("/nonexistent/job.py", "Script not found: /nonexistent/job.py"),
        ("relative/job.py", "Script path must be absolute: relative/job.py"),
        (str(SCRIPTS / "notexec.data"), "is not executable and its extension is not one"),
        (str(SCRIPTS), "Script is not a file"),
    ],
)
def test_unrunnable_scripts_are_spawn_errors(script: str, message: str) -> None:
    with pytest.raises(SpawnError, match=message):
        command_for(script)


def test_a_missing_shebang_interpreter_is_named(tmp_path: Path) -> None:
    script = tmp_path / "badshebang"
    script.write_text("#!/nonexistent/interp -x\necho never\n")
    script.chmod(0o755)
    with pytest.raises(SpawnError) as raised:
        run(execute(job(str(script))))
    assert str(raised.value) == f"Interpreter /nonexistent/interp of {script} not found"


def test_interpreters_by_extension() -> None:
    assert command_for(str(SCRIPTS / "ok_with_result.py"))[0] == sys.executable
    assert command_for(str(SCRIPTS / "fails.sh"))[0] == "bash"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_timeout_kills_the_whole_group_including_a_grandchild() -> None:
    result = run(execute(job(str(SCRIPTS / "grandchild.sh"), timeout_ms=700)))
    assert result.status is RunStatus.TIMEOUT
    assert result.error == "Job timed out after 700 ms"
    grandchild = int(result.stdout.split("grandchild ")[1].split()[0])
    deadline = asyncio.run(_deadline(5))
    while not gone(grandchild) and asyncio.run(_now()) < deadline:
        pass
    assert gone(grandchild)


async def _now() -> float:
    return asyncio.get_running_loop().time()


async def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


@pytest.mark.slow
def test_a_script_that_ignores_term_ends_by_kill() -> None:
    result = run(execute(job(str(SCRIPTS / "ignores_term.sh"), timeout_ms=300), kill_grace_s=0.5))
    assert result.status is RunStatus.TIMEOUT
    assert result.stdout == "ignoring TERM"
    # It did not go on for the default grace: TERM was ignored, KILL ended it.
    assert result.duration_ms < 3000
    # ... but not before the grace was over: the timeout, then 0.5 s of grace.
    assert result.duration_ms >= 300 + 450


def test_kill_comes_5_seconds_after_term_by_default() -> None:
    assert KILL_GRACE_S == 5.0
    default = inspect.signature(RunningProcess.wait).parameters["kill_grace_s"].default
    assert default == KILL_GRACE_S


def test_a_timeout_asks_with_term_before_it_kills() -> None:
    result = run(execute(job(str(SCRIPTS / "traps_term.sh"), timeout_ms=300)))
    assert result.status is RunStatus.TIMEOUT
    assert result.error == "Job timed out after 300 ms"
    # The job's TERM handler ran: it was asked to stop, not killed outright after the grace.
    assert result.stdout == "waiting\ngot TERM"
    assert result.duration_ms < 3000


def test_kill_waits_for_the_jobs_children_to_finish_their_term_handling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "cleaned"
    monkeypatch.setenv("CLEANUP_MARKER", str(marker))
    result = run(execute(job(str(SCRIPTS / "slow_cleanup_child.sh"), timeout_ms=300)))
    assert result.status is RunStatus.TIMEOUT
    # The job's own process exited at once on TERM; its child took 0.3 s to clean up and was
    # not killed in the middle of it (KILL comes only after the grace, to what is left).
    assert marker.read_text() == "cleaned up\n"


def test_stdin_is_closed_whatever_the_runners_own_stdin_is() -> None:
    # The runner started from a terminal or a pipe must not hand that to its jobs.
    read_end, write_end = os.pipe()
    os.write(write_end, b"typed at the runner's terminal")
    os.close(write_end)
    saved = os.dup(0)
    os.dup2(read_end, 0)
    os.close(read_end)
    try:
        result = run(execute(job(str(SCRIPTS / "ok_with_result.py"))))
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert result.status is RunStatus.OK
    assert "stdin says: ''" in result.stdout


@pytest.mark.slow
def test_a_gigabyte_of_output_leaves_memory_bounded() -> None:
    me = psutil.Process(os.getpid())
    before = me.memory_info().rss
    result = run(execute(job(str(SCRIPTS / "flood.py"))))
    grown = me.memory_info().rss - before
    assert result.status is RunStatus.OK
    lines = result.stdout.split("\n")
    assert len(lines) == 100
    assert lines[-1] == "the end"
    assert lines[0] == "short line"
    assert grown < 50 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"


def test_a_path_the_os_refuses_to_look_at_is_a_spawn_error() -> None:
    with pytest.raises(SpawnError, match="File name too long"):
        command_for("/" + "a" * 5000 + ".py")


def test_a_background_process_holding_the_pipes_neither_hangs_the_run_nor_leaks_fds() -> None:
    me = psutil.Process(os.getpid())
    before = me.num_fds()
    result = run(execute(job(str(SCRIPTS / "leaves_background_writer.sh"))))
    assert result.status is RunStatus.OK
    # Recorded after the drain window (1 s), not after the background sleep (30 s).
    assert result.duration_ms < 5000
    assert me.num_fds() <= before
    leftover = psutil.Process(int(result.stdout.split("leaving ")[1].split()[0]))
    for proc in [*leftover.children(recursive=True), leftover]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_SETPIPE_SZ is Linux's")
def test_the_childs_pipes_are_widened_so_a_fast_writer_blocks_less(tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    if limit < PIPE_BYTES:
        pytest.skip(f"pipe-max-size is {limit} here")
    script = tmp_path / "waits.sh"
    script.write_text("#!/bin/sh\nsleep 0.3\n")
    script.chmod(0o755)

    async def sizes() -> list[int]:
        executor = ProcessExecutor(db_path=str(tmp_path / "r.sqlite"), clock=SystemClock())
        process = await executor.spawn(job(str(script)), 1)
        found = [fcntl.fcntl(reader.fd, F_GETPIPE_SZ) for reader in process.readers]
        await process.wait()
        return found

    assert run(sizes()) == [PIPE_BYTES, PIPE_BYTES]


def test_a_postgres_runner_gives_jr_db_url_and_withholds_jr_db_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Inherited values of either must not send the job's client to another database.
    monkeypatch.setenv("JR_DB_PATH", "/inherited/runner.sqlite")
    monkeypatch.setenv("JR_DB_URL", "postgresql://inherited@elsewhere/db")
    url = "postgresql://jr@127.0.0.1:5432/jr"

    async def both() -> tuple[RunResult, RunResult]:
        on_postgres = ProcessExecutor(db_path="/x.sqlite", db_url=url, clock=SystemClock())
        on_sqlite = ProcessExecutor(db_path="/x.sqlite", clock=SystemClock())
        script = job(str(SCRIPTS / "prints_db_env.sh"))
        first = await (await on_postgres.spawn(script, 1)).wait(5.0)
        second = await (await on_sqlite.spawn(script, 2)).wait(5.0)
        return first, second

    on_postgres, on_sqlite = run(both())
    assert on_postgres.stdout == f"url={url} path=unset"
    assert on_sqlite.stdout == "url=unset path=/x.sqlite"
