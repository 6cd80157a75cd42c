"""Failover with PostgreSQL and a standby runner; prints one JSON object.

Runner A (`start`, `dbUrl`) fires a job every second. A standby B is what README's
"PostgreSQL" section suggests: `start` in a loop (what `Restart=always` does), refused while A
holds the schema's lock, trying again every 200 ms. A is killed with SIGKILL; the server ends
its session, so its lock goes with it, and B gets in on its next try.

Measured: from the kill to B's /health, and to the first fire B runs (a run started after
the kill; rows A made ahead of fires it never started do not count). Fires due in between
are not run late (as after any restart) and are counted as `seconds_without_a_fire`.
Afterwards: no second has two runs, and no run is left `running` (B closes A's as "the
runner stopped during this run").

    .venv/bin/python benchmarks/bench_failover.py --db-url postgresql://root@127.0.0.1:5432/test

Target (issue 12, for cluster mode's leader): the next fire within 2 s of the kill.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import PostgresSchema, free_port, health_ok, stop_runner
from jeeves_runner.models import Job, parse_instant
from jeeves_runner.store.opening import open_store

TARGET_S = 2.0
RETRY_S = 0.2


def write_config(folder: Path, url: str, name: str) -> tuple[Path, int]:
    port = free_port()
    config = {
        "port": port,
        "dbUrl": url,
        "timezone": "UTC",
        "log": {"level": "warn", "file": str(folder / f"{name}.log")},
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path, port


def start(config: Path, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jeeves_runner", "start", "-c", str(config)],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Standby(threading.Thread):
    """`start` again whenever it exits (refused: exit 1), until told to stop."""

    def __init__(self, config: Path, folder: Path) -> None:
        super().__init__(daemon=True)
        self.config, self.folder = config, folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.attempts = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.proc = start(self.config, self.folder)
            self.attempts += 1
            while self.proc.poll() is None and not self._done.is_set():
                time.sleep(0.02)
            if self._done.is_set():
                return
            time.sleep(RETRY_S)

    def stop(self) -> int | None:
        self._done.set()
        if self.ident is not None:  # started
            self.join(10)
        return stop_runner(self.proc) if self.proc is not None else None


def executed(run: dict[str, Any]) -> bool:
    """A run whose child ran: not a skip, and not a row made ahead of a fire that the killed
    runner never started (the standby closes those as stopped)."""
    if run["status"] in ("skipped", "pending", "running") or not run["started_at"]:
        return False
    return "stopped" not in (run["error"] or "")


def failover(
    runner_a: subprocess.Popen[bytes],
    port_a: int,
    standby: Standby,
    port_b: int,
    store: Any,
    before: float,
) -> tuple[int | None, float | None, float | None, float]:
    """A up, the standby trying, A killed: (standby's exit code, seconds to its /health,
    seconds to its first fire, when A was killed)."""
    deadline = time.monotonic() + 30
    while not health_ok(port_a):
        if runner_a.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("runner A did not come up")
        time.sleep(0.02)
    standby.start()
    time.sleep(before)
    killed_at = time.time()
    runner_a.send_signal(signal.SIGKILL)
    runner_a.wait()
    health_s: float | None = None
    while time.time() - killed_at < 30:
        if health_ok(port_b):
            health_s = time.time() - killed_at
            break
        time.sleep(0.01)
    first_fire_s: float | None = None
    while time.time() - killed_at < 30 and first_fire_s is None:
        started = [
            parse_instant(r["started_at"]).timestamp()
            for r in store.runs.list_runs("tick", 100)
            if executed(r)
        ]
        after = [t for t in started if t > killed_at]
        if after:
            first_fire_s = min(after) - killed_at
        time.sleep(0.05)
    time.sleep(2)
    return standby.stop(), health_s, first_fire_s, killed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--before", type=float, default=5.0, help="seconds A runs first")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp,
        PostgresSchema(args.db_url) as url,
    ):
        folder = Path(tmp)
        script = folder / "tick.sh"
        script.write_text("#!/usr/bin/env bash\necho tick\n", encoding="utf-8")
        script.chmod(0o755)
        store = open_store(url)
        job = Job(id="tick", name="tick", schedule="* * * * * *", script=str(script))
        store.jobs.add_job(job, "2026-01-01T00:00:00.000Z")
        config_a, port_a = write_config(folder, url, "a")
        config_b, port_b = write_config(folder, url, "b")
        runner_a = start(config_a, folder)
        standby = Standby(config_b, folder)
        try:
            exit_b, health_s, first_fire_s, killed_at = failover(
                runner_a, port_a, standby, port_b, store, args.before
            )
        finally:
            if runner_a.poll() is None:
                runner_a.kill()
                runner_a.wait()
            standby.stop()
        runs = store.runs.list_runs("tick", 10_000)
        store.close()
    seconds = Counter(
        math.floor(parse_instant(r["started_at"]).timestamp()) for r in runs if executed(r)
    )
    kill_second = math.floor(killed_at)
    gap = 0
    if first_fire_s is not None:
        gap = sum(
            1
            for s in range(kill_second + 1, math.floor(killed_at + first_fire_s))
            if s not in seconds
        )
    result: dict[str, Any] = {
        "benchmark": "failover",
        "standby_attempts": standby.attempts,
        "kill_to_standby_health_s": None if health_s is None else round(health_s, 3),
        "kill_to_next_fire_s": None if first_fire_s is None else round(first_fire_s, 3),
        "seconds_without_a_fire": gap,
        "seconds_with_two_runs": sum(1 for n in seconds.values() if n > 1),
        "runs_left_running": sum(1 for r in runs if r["status"] in ("running", "pending")),
        "closed_as_stopped": sum(
            1 for r in runs if r["status"] == "error" and "stopped" in (r["error"] or "")
        ),
        "standby_exit_code": exit_b,
        "target_s": TARGET_S,
        "meets_target": first_fire_s is not None and first_fire_s <= TARGET_S,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
