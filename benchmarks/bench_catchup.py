"""Catch-up after downtime: 1,000 jobs with `catchup = "all"` whose runner was down an hour;
prints one JSON object.

The hour down is simulated the way the runner would have left it: each job's stored last
fired instant (`job_fire_marks`) is written an hour back before the start. Each job fires
every 20 minutes, so each has 3 missed instants in that hour (all within catchup_max 10 and
the 24 h window): 3,000 catch-up runs of `sleep 0.1` and 1,000 `missed` rows.

Measured, with the real runner (`python -m jeeves_runner start`):
- `health_after_start_s`: from the process start to the first 200 of /health (target <= 2 s;
  the catch-up is planned in the background while the API serves);
- the drain: how many runs executed at once (the peak and the time-weighted mean over the
  drain, from the runs' started_at/finished_at) against maxConcurrency, runs per second, and
  `slot_efficiency`: the runs' summed durations / (maxConcurrency x the drain's span), 1.0
  when every slot held a child all the time;
- `lost`: catch-up runs expected and not recorded `ok` (target 0), and the missed rows.

    .venv/bin/python benchmarks/bench_catchup.py [--jobs 1000] [--max-concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import free_port, health_ok, start_runner, stop_runner
from jeeves_runner.models import Job, RunStatus, RunTrigger, format_instant, parse_instant
from jeeves_runner.store import SqliteStore

SCHEDULE = "*/20 * * * *"
COMMAND = ("sleep", "0.1")
HEALTH_TARGET_S = 2.0


def build(db: Path, jobs: int) -> None:
    store = SqliteStore(db)
    try:
        now = format_instant(datetime.now(UTC))
        store.jobs.apply_jobs(
            [
                Job(
                    id=f"job-{i:04d}",
                    name=f"job {i}",
                    schedule=SCHEDULE,
                    script="",
                    command=COMMAND,
                    catchup="all",
                )
                for i in range(jobs)
            ],
            [],
            [],
            now,
        )
    finally:
        store.close()


def mark_down_since(db: Path, jobs: int, down_since: datetime) -> None:
    """What a runner that fired every job at `down_since` and then stopped leaves behind."""
    store = SqliteStore(db)
    try:
        ids = [f"job-{i:04d}" for i in range(jobs)]
        mark = format_instant(down_since)
        store.runs.create_pending_runs(
            [], RunTrigger.SCHEDULE, mark, scheduled_for=mark, marked=ids
        )
    finally:
        store.close()


def time_to_health(config: Path, folder: Path, port: int) -> tuple[float, Any]:
    """Seconds from the process start to the first 200 of /health, and the process."""
    t0 = time.monotonic()
    proc = start_runner(config, folder, folder / "stderr.log")
    while not health_ok(port):
        if proc.poll() is not None:
            raise SystemExit((folder / "stderr.log").read_text())
        time.sleep(0.01)
    return time.monotonic() - t0, proc


def concurrency(runs: list[dict[str, Any]]) -> tuple[int, float, float]:
    """(peak, time-weighted mean while anything ran, span in s) of the runs' intervals."""
    events: list[tuple[float, int]] = []
    for run in runs:
        start = parse_instant(run["started_at"]).timestamp()
        end = parse_instant(run["finished_at"]).timestamp()
        events += [(start, 1), (max(end, start), -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    level = peak = 0
    busy = weighted = 0.0
    last = events[0][0]
    for at, change in events:
        if level > 0:
            busy += at - last
            weighted += level * (at - last)
        last = at
        level += change
        peak = max(peak, level)
    span = events[-1][0] - events[0][0]
    return peak, (weighted / busy if busy else 0.0), span


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--max-concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "runner.sqlite"
        started = datetime.now(UTC)
        down_since = started - timedelta(hours=1)
        build(db, args.jobs)
        port = free_port()
        config = folder / "config.json"
        config.write_text(json.dumps({
            "dbPath": str(db), "port": port, "timezone": "UTC",
            "maxConcurrency": args.max_concurrency, "reconcileIntervalMs": 0,
            "log": {"level": "warn", "file": str(folder / "runner.log")},
        }))  # fmt: skip
        # The same start without anything missed: what /health costs anyway (imports,
        # 1,000 jobs scheduled) on this machine at this moment.
        baseline_s, proc = time_to_health(config, folder, port)
        stop_runner(proc)
        mark_down_since(db, args.jobs, down_since)
        health_s, proc = time_to_health(config, folder, port)
        t0 = time.monotonic() - health_s
        try:
            store = SqliteStore(db)
            try:
                missed_rows: list[dict[str, Any]] = []
                deadline = time.monotonic() + 120
                while len(missed_rows) < args.jobs and time.monotonic() < deadline:
                    time.sleep(0.2)
                    missed_rows = store.runs.list_all_runs(10_000, statuses=[RunStatus.MISSED])
                details = [store.runs.get_run(int(r["id"])) for r in missed_rows]
                counts = [int(d["missed_count"]) for d in details if d is not None]
                # `all` runs each missed instant, at most catchup_max (10) of them.
                expected_runs = sum(min(count, 10) for count in counts)
                deadline = time.monotonic() + 600
                done: list[dict[str, Any]] = []
                while time.monotonic() < deadline:
                    done = [
                        r for r in store.runs.list_all_runs(
                            100_000, statuses=[RunStatus.OK, RunStatus.ERROR]
                        )
                        if r["started_at"] is not None
                    ]  # fmt: skip
                    if len(done) >= expected_runs:
                        break
                    time.sleep(0.5)
                drained_s = time.monotonic() - t0
            finally:
                store.close()
        finally:
            stop_runner(proc)
    ok = [r for r in done if r["status"] == "ok"]
    peak, mean, span = concurrency(ok) if ok else (0, 0.0, 0.0)
    busy_s = sum(
        (parse_instant(r["finished_at"]) - parse_instant(r["started_at"])).total_seconds()
        for r in ok
    )
    efficiency = busy_s / (args.max_concurrency * span) if span else 0.0
    print(json.dumps({
        "jobs": args.jobs,
        "max_concurrency": args.max_concurrency,
        "health_after_start_s": round(health_s, 3),
        "health_after_start_without_catchup_s": round(baseline_s, 3),
        "health_target_s": HEALTH_TARGET_S,
        "catchup_runs_expected": expected_runs,
        "catchup_runs_ok": len(ok),
        "lost": expected_runs - len(ok),
        "missed_rows": len(counts),
        "missed_count_per_row": sorted(set(counts)),
        "drain_s": round(drained_s, 2),
        "drain_span_s": round(span, 2),
        "runs_per_s": round(len(ok) / span, 1) if span else None,
        "peak_concurrency": peak,
        "mean_concurrency_while_draining": round(mean, 2),
        "slot_efficiency": round(efficiency, 3),
        "meets_target": health_s <= HEALTH_TARGET_S and expected_runs == len(ok)
        and peak <= args.max_concurrency,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
