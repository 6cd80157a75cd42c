"""Start the real runner (`python -m jeeves_runner start`) as a child process for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from jeeves_runner.store.opening import open_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class RunnerProcess:
    def __init__(self, folder: Path, **config: Any) -> None:
        self.folder = folder
        self.port = config.pop("port", None) or free_port()
        database = {} if "dbUrl" in config else {"dbPath": str(folder / "runner.sqlite")}
        self.config = {**database, "port": self.port, **config}
        self.config_path = folder / "config.json"
        self.config_path.write_text(json.dumps(self.config))
        self.log_path = folder / "runner.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> str:
        return str(self.config["dbPath"])

    @property
    def db_location(self) -> str:
        """The dbUrl, else the dbPath."""
        return str(self.config.get("dbUrl") or self.config["dbPath"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jeeves_runner", *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def add_job(self, job_id: str, schedule: str, script: str, *extra: str) -> None:
        done = self.cli(
            "add-job", "--id", job_id, "--name", job_id, "--schedule", schedule,
            "--script", script, *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def start(self, wait: bool = True) -> RunnerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jeeves_runner", "start", "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        if wait:
            wait_for(self.healthy, 30, f"runner on port {self.port} (log: {self.log()})")
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"runner exited with {self.proc.returncode}: {self.log()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL and reap (a finalizer's: no process, and no unreaped Popen whose
        ResourceWarning would fail whichever test the collector happens to run in)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def runs(self, job_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        store = open_store(self.db_location)
        try:
            return store.runs.list_runs(job_id, limit)
        finally:
            store.close()
