"""Signals to the real runner process: a second SIGTERM/SIGINT means now, SIGHUP reloads and
never kills, and nothing starts once stopping began."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from runner_process import RunnerProcess, wait_for

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
IGNORES_TERM = str(SCRIPTS / "ignores_term.sh")
SLEEPS = str(SCRIPTS / "sleeps.sh")

pytestmark = pytest.mark.slow


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RunnerProcess]:
    proc = RunnerProcess(tmp_path, shutdownGraceMs=60_000, reconcileIntervalMs=0)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def groups_of_runs(runner: RunnerProcess) -> list[int]:
    """The process groups of the runner's children (each job leads its own group)."""
    assert runner.proc is not None
    groups = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid, pgid = int(fields[1]), int(fields[2])
        if ppid == runner.proc.pid and pgid == int(entry):
            groups.append(pgid)
    return groups


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_second_stop_signal_ends_every_run_now(runner: RunnerProcess, sig: int) -> None:
    for job_id in ("one", "two", "three"):
        # Ignores TERM: only a KILL ends it, so a first signal alone would wait 60 s.
        runner.add_job(job_id, "0 0 1 1 *", IGNORES_TERM)
    runner.start()
    with httpx.Client(base_url=runner.url, timeout=10) as http:
        for job_id in ("one", "two", "three"):
            assert http.post(f"/jobs/{job_id}/run?wait=false").status_code in (200, 202)
    wait_for(lambda: len(groups_of_runs(runner)) == 3, 10, "three running jobs")
    groups = groups_of_runs(runner)
    assert runner.proc is not None
    runner.proc.send_signal(sig)
    wait_for(lambda: "stop signal" in runner.log(), 10, "the first signal to be taken")
    time.sleep(0.3)
    assert runner.proc.poll() is None, "the first signal alone must wait for the runs"
    second = time.monotonic()
    runner.proc.send_signal(sig)
    code = runner.proc.wait(10)
    took = time.monotonic() - second
    assert code == 128 + sig
    assert took < 2.0, f"exit took {took:.2f} s after the second signal"
    for pgid in groups:
        assert not alive(pgid), f"process group {pgid} outlived the runner"
    for job_id in ("one", "two", "three"):
        (run,) = runner.runs(job_id)
        assert run["status"] == "error"
        assert run["error"] == "Killed at shutdown: a second stop signal asked to stop now"


def test_sighup_reloads_the_config_and_keeps_running(runner: RunnerProcess) -> None:
    runner.start()
    assert runner.proc is not None
    config = json.loads(runner.config_path.read_text())
    config["maxConcurrency"] = 9
    config["log"] = {"level": "debug"}
    config["runLogMaxBytes"] = 1 << 20
    config["port"] = runner.port + 1  # cannot change while running
    runner.config_path.write_text(json.dumps(config))
    runner.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config read again" in runner.log(), 10, "the reload")
    assert runner.proc.poll() is None
    line = next(json.loads(x) for x in runner.log().splitlines() if "config read again" in x)
    assert line["applied"] == ["log.level", "maxConcurrency", "runLogMaxBytes"]
    assert line["needs_restart"] == ["port"]
    assert httpx.get(f"{runner.url}/health", timeout=5).status_code == 200

    def audited() -> list[dict[str, object]]:
        entries = httpx.get(f"{runner.url}/audit", timeout=5).json()["entries"]
        return [e for e in entries if e["action"] == "config.reloaded"]

    wait_for(audited, 10, "the audit row of the reload")
    (entry,) = audited()
    assert (entry["actor"], entry["address"]) == ("signal:SIGHUP", "local")
    assert entry["target"] == str(runner.config_path)
    assert entry["after"] == {
        "applied": ["log.level", "maxConcurrency", "runLogMaxBytes"],
        "needsRestart": ["port"],
    }
    # A broken file is reported, not applied, and does not stop the runner.
    runner.config_path.write_text("{broken")
    runner.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config not applied" in runner.log(), 10, "the refused reload")
    assert runner.proc.poll() is None
    assert runner.stop() == 0


def test_runs_waiting_for_a_slot_never_start_once_stopping_began(tmp_path: Path) -> None:
    runner = RunnerProcess(tmp_path, maxConcurrency=1, shutdownGraceMs=60_000)
    runner.add_job("long", "0 0 1 1 *", SLEEPS)
    runner.add_job("waits", "0 0 1 1 *", SLEEPS)
    runner.start()
    try:
        with httpx.Client(base_url=runner.url, timeout=10) as http:
            assert http.post("/jobs/long/run?wait=false").status_code in (200, 202)
            wait_for(lambda: runner.runs("long")[0]["status"] == "running", 10, "the long run")
            assert http.post("/jobs/waits/run?wait=false").status_code in (200, 202)
            wait_for(lambda: runner.runs("waits"), 10, "the waiting run's row")
        assert runner.stop() == 0
    finally:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.proc.kill()
    (long_run,) = runner.runs("long")
    assert long_run["status"] == "ok"  # the running one finished within the grace
    (waiting,) = runner.runs("waits")
    assert waiting["status"] == "error"
    assert waiting["error"] == "The runner stopped before this run started"
    assert "finished" not in (waiting["stdout"] or "")
