"""Job files and live edits (issue 10).

1. `jeeves-runner apply` (the real CLI, a child process) of a folder of 10,000 TOML job files
   into a fresh database, then a second `apply` with nothing changed (which must write nothing:
   the database file's size and mtime are compared).
2. An edit through the API of the real runner (in this process, on its own loop in a thread):
   PATCH a job's schedule, and from the 200 measure how long until the scheduler's next fire
   for the job is the new schedule's. Median over 50 edits.

Prints its figures as JSON.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from jeeves_runner.config import Config
from jeeves_runner.execution import event_loop
from jeeves_runner.runner import Runner
from jeeves_runner.scheduling.cron import parse

FILES = 10_000
EDITS = 50


def bench_apply(folder: Path) -> dict[str, Any]:
    jobs = folder / "jobs"
    jobs.mkdir()
    script = folder / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    for i in range(FILES):
        (jobs / f"job-{i:05d}.toml").write_text(
            f'name = "Job {i}"\nschedule = "{i % 60} * * * *"\nscript = "../job.sh"\n'
            f'tags = ["bench"]\nenv = {{ N = "{i}" }}\n'
        )
    config = folder / "config.json"
    config.write_text(json.dumps({"dbPath": "runner.sqlite", "jobsDir": "jobs"}))
    first = _timed_cli(config, folder)
    db = folder / "runner.sqlite"
    stat = db.stat()
    second = _timed_cli(config, folder)
    after = db.stat()
    return {
        "files": FILES,
        "first_apply_s": round(first, 3),
        "first_target_s": 5.0,
        "second_apply_s": round(second, 3),
        "second_target_s": 1.0,
        "second_wrote_nothing": (stat.st_size, stat.st_mtime_ns)
        == (after.st_size, after.st_mtime_ns),
    }


def _timed_cli(config: Path, folder: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jeeves_runner", "apply", "-c", str(config)],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"apply failed: {done.stderr}")
    return elapsed


def bench_live_edit(folder: Path) -> dict[str, Any]:
    config = Config.model_validate({"dbPath": str(folder / "live.sqlite"), "timezone": "UTC"})
    runner = Runner(config.model_copy(update={"port": 0}))
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = asyncio.Event()
        await runner.start()
        ready.set()
        await holder["stop"].wait()
        await runner.stop()

    thread = threading.Thread(target=lambda: event_loop.run(main()), daemon=True)
    thread.start()
    ready.wait(30)
    loop: asyncio.AbstractEventLoop = holder["loop"]
    script = folder / "job.sh"
    url = f"http://127.0.0.1:{runner.port}"
    latencies: list[float] = []
    with httpx.Client(base_url=url, trust_env=False) as http:
        http.post(
            "/jobs",
            json={"id": "e", "name": "E", "schedule": "0 0 1 1 *", "script": str(script)},
        ).raise_for_status()
        for i in range(EDITS):
            schedule = f"{i % 60} {i % 24} * * *"
            expected = parse(schedule).next_after(datetime.now(UTC), UTC)
            assert expected is not None
            http.patch("/jobs/e", json={"schedule": schedule}).raise_for_status()
            answered = time.perf_counter()
            while True:
                due = asyncio.run_coroutine_threadsafe(_next_due(runner), loop).result(5)
                if due is not None and abs(due - expected.timestamp()) < 0.001:
                    break
            latencies.append((time.perf_counter() - answered) * 1000)
    loop.call_soon_threadsafe(holder["stop"].set)
    thread.join(60)
    return {
        "edits": EDITS,
        "median_ms": round(statistics.median(latencies), 3),
        "max_ms": round(max(latencies), 3),
        "target_median_ms": 100,
    }


async def _next_due(runner: Runner) -> float | None:
    return runner.scheduler.fires.next_due()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        apply = bench_apply(folder)
        live = bench_live_edit(folder)
    apply["meets_target"] = (
        apply["first_apply_s"] <= 5.0
        and apply["second_apply_s"] <= 1.0
        and apply["second_wrote_nothing"]
    )
    live["meets_target"] = live["median_ms"] <= 100
    print(json.dumps({"apply_10k": apply, "live_edit": live}, indent=2))


if __name__ == "__main__":
    main()
