"""Running one script job as a child process.

Each run gets its own session (process group) so a timeout or shutdown can stop the job
together with everything it started. Never through a shell; stdin closed; output kept as
bounded tails.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jeeves_runner.clock import Clock
from jeeves_runner.execution.child_env import child_environment
from jeeves_runner.execution.output_tail import OutputTail
from jeeves_runner.execution.pipe_reader import PipeReader
from jeeves_runner.execution.process_groups import group_is_alive as _group_alive
from jeeves_runner.execution.process_groups import signal_group as _signal_group
from jeeves_runner.execution.run_log import RunLog
from jeeves_runner.models import Job, LogStream, RunResult, RunStatus

KILL_GRACE_S = 5.0
# After the job's own process exits, a background grandchild may still hold its pipes open;
# we wait this long for end-of-file and then stop reading rather than hang the run.
PIPE_DRAIN_S = 1.0
# How long a reader told to stop may take to end and close its fd (it is woken at once).
READERS_STOP_S = 1.0


PYTHON = "{python}"  # the runner's own interpreter, so scripts can import the client
# How a script is started, by extension; any other executable file runs directly.
INTERPRETERS: dict[str, tuple[str, ...]] = {
    ".js": ("node",),
    ".mjs": ("node",),
    ".cjs": ("node",),
    ".py": (PYTHON,),
    ".sh": ("bash",),
    ".ps1": ("pwsh", "-NoProfile", "-NonInteractive", "-File"),
    ".cmd": ("cmd.exe", "/c"),
    ".bat": ("cmd.exe", "/c"),
}
SCRIPT_EXTENSIONS = tuple(INTERPRETERS)


class SpawnError(Exception):
    """The script could not be started; the message says why in one sentence."""


def command_for(script: str, python: str = sys.executable) -> list[str]:
    try:
        return _command_for(script, python)
    except OSError as exc:  # e.g. a folder on the way that the runner may not search
        raise SpawnError(f"Cannot start {script}: {exc.strerror or exc}") from None


def _command_for(script: str, python: str) -> list[str]:
    path = Path(script)
    if not path.is_absolute():
        raise SpawnError(f"Script path must be absolute: {script}")
    if not path.exists():
        raise SpawnError(f"Script not found: {script}")
    if not path.is_file():
        raise SpawnError(f"Script is not a file: {script}")
    interpreter = INTERPRETERS.get(path.suffix.lower())
    if interpreter is not None:
        return [python if part == PYTHON else part for part in interpreter] + [script]
    if os.access(script, os.X_OK):
        return [script]
    raise SpawnError(
        f"Script {script} is not executable and its extension is not one the runner knows "
        f"({' '.join(SCRIPT_EXTENSIONS)})"
    )


def missing_program(script: str, program: str) -> str:
    """Why starting `script` found nothing to run. The script itself exists (checked before
    the start), so when it was run directly the missing file is the interpreter its `#!`
    line names."""
    if program == script:
        try:
            with open(script, "rb") as fh:
                first = fh.readline(512)
        except OSError:
            first = b""
        words = first[2:].decode("utf-8", "replace").split() if first.startswith(b"#!") else []
        if words:
            return f"Interpreter {words[0]} of {script} not found"
    return f"Cannot start {script}: {program} was not found"


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Output goes straight into the bounded tails as it arrives (no stream buffers), and
    the child's exit is known apart from its pipes closing: a background grandchild that
    keeps the pipes open must not hold the run. The pipes are read by `PipeReader` threads,
    which call `pipe_data_received` and `pipe_connection_lost` on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log: RunLog | None = None) -> None:
        self.stdout = OutputTail()
        self.stderr = OutputTail(results=False)  # JR_RESULT: lines count on stdout only
        self.log = log
        if log is not None:
            # A JR_RESULT: line that cannot be used says so in the run's log.
            self.stdout.result.on_bad = log.warn
            log.tails = lambda: (self.stdout.text(), self.stderr.text())
        self.exited: asyncio.Future[int] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str, at: datetime | None = None) -> None:
        chunk = data if isinstance(data, bytes) else data.encode()
        # The full log first: a warning about a JR_RESULT: line follows the line itself.
        if self.log is not None:
            self.log.feed(LogStream.STDOUT if fd == 1 else LogStream.STDERR, chunk, at)
        (self.stdout if fd == 1 else self.stderr).feed(chunk)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        # The code is read from the transport by the waiter; here we only learn "it ended".
        if not self.exited.done():
            self.exited.set_result(0)


@dataclass
class RunningProcess:
    """A started child. `wait` collects its result; `stop` ends its whole group."""

    job: Job
    transport: asyncio.SubprocessTransport
    protocol: _ChildProtocol
    started_mono: float
    clock: Clock
    readers: tuple[PipeReader, ...] = ()
    _stop_reason: str | None = None
    _stop_status: RunStatus = RunStatus.ERROR

    async def cancel(self, reason: str, kill_grace_s: float = KILL_GRACE_S) -> None:
        """Stop the run on someone's request: status `cancelled`, `reason` as its error
        (unless it is already being stopped for another reason, which then stands)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop_status = RunStatus.CANCELLED
        await self.stop(kill_grace_s)

    @property
    def pid(self) -> int:
        return int(self.transport.get_pid())

    async def _exited(self) -> None:
        await asyncio.shield(self.protocol.exited)

    async def wait(self, kill_grace_s: float = KILL_GRACE_S) -> RunResult:
        timeout_s = self.job.timeout_ms / 1000 if self.job.timeout_ms else None
        try:
            try:
                await asyncio.wait_for(self._exited(), timeout_s)
            except TimeoutError:
                self._stop_reason = f"Job timed out after {self.job.timeout_ms} ms"
                self._stop_status = RunStatus.TIMEOUT
                await self.stop(kill_grace_s)
            except asyncio.CancelledError:
                # Cancelled while the job runs: end its group before giving up on it.
                await asyncio.shield(self.stop(kill_grace_s))
                raise
            # Output written just before the exit is still in the pipes: wait for end of
            # file, but not for a background grandchild that keeps them open.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.protocol.pipes_closed), PIPE_DRAIN_S)
            if not self.protocol.pipes_closed.done():
                # Stop reading; the readers end (and close their fds) at once.
                for reader in self.readers:
                    reader.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(self.protocol.pipes_closed), READERS_STOP_S
                    )
        finally:
            # Our ends of the pipes are closed now even if a grandchild holds theirs (it
            # gets EPIPE on its next write): no descriptor outlives the run.
            for reader in self.readers:
                reader.stop()
            self.transport.close()
        return self._result()

    async def stop(self, kill_grace_s: float = KILL_GRACE_S, reason: str | None = None) -> None:
        """SIGTERM to the whole group; SIGKILL to the group if anything of it is left after
        the grace. Waits for the job's own process to be reaped."""
        if reason and self._stop_reason is None:
            self._stop_reason = reason
        pgid = self.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = self.clock.monotonic() + kill_grace_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exited(), kill_grace_s)
        # The leader is gone (or ignored TERM); grandchildren may linger in the group.
        while _group_alive(pgid) and self.clock.monotonic() < deadline:
            await asyncio.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)
        await self._exited()

    def kill_now(self) -> None:
        """SIGKILL to the whole group at once (the second stop signal)."""
        _signal_group(self.pid, signal.SIGKILL)

    def _result(self) -> RunResult:
        duration_ms = int((self.clock.monotonic() - self.started_mono) * 1000)
        code = self.transport.get_returncode()
        stdout = self.protocol.stdout.text()
        stderr = self.protocol.stderr.text()
        result = self.protocol.stdout.result
        tokens, meta = result.tokens, result.meta
        exit_code = code if code is not None and code >= 0 else None
        if self._stop_reason is not None:
            status, error = self._stop_status, self._stop_reason
        elif code == 0:
            status, error = RunStatus.OK, None
        elif code is not None and code < 0:
            status = RunStatus.ERROR
            error = stderr.strip() or f"Killed by signal {_signal_name(-code)}"
        else:
            status, error = RunStatus.ERROR, stderr.strip() or f"Exit code {code}"
        return RunResult(
            status=status,
            duration_ms=duration_ms,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            error=error,
            tokens=tokens,
            result_meta=meta,
        )


