"""The real runner while another process holds SQLite's write lock; prints one JSON object.

Three jobs fire every second (a script that exits at once). After a few quiet seconds a second
process takes the write lock (`BEGIN IMMEDIATE`) and holds it for `--lock-seconds` (10 by
default). Throughout, this process asks `GET /health` every 20 ms on one keep-alive
connection. Figures:

- `/health` latency p50 / p99 / max during the lock (target p99 <= 50 ms);
- how late the scheduler took each fire up (the `fire taken up` debug line: the loop's timer
  lateness, before the fire's rows and its final wait), p99 before the lock (the floor) and
  during it (target <= floor + 20 ms): timers keep their schedule while writes wait;
- fires recorded / expected over the whole run, per job (target 100 %): every second from the
  first fire to the last has a row (a collapsed skip row counts its `skipped_count`).

    .venv/bin/python benchmarks/bench_db_lock.py [--lock-seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import free_port, health_ok, start_runner, stop_runner
from jeeves_runner.models import Job, format_instant
from jeeves_runner.scheduling.loop import EARLY_S
from jeeves_runner.store import SqliteStore

LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock-seconds", type=float, default=10.0)
    parser.add_argument("--quiet-seconds", type=float, default=5.0)
    parser.add_argument("--keep", help="copy the database here at the end")
    args = parser.parse_args()
    parser_keep = args.keep
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "runner.sqlite"
        script = folder / "quick.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
        store = SqliteStore(db)
        now = format_instant(datetime.now().astimezone())
        for job_id in ("a", "b", "c"):
            store.jobs.add_job(
                Job(id=job_id, name=job_id, schedule="* * * * * *", script=str(script)), now
            )
        store.close()
        port = free_port()
        log_file = folder / "runner.log"
        config = folder / "config.json"
        config.write_text(
            json.dumps(
                {
                    "dbPath": str(db),
                    "port": port,
                    "timezone": "UTC",
                    "reconcileIntervalMs": 0,
                    "log": {"level": "debug", "file": str(log_file)},
                }
            )
        )
        proc = start_runner(config, folder, folder / "stderr.txt")
        try:
            deadline = time.monotonic() + 30
            while not health_ok(port):
                if time.monotonic() > deadline:
                    raise SystemExit("the runner did not start")
                time.sleep(0.05)
            time.sleep(args.quiet_seconds)
            holder = subprocess.Popen(
                [sys.executable, "-c", LOCK_HOLDER, str(db), str(args.lock_seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            lock_start = time.time()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            health_ms: list[float] = []
            statuses: dict[int, int] = {}
            while holder.poll() is None:
                began = time.perf_counter()
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                health_ms.append((time.perf_counter() - began) * 1000)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                time.sleep(0.02)
            lock_end = time.time()
            conn.close()
            time.sleep(3)  # the held-up fires are written, the next ones run
        finally:
            stop_runner(proc)
        fires: list[tuple[float, float]] = []
        for line in log_file.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "fire taken up":
                fires.append((parse_time(event["timestamp"]), float(event["lateness_ms"])))
        # Taken up EARLY_S before the instant when on time: lateness counts from that wake.
        fires = [(at, ms + EARLY_S * 1000) for at, ms in fires]
        quiet_from = lock_start - args.quiet_seconds + 2  # past start-up's first fires
        before = [ms for at, ms in fires if quiet_from <= at < lock_start]
        during = [ms for at, ms in fires if lock_start <= at <= lock_end]
        if parser_keep:
            import shutil

            shutil.copy(db, parser_keep)
        reader = sqlite3.connect(db)
        recorded: dict[str, Any] = {}
        for job_id in ("a", "b", "c"):
            rows = reader.execute(
                "SELECT status, started_at, last_skipped_at, skipped_count FROM runs "
                "WHERE job_id = ?",
                (job_id,),
            ).fetchall()
            firsts = [parse_time(r[1]) for r in rows]
            lasts = [parse_time(r[2] or r[1]) for r in rows]
            expected = round(max(lasts) - min(firsts)) + 1
            count = sum(int(r[3] or 1) if r[0] == "skipped" else 1 for r in rows)
            open_rows = sum(r[0] in ("pending", "running") for r in rows)
            recorded[job_id] = {"recorded": count, "expected": expected, "open": open_rows}
        reader.close()
        result = {
            "lock_seconds": args.lock_seconds,
            "health_during_lock": {
                "requests": len(health_ms),
                "statuses": statuses,
                "p50_ms": round(statistics.median(health_ms), 3),
                "p99_ms": pct(health_ms, 0.99),
                "max_ms": round(max(health_ms), 3),
                "target": "p99_ms <= 50",
            },
            "fire_lateness_ms": {
                "floor_p99": pct(before, 0.99) if before else None,
                "during_lock_p99": pct(during, 0.99) if during else None,
                "during_lock_max": round(max(during), 3) if during else None,
                "fires_during_lock": len(during),
                "target": "during_lock_p99 <= floor_p99 + 20",
            },
            "fires": recorded,
        }
        result["meets_targets"] = bool(
            result["health_during_lock"]["p99_ms"] <= 50  # type: ignore[index]
            and during
            and before
            and pct(during, 0.99) <= pct(before, 0.99) + 20
            and all(v["recorded"] == v["expected"] and v["open"] == 0 for v in recorded.values())
        )
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
