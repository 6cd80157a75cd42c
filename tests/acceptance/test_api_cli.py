"""`status` and `trigger`: the real CLI in a child process, against a live API over a scripted
control, against the real runner process, and against a closed port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))  # the live API helpers

from fake_control import NOW, FakeControl
from live_api import LiveApi, wait_for

from acceptance.runner_process import RunnerProcess
from jeeves_runner.api.app import create_app
from jeeves_runner.clock import FakeClock
from jeeves_runner.models import OverlapPolicy, RunResult, RunStatus
from jeeves_runner.store import SqliteStore

RunCli = Callable[..., Any]  # tests/conftest.py's run_cli: (*args, cwd=, env=) -> (code, out, err)
LONG_JOB_S = 6.0  # longer than httpx's default 5 s read timeout


@pytest.fixture
def control(store: SqliteStore) -> Iterator[FakeControl]:
    fake = FakeControl(store, FakeClock(NOW))
    try:
        yield fake
    finally:
        fake.release_all()


@pytest.fixture
def live_api(control: FakeControl) -> Iterator[LiveApi]:
    with LiveApi(create_app(control, clock=control.clock)) as api:
        yield api


def config_for(tmp_path: Path, port: int, host: str = "127.0.0.1") -> str:
    path = tmp_path / "runner.json"
    path.write_text(json.dumps({"host": host, "port": port}), encoding="utf-8")
    return str(path)


@pytest.fixture
def config(tmp_path: Path, live_api: LiveApi) -> str:
    return config_for(tmp_path, live_api.port)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on: bound (so no one else takes it) but never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_status_prints_the_stats(run_cli: RunCli, config: str, control: FakeControl) -> None:
    control.add_job("a")
    control.add_job("b")
    control.failed_registrations = 1
    code, out, err = run_cli("status", "-c", config)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Jobs:               2",
        "Running now:        0",
        "Failed to schedule: 1",
        "OK, last hour:      0",
        "Failed, last hour:  0",
    ]


def test_status_json_prints_the_raw_body(
    run_cli: RunCli, config: str, control: FakeControl
) -> None:
    control.add_job("a")
    code, out, _ = run_cli("status", "--json", "-c", config)
    assert code == 0
    assert json.loads(out) == {
        "totalJobs": 1,
        "running": 0,
        "failedRegistrations": 0,
        "okLastHour": 0,
        "errorsLastHour": 0,
    }


def test_status_reaches_a_runner_listening_on_every_address(
    run_cli: RunCli, tmp_path: Path, live_api: LiveApi
) -> None:
    # host 0.0.0.0 is where the runner listens, not an address to connect to: use loopback.
    code, out, _ = run_cli("status", "--json", "-c", config_for(tmp_path, live_api.port, "0.0.0.0"))
    assert code == 0
    assert json.loads(out)["totalJobs"] == 0


def test_trigger_ok(run_cli: RunCli, config: str, control: FakeControl) -> None:
    control.add_job("sync")
    control.results["sync"] = RunResult(
        status=RunStatus.OK, duration_ms=5432, exit_code=0, stdout="Synced 15 messages\n"
    )
    code, out, err = run_cli("trigger", "-i", "sync", "-c", config)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Job 'sync': ok in 5.4s, exit code 0",
        "--- stdout ---",
        "Synced 15 messages",
    ]


def test_trigger_failed_run_exits_1(run_cli: RunCli, config: str, control: FakeControl) -> None:
    control.add_job("flaky")
    control.results["flaky"] = RunResult(
        status=RunStatus.ERROR,
        duration_ms=120,
        exit_code=3,
        stderr="bad input\n",
        error="bad input",
    )
    code, out, err = run_cli("trigger", "-i", "flaky", "-c", config)
    assert code == 1
    assert err == "error: the run of 'flaky' ended with status error\n"
    assert out.splitlines() == [
        "Job 'flaky': error in 0.1s, exit code 3",
        "Error: bad input",
        "--- stderr ---",
        "bad input",
    ]


def test_trigger_unknown_job(run_cli: RunCli, config: str) -> None:
    code, out, err = run_cli("trigger", "-i", "nope", "-c", config)
    assert (code, out) == (1, "")
    assert err == "error: Job 'nope' not found\n"


def test_trigger_job_already_running(run_cli: RunCli, config: str, control: FakeControl) -> None:
    control.add_job("sync", overlap_policy=OverlapPolicy.SKIP)
    gate = control.hold("sync")
    first = threading.Thread(target=run_cli, args=("trigger", "-i", "sync", "-c", config))
    first.start()
    try:
        wait_for(lambda: control.running_count == 1, "the first run to start")
        code, _, err = run_cli("trigger", "-i", "sync", "-c", config)
        assert code == 1
        assert err == "error: Job 'sync' is already running\n"
    finally:
        gate.set()
        first.join(30)


def test_ctrl_c_on_trigger_says_the_run_goes_on(
    config: str, control: FakeControl, tmp_path: Path
) -> None:
    control.add_job("long")
    gate = control.hold("long")
    child = subprocess.Popen(
        [sys.executable, "-m", "jeeves_runner", "trigger", "-i", "long", "-c", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: control.running_count == 1, "the run to start")
        # Interrupted while it follows the run's output (not while it asks for the run).
        wait_for(lambda: control.log_follows >= 1, "the CLI to follow the run")
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        assert (child.returncode, out) == (130, "")
        (run,) = control.gateway.store.runs.list_runs("long", 5)
        assert err == (
            f"error: interrupted: run {run['id']} of 'long' goes on in the runner; stop it "
            f"with 'jeeves-runner cancel {run['id']}', see it with "
            f"'jeeves-runner logs {run['id']}'\n"
        )
        assert control.running_count == 1  # the CLI leaving does not end the run
    finally:
        gate.set()
        if child.poll() is None:
            child.kill()
            child.wait()
        # Closed here too when communicate() timed out: a pipe left for the collector fails
        # whichever later test of this worker it is found in (unraisable ResourceWarning).
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.slow
def test_trigger_waits_for_a_long_job(run_cli: RunCli, config: str, control: FakeControl) -> None:
    control.add_job("long")
    gate = control.hold("long")
    release = threading.Timer(LONG_JOB_S, gate.set)
    release.start()
    try:
        code, out, err = run_cli("trigger", "-i", "long", "-c", config)
    finally:
        release.cancel()
    assert (code, err) == (0, "")
    assert out.startswith("Job 'long': ok")


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["trigger", "-i", "x"]])
def test_unreachable_runner(
    run_cli: RunCli, tmp_path: Path, closed_port: int, command: list[str]
) -> None:
    code, out, err = run_cli(*command, "-c", config_for(tmp_path, closed_port))
    assert (code, out) == (2, "")
    assert err == (
        f"error: the runner is not reachable at http://127.0.0.1:{closed_port} "
        "(connection refused); is it started?\n"
    )


@pytest.mark.slow
def test_against_the_real_runner(run_cli: RunCli, tmp_path: Path) -> None:
    """The same API and CLI in front of the real runner process."""
    script = tmp_path / "hello.sh"
    script.write_text("echo hello from the job\n", encoding="utf-8")
    never = "0 0 1 1 *"  # fires once a year: only manual runs happen here
    # Reconcile off: a job added by another process must still show in GET /jobs at once.
    runner = RunnerProcess(tmp_path, reconcileIntervalMs=0)
    runner.add_job("hello", never, str(script))
    runner.start()
    try:
        code, out, err = run_cli("trigger", "-i", "hello", "-c", str(runner.config_path))
        assert (code, err) == (0, "")
        # The job's output as it printed it, then the result (its tails not repeated).
        live, summary = out.splitlines()
        assert live == "hello from the job"
        assert summary.startswith("Job 'hello': ok in ")

        with httpx.Client(base_url=runner.url, timeout=10) as http:
            (job,) = http.get("/jobs").json()["jobs"]
            assert (job["id"], job["last_status"], job["enabled"]) == ("hello", "ok", 1)
            (run,) = http.get("/jobs/hello/runs").json()["runs"]
            assert (run["status"], run["trigger"], run["exit_code"]) == ("ok", "manual", 0)
            runner.add_job("later", never, str(script))
            assert [j["id"] for j in http.get("/jobs").json()["jobs"]] == ["hello", "later"]
            assert http.post("/jobs/later/disable").json() == {"ok": True}
            assert http.get("/jobs/later").json()["job"]["enabled"] == 0
            missing = http.post("/jobs/nope/run")
            assert (missing.status_code, missing.json()) == (404, {"error": "Job 'nope' not found"})

        code, out, _ = run_cli("status", "--json", "-c", str(runner.config_path))
        assert code == 0
        stats = json.loads(out)
        assert (stats["totalJobs"], stats["running"], stats["okLastHour"]) == (2, 0, 1)
    finally:
        assert runner.stop() == 0