class ProcessExecutor:
    def __init__(
        self,
        *,
        db_path: str,
        clock: Clock,
        db_url: str | None = None,
        python: str = sys.executable,
        secret_env: Iterable[str] = (),
    ) -> None:
        self.db_path = str(Path(db_path).resolve())
        # Jobs reach the runner's database through JR_DB_URL (PostgreSQL) or JR_DB_PATH
        # (SQLite); the other one is removed, so a stale value inherited from the runner's
        # own environment cannot send a job's client to another database.
        self.db_env = ("JR_DB_URL", db_url) if db_url is not None else ("JR_DB_PATH", self.db_path)
        self.clock = clock
        self.python = python
        # Built once: the runner's environment does not change while it runs. The runner's
        # own bin folder goes first on PATH, so shell and Node jobs can call the
        # `jeeves-runner state|queue` commands of this very installation.
        # Secrets (the gateway token, names in `secretEnv`) are not handed to jobs.
        self._base_env = child_environment(os.environ, secret_env)
        self._base_env["PATH"] = (
            str(Path(python).parent) + os.pathsep + self._base_env.get("PATH", os.defpath)
        )

    async def spawn(self, job: Job, run_id: int, log: RunLog | None = None) -> RunningProcess:
        from jeeves_runner.execution.launch import plan_launch  # it imports command_for

        launch = plan_launch(job, self.python)
        command = launch.argv
        # Ours are set last, so nothing inherited can override them.
        env = dict(self._base_env)
        env.update(launch.env)
        env.pop("JR_DB_PATH", None)
        env.pop("JR_DB_URL", None)
        env[self.db_env[0]] = self.db_env[1]
        env["JR_JOB_ID"] = job.id
        env["JR_RUN_ID"] = str(run_id)
        loop = asyncio.get_running_loop()
        # The runner's ends are read by threads (pipe_reader.py says why not by the loop).
        # os.pipe() makes both ends close-on-exec: only this child gets the write ends, as
        # its stdout and stderr.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ChildProtocol(loop, log),
                *command,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                env=env,
                cwd=launch.cwd,
                start_new_session=True,
            )
        except BaseException as exc:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            error = _spawn_error(exc, job, launch.cwd, command)
            if error is exc:
                raise
            raise error from None
        os.close(out_w)
        os.close(err_w)
        readers = []
        for fd, read_end in ((1, out_r), (2, err_r)):
            reader = PipeReader(
                read_end,
                loop,
                self.clock,
                functools.partial(protocol.pipe_data_received, fd),
                functools.partial(protocol.pipe_connection_lost, fd, None),
                target_bytes=widen_pipe(read_end) // 2,
                name=f"run-{run_id}-{'stdout' if fd == 1 else 'stderr'}",
            )
            reader.start()
            readers.append(reader)
        return RunningProcess(
            job=job,
            transport=transport,
            protocol=protocol,
            started_mono=self.clock.monotonic(),
            clock=self.clock,
            readers=tuple(readers),
        )


