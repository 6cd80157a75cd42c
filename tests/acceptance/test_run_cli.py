"""`runs`, `logs`, `cancel` and `trigger` (live output, --no-wait): the real CLI in a child
process against the real runner (in-process, serving on 127.0.0.1) and real jobs."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_runner import LiveRunner

RunCli = Callable[..., Any]
INSTANT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveRunner]:
    runner = LiveRunner(tmp_path, shutdownGraceMs=10_000).start()
    try:
        yield runner
    finally:
        runner.join()


@pytest.fixture
def config(tmp_path: Path, live: LiveRunner) -> str:
    path = tmp_path / "runner.json"
    path.write_text(json.dumps({"port": live.runner.port}), encoding="utf-8")
    return str(path)


def script(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def wait_finished(live: LiveRunner, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        run = httpx.get(f"{live.url}/runs/{run_id}").json()["run"]
        if run["status"] not in ("pending", "running"):
            return dict(run)
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.02)


@pytest.mark.slow
def test_trigger_no_wait_prints_the_run_id_then_runs_and_logs_show_it(
    live: LiveRunner, config: str, run_cli: RunCli, tmp_path: Path
) -> None:
    live.add_job(
        "two",
        script(tmp_path, "two.sh", "echo out one\necho err one >&2\necho out two\nexit 4\n"),
    )
    code, out, err = run_cli("trigger", "-i", "two", "--no-wait", "-c", config)
    assert (code, err) == (0, "")
    run_id = int(out.strip())
    assert wait_finished(live, run_id)["status"] == "error"

    code, out, err = run_cli("logs", str(run_id), "-c", config)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert all(re.match(rf"^{INSTANT} (stdout|stderr) ", line) for line in lines), lines
    assert sorted(line.split(" ", 1)[1] for line in lines) == [
        "stderr err one",
        "stdout out one",
        "stdout out two",
    ]
    code, out, _ = run_cli("logs", str(run_id), "--stream", "stdout", "--tail", "1", "-c", config)
    assert code == 0 and out.split(" ", 1)[1] == "stdout out two\n"

    # Following a run that has ended: its whole log, then the exit code of its status.
    code, out, err = run_cli("logs", str(run_id), "-f", "--stream", "stdout", "-c", config)
    assert code == 1
    assert [line.split(" ", 1)[1] for line in out.splitlines()] == [
        "stdout out one",
        "stdout out two",
    ]
    assert err == f"error: run {run_id} ended with status error\n"

    code, out, err = run_cli("runs", "two", "--status", "error", "-c", config)
    assert (code, err) == (0, "")
    (line,) = out.splitlines()
    assert re.fullmatch(rf"\s*{run_id}  error      {INSTANT}\s+\d+\.\ds  exit 4  err one", line)
    code, out, _ = run_cli("runs", "two", "--status", "ok", "-c", config)
    assert (code, out) == (0, "")
    code, out, _ = run_cli("runs", "--status", "error", "--json", "-c", config)
    assert [r["id"] for r in json.loads(out)["runs"]] == [run_id]


def test_trigger_shows_the_output_live_while_it_waits(
    live: LiveRunner, config: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    live.add_job(
        "waits",
        script(
            tmp_path,
            "waits.py",
            f"print('before', flush=True)\nopen({str(go)!r}).read()\nprint('after')\n",
        ),
    )
    cli = subprocess.Popen(
        [sys.executable, "-m", "jeeves_runner", "trigger", "-i", "waits", "-c", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.stdout is not None
        # Printed while the job is still blocked on the test: live, not at the end.
        assert cli.stdout.readline() == "before\n"
        with go.open("w") as pipe:
            pipe.write("go\n")
        out, err = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert (cli.returncode, err) == (0, "")
    assert out.splitlines()[0] == "after"
    assert re.fullmatch(r"Job 'waits': ok in \d+\.\ds, exit code 0", out.splitlines()[1])
    assert len(out.splitlines()) == 2  # the tails are not repeated


def test_cancel_a_running_run_and_again(
    live: LiveRunner, config: str, run_cli: RunCli, tmp_path: Path
) -> None:
    live.add_job("sleeper", script(tmp_path, "sleeper.sh", "exec sleep 300\n"))
    code, out, _ = run_cli("trigger", "-i", "sleeper", "--no-wait", "-c", config)
    run_id = int(out.strip())
    code, out, err = run_cli("cancel", str(run_id), "-c", config)
    assert (code, err) == (0, "")
    assert out == f"Run {run_id}: cancelled (Cancelled through the API)\n"
    code, out, err = run_cli("cancel", str(run_id), "-c", config)
    assert (code, out) == (1, "")
    assert err == f"error: Run {run_id} has already finished (cancelled)\n"
    code, _, err = run_cli("cancel", "nope", "-c", config)
    assert (code, err) == (2, "error: a run id is a whole number from 1, got 'nope'\n")
    code, _, err = run_cli("logs", "999", "-c", config)
    assert (code, err) == (1, "error: Run not found\n")
