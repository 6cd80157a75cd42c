"""Start-up time, memory and idle CPU of the real runner process with many jobs; prints one
JSON object.

For each size (1,000 then 100,000 enabled jobs by default) a fresh database is made and the
jobs are inserted in bulk (one executemany in one transaction) before the runner starts.
Then `python -m jeeves_runner start -c config.json` runs in a temp folder (timezone UTC,
log.level info, log to a file) and we measure:

- start-up: process start -> the "jobs scheduled" line in the log (it must say
  scheduled=N) and -> the first `GET /health` answered 200 (the API starts after the
  schedule is built, so this is the figure the target applies to);
- RSS right after start-up and again after the idle window (psutil);
- idle CPU: the process's user+system CPU time over a 10 s wall window that starts 1 s after
  /health answered, as a percentage of one core;
- what one periodic reconcile check costs (the `schedule_fingerprint` aggregate that the
  reconcile loop runs every reconcileIntervalMs, default 60 s), timed in this process on the
  same file, and that cost spread over the interval.

Schedules (none fires during the measurement; all read in UTC): a few hundred distinct
expressions, assigned round-robin:
- daily `M H * * *` and, with a seconds field, `S M H * * *`, and weekday / twice-a-month
  variants, only for hours at least 4 h away from the current UTC hour (either side);
- yearly `M H D Mon *` for months other than the current and the next one.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,100000] [--idle-seconds 10]

Targets (at 100,000 jobs): start-up <= 5 s, RSS <= 150 MB, idle CPU <= 1 % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from harness import free_port, health_ok, start_runner, stop_runner
from jeeves_runner.store import SqliteStore

TARGETS = {"startup_s": 5.0, "rss_mb": 150.0, "idle_cpu_pct": 1.0}
RECONCILE_INTERVAL_S = 60.0  # the default reconcileIntervalMs
_JOB_SQL = (
    "INSERT INTO jobs (id, name, schedule, script, type, description, enabled, timeout_ms, "
    "overlap_policy, on_failure, on_success, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, 'script', ?, 1, ?, ?, NULL, NULL, ?, ?)"
)


def schedules(now: datetime, distinct: int = 400) -> tuple[list[str], dict[str, int]]:
    """Distinct expressions that cannot fire within hours of `now` (UTC). Beyond the 400 of
    the base mix, `distinct` adds more `S M H * * *` and yearly ones (a worst case for the
    parse cache, which holds 8,192 expressions)."""
    hours = [(now.hour + k) % 24 for k in range(4, 21)]  # 4 h .. 20 h ahead = >= 4 h away
    months = [m for m in range(1, 13) if m not in (now.month, now.month % 12 + 1)]
    daily = [f"{(7 * i) % 60} {hours[i % len(hours)]} * * *" for i in range(240)]
    with_seconds = [
        f"{(11 * i) % 60} {(13 * i) % 60} {hours[(3 * i) % len(hours)]} * * *" for i in range(60)
    ]
    weekly = [f"{(17 * i) % 60} {hours[(5 * i) % len(hours)]} * * MON-FRI" for i in range(20)] + [
        f"{(19 * i) % 60} {hours[(7 * i) % len(hours)]} 1,15 * *" for i in range(20)
    ]
    yearly = [
        f"{(23 * i) % 60} {(i * 5) % 24} {1 + (i % 28)} {months[i % len(months)]} *"
        for i in range(60)
    ]
    families = {
        "daily_M_H": daily,
        "daily_with_seconds_S_M_H": with_seconds,
        "weekday_or_1st_15th": weekly,
        "yearly_M_H_D_Mon": yearly,
    }
    exprs = list(dict.fromkeys(e for group in families.values() for e in group))
    if distinct > len(exprs):
        seen = set(exprs)
        extra: list[str] = []

        def more() -> Any:
            for h in hours:
                for m in range(60):
                    for sec in range(60):
                        yield f"{sec} {m} {h} * * *"
            for mon in months:
                for day in range(1, 29):
                    for h in range(24):
                        for m in range(60):
                            yield f"{m} {h} {day} {mon} *"

        for expr in more():
            if len(exprs) + len(extra) >= distinct:
                break
            if expr not in seen:
                extra.append(expr)
        families["extra_S_M_H_and_yearly"] = extra
        exprs += extra
    return exprs[:distinct], {k: len(set(v)) for k, v in families.items()}


def build_db(path: Path, jobs: int, exprs: list[str], script: str) -> float:
    """Bulk insert; returns seconds taken."""
    began = time.perf_counter()
    store = SqliteStore(path)  # creates the schema
    created = "2026-01-01T00:00:00.000Z"
    rows = (
        (
            f"job-{i:06d}",
            f"Scale job {i}",
            exprs[i % len(exprs)],
            script,
            "A job that never fires during the benchmark" if i % 3 else None,
            60_000 if i % 2 else None,
            ("skip", "queue", "allow")[i % 3],
            created,
            created,
        )
        for i in range(jobs)
    )
    with store.db.transaction() as conn:
        conn.executemany(_JOB_SQL, rows)
    store.close()
    return time.perf_counter() - began


def fingerprint_cost_ms(path: Path, rounds: int = 7) -> float:
    """Median ms of the reconcile loop's cheap check, on a warm connection."""
    store = SqliteStore(path)
    try:
        store.jobs.schedule_fingerprint()
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            store.jobs.schedule_fingerprint()
            times.append(time.perf_counter() - t)
    finally:
        store.close()
    times.sort()
    return times[len(times) // 2] * 1000


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def measure(size: int, idle_s: float, exprs: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jr-bench-scale-") as tmp:
        folder = Path(tmp)
        script = folder / "noop.sh"
        script.write_text("#!/bin/bash\nexit 0\n", encoding="utf-8")
        db_path = folder / "runner.sqlite"
        insert_s = build_db(db_path, size, exprs, str(script))
        log_path = folder / "runner.log"
        port = free_port()
        config = {
            "port": port,
            "host": "127.0.0.1",
            "dbPath": str(db_path),
            "timezone": "UTC",
            "log": {"level": "info", "file": str(log_path)},
        }
        config_path = folder / "config.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")

        stderr_path = folder / "runner.stderr"
        t0 = time.time()
        proc = start_runner(config_path, folder, stderr_path)
        try:
            ps = psutil.Process(proc.pid)
            scheduled_line: dict[str, Any] | None = None
            t_log_seen = t_health = None
            deadline = time.monotonic() + 120
            while t_health is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "runner did not come up: " + stderr_path.read_text(errors="replace")[-2000:]
                    )
                if scheduled_line is None:
                    for line in read_log(log_path):
                        if line.get("event") == "jobs scheduled":
                            scheduled_line, t_log_seen = line, time.time()
                if health_ok(port):
                    t_health = time.time()
                else:
                    time.sleep(0.01)
            while scheduled_line is None and time.monotonic() < deadline:
                for line in read_log(log_path):
                    if line.get("event") == "jobs scheduled":
                        scheduled_line, t_log_seen = line, time.time()
                time.sleep(0.01)
            rss_start = ps.memory_info().rss
            assert scheduled_line is not None and t_log_seen is not None
            logged_at = datetime.fromisoformat(
                str(scheduled_line["timestamp"]).replace("Z", "+00:00")
            ).timestamp()

            time.sleep(1.0)
            cpu0, wall0 = ps.cpu_times(), time.monotonic()
            time.sleep(idle_s)
            cpu1, wall1 = ps.cpu_times(), time.monotonic()
            rss_end = ps.memory_info().rss
            used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            idle_pct = 100 * used / (wall1 - wall0)
            threads = ps.num_threads()
        finally:
            stop_began = time.monotonic()
            stop_runner(proc)
            stop_s = time.monotonic() - stop_began
        conn = sqlite3.connect(db_path)
        try:
            runs = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
        finally:
            conn.close()
        check_ms = fingerprint_cost_ms(db_path)
        db_mb = db_path.stat().st_size / 2**20

    return {
        "jobs": size,
        "bulk_insert_s": round(insert_s, 2),
        "db_mb": round(db_mb, 1),
        "startup_to_jobs_scheduled_log_s": round(logged_at - t0, 3),
        "startup_to_log_line_seen_s": round(t_log_seen - t0, 3),
        "startup_to_health_200_s": round(t_health - t0, 3),
        "scheduled_in_log": scheduled_line.get("scheduled"),
        "failed_in_log": scheduled_line.get("failed"),
        "rss_after_startup_mb": round(rss_start / 2**20, 1),
        "rss_after_idle_mb": round(rss_end / 2**20, 1),
        "idle_cpu_pct_of_one_core": round(idle_pct, 3),
        "idle_window_s": round(wall1 - wall0, 2),
        "threads": threads,
        "reconcile_check_ms": round(check_ms, 2),
        "reconcile_check_cpu_pct_amortized": round(100 * check_ms / 1000 / RECONCILE_INTERVAL_S, 4),
        "runs_recorded_during_measurement": runs,
        "sigterm_to_exit_s": round(stop_s, 2),
        "runner_exit_code": proc.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="comma-separated job counts")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--distinct", type=int, default=400, help="distinct schedule expressions (>= 400)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    now = datetime.now(UTC)
    exprs, families = schedules(now, max(args.distinct, 400))
    results = [measure(size, args.idle_seconds, exprs) for size in sizes]
    largest = max(results, key=lambda r: r["jobs"])
    targets = {
        "jobs": largest["jobs"],
        "all_scheduled": largest["scheduled_in_log"] == largest["jobs"]
        and largest["failed_in_log"] == 0,
        "startup_le_5s": largest["startup_to_health_200_s"] <= TARGETS["startup_s"],
        "rss_le_150mb": max(largest["rss_after_startup_mb"], largest["rss_after_idle_mb"])
        <= TARGETS["rss_mb"],
        "idle_cpu_le_1pct": largest["idle_cpu_pct_of_one_core"] <= TARGETS["idle_cpu_pct"],
        "nothing_fired": largest["runs_recorded_during_measurement"] == 0,
    }
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "cpus": os.cpu_count(),
                "utc_hour_at_start": now.hour,
                "distinct_schedules": len(exprs),
                "schedule_families": families,
                "results": results,
                "targets_met": targets,
            }
        )
    )


if __name__ == "__main__":
    main()