def _spawn_error(
    exc: BaseException, job: Job, cwd: str | None, command: list[str]
) -> BaseException:
    """What a failed start says (SpawnError, one sentence); anything else as it came."""
    what = job.script or command[0]
    if isinstance(exc, FileNotFoundError):
        if cwd is not None and not Path(cwd).is_dir():
            return SpawnError(f"Cannot start {what}: cwd {cwd} is not a folder")
        return SpawnError(missing_program(what, command[0]))
    if isinstance(exc, PermissionError):
        return SpawnError(f"Cannot start {what}: permission denied")
    if isinstance(exc, OSError):
        return SpawnError(f"Cannot start {what}: {exc.strerror or exc}")
    return exc


# Linux: a child writing fast blocks (and is switched out) each time its pipe's 64 KiB fill;
# 1 MiB (the default pipe-max-size for unprivileged processes) lets it run on while the
# runner reads. Kernel memory, used only while the child is ahead of the runner.
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032
PIPE_BYTES = 1024 * 1024
DEFAULT_PIPE_BYTES = 64 * 1024


def widen_pipe(fd: int) -> int:
    """Widens the pipe of `fd` to PIPE_BYTES where the system allows; its size after."""
    if not sys.platform.startswith("linux"):
        return DEFAULT_PIPE_BYTES
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)
    try:
        return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))
    except OSError:
        return DEFAULT_PIPE_BYTES


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
