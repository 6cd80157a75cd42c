"""A job writing 1 GiB as fast as it can: the runner process keeps its full log to the cap
(head, tail, the dropped-lines line) and its RSS within 30 MB of what it was idle."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from acceptance.runner_process import RunnerProcess

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
NEVER = "0 0 1 1 *"


@pytest.mark.slow
def test_a_gigabyte_of_output_keeps_the_runner_within_30_mb_of_idle(tmp_path: Path) -> None:
    runner = RunnerProcess(tmp_path)
    runner.add_job("flood", NEVER, str(SCRIPTS / "flood.py"))
    runner.add_job("warm", NEVER, str(SCRIPTS / "ok_with_result.py"))
    runner.start()
    try:
        assert runner.proc is not None
        me = psutil.Process(runner.proc.pid)
        with httpx.Client(base_url=runner.url, timeout=300) as http:
            # Idle, after one small run: the threads, pools and caches a run uses exist.
            assert http.post("/jobs/warm/run").json()["result"]["status"] == "ok"
            http.get("/runs/1/log")
            idle = me.memory_info().rss
            peak = idle
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.02):
                    peak = max(peak, me.memory_info().rss)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                result = http.post("/jobs/flood/run").json()["result"]
            finally:
                done.set()
                sampler.join()
            assert result["status"] == "ok"
            (run,) = http.get("/jobs/flood/runs").json()["runs"]
            log = http.get(f"/runs/{run['id']}/log").content
    finally:
        assert runner.stop() == 0
    grown = peak - idle
    assert grown < 30 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"
    lines = log.decode().splitlines()
    kept = sum(len(line.split(" ", 2)[2].encode()) + 1 for line in lines if " runner " not in line)
    assert kept <= 10 * 1024 * 1024  # runLogMaxBytes' default
    assert lines[0].endswith(" stdout " + "x" * 65536 + "…[cut]")
    assert lines[-1].endswith(" stdout the end")
    (marker,) = [line for line in lines if " runner " in line]
    assert re.search(r"…\[[\d,]+ lines \([\d,]+ bytes\) dropped here", marker)
