"""SQL at scale on one SQLite file (WAL, synchronous=FULL), through the store's verbs.

- items: one state collection of 300,000 items. `list_10`: the newest 10 items
  (`StateStore.list_items`, what `GET /state/:ns/:key/items` reads) and the newest 10 keys
  (`list_item_keys`); target median <= 5 ms. `prune_steady`: 3,000 new items written, then
  `prune_items` back to 300,000 (a job keeping "the last 300k seen"); target <= 200 ms.
  `prune_most`: `prune_items` keeping 1,000 of 300,000 (for the record: it deletes 299,000
  rows, so it costs what deleting them costs).
- runs: 1,000 jobs and 1,000,000 finished runs over 100 days; `prune_runs` of the older half
  (500,000 rows, 5,000 per transaction) — total time and the mean write-lock hold per batch;
  then one more day of them (what the daily maintenance pass deletes), then a pass with nothing
  due; then `finished_since` of the last day.

Run: .venv/bin/python benchmarks/bench_store_scale.py [--quick] [--check]
(about a minute; --quick: 30,000 items and 100,000 runs). Prints one JSON object; with --check
exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jeeves_runner.models import Job, format_instant
from jeeves_runner.store import SqliteStore

LIST_TARGET_MS = 5.0
PRUNE_TARGET_MS = 200.0
START = datetime(2026, 1, 1, tzinfo=UTC)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _instant(ms: int) -> str:
    return format_instant(START + timedelta(milliseconds=ms))


def _fill_items(store: SqliteStore, count: int, first: int) -> None:
    """`count` items written one millisecond apart, in one transaction."""
    rows = [
        ("bench", "seen", f"item-{n:08d}", f'{{"n":{n}}}', _instant(n), _instant(n))
        for n in range(first, first + count)
    ]
    with store.db.transaction() as conn:
        conn.executemany(
            "INSERT INTO state_items (namespace, key, item_key, value, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def bench_items(store: SqliteStore, items: int) -> dict[str, Any]:
    now = _instant(items + 10_000_000)
    store.state.set("bench", "seen", None, None, _instant(0))
    _fill_items(store, items, 0)
    assert store.state.count_items("bench", "seen", now) == items

    def timed(call: Any, repeat: int) -> list[float]:
        out = []
        for _ in range(repeat):
            began = time.perf_counter()
            call()
            out.append(time.perf_counter() - began)
        return out

    listed = timed(lambda: store.state.list_items("bench", "seen", now, 10), 200)
    keys = timed(lambda: store.state.list_item_keys("bench", "seen", now, 10, True), 200)
    assert [r["item_key"] for r in store.state.list_items("bench", "seen", now, 1)] == [
        f"item-{items - 1:08d}"
    ]

    steady: list[float] = []
    added = items // 100
    for round_ in range(5):
        _fill_items(store, added, items + round_ * added)
        began = time.perf_counter()
        deleted = store.state.prune_items("bench", "seen", items, now)
        steady.append(time.perf_counter() - began)
        assert deleted == added

    began = time.perf_counter()
    most = store.state.prune_items("bench", "seen", 1000, now)
    most_s = time.perf_counter() - began
    assert most == items - 1000
    list_median = max(statistics.median(listed), statistics.median(keys))
    return {
        "items": items,
        "list_10_items_median_ms": _ms(statistics.median(listed)),
        "list_10_items_p99_ms": _ms(sorted(listed)[int(len(listed) * 0.99) - 1]),
        "list_10_keys_median_ms": _ms(statistics.median(keys)),
        "list_target_ms": LIST_TARGET_MS,
        "prune_steady_deleted": added,
        "prune_steady_median_ms": _ms(statistics.median(steady)),
        "prune_steady_max_ms": _ms(max(steady)),
        "prune_target_ms": PRUNE_TARGET_MS,
        "prune_most_deleted": most,
        "prune_most_ms": _ms(most_s),
        "meets_target": _ms(list_median) <= LIST_TARGET_MS
        and _ms(statistics.median(steady)) <= PRUNE_TARGET_MS,
    }


def bench_runs(store: SqliteStore, runs: int, jobs: int = 1000) -> dict[str, Any]:
    for n in range(jobs):
        job = Job(id=f"job-{n:04d}", name=f"Job {n}", schedule="* * * * *", script="/bin/true")
        store.jobs.add_job(job, _instant(0))
    span_ms = 100 * 24 * 3600 * 1000
    step = span_ms // runs
    began = time.perf_counter()
    batch = 100_000
    for first in range(0, runs, batch):
        rows = [
            (
                f"job-{n % jobs:04d}",
                "ok" if n % 10 else "error",
                _instant(n * step),
                _instant(n * step + 500),
                500,
                "schedule",
            )
            for n in range(first, min(first + batch, runs))
        ]
        with store.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, trigger)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
    build_s = time.perf_counter() - began
    cutoff = _instant(span_ms // 2)
    began = time.perf_counter()
    pruned = store.runs.prune_runs(cutoff)
    prune_s = time.perf_counter() - began
    batches = max(1, -(-pruned // 5000))
    # What maintenance does every day: one more day falls out of retention.
    day_ms = 24 * 3600 * 1000
    began = time.perf_counter()
    daily = store.runs.prune_runs(_instant(span_ms // 2 + day_ms))
    daily_s = time.perf_counter() - began
    # ...and every other pass of the day: nothing is due.
    began = time.perf_counter()
    assert store.runs.prune_runs(_instant(span_ms // 2 + day_ms)) == 0
    nothing_s = time.perf_counter() - began
    began = time.perf_counter()
    since = store.runs.finished_since(_instant(span_ms - 24 * 3600 * 1000))
    since_s = time.perf_counter() - began
    listed = store.jobs.list_jobs_with_last_run()
    assert all(row["last_status"] is not None for row in listed)  # kept by the triggers
    return {
        "runs": runs,
        "jobs": jobs,
        "build_s": round(build_s, 1),
        "prune_runs_deleted": pruned,
        "prune_runs_total_ms": _ms(prune_s),
        "prune_runs_per_batch_mean_ms": _ms(prune_s / batches),
        "prune_runs_one_day_deleted": daily,
        "prune_runs_one_day_ms": _ms(daily_s),
        "prune_runs_nothing_due_ms": _ms(nothing_s),
        "finished_since_last_day_ms": _ms(since_s),
        "finished_since_last_day_rows": sum(since.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30,000 items, 100,000 runs")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    items, runs = (30_000, 100_000) if args.quick else (300_000, 1_000_000)
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "scale.sqlite")
        try:
            report = {"state_items": bench_items(store, items), "runs": bench_runs(store, runs)}
        finally:
            store.close()
    report["all_targets_met"] = report["state_items"]["meets_target"]
    print(json.dumps(report, indent=2))
    return 1 if args.check and not report["all_targets_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
