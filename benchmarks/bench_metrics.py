"""/metrics with 10,000 jobs, and what token checks add to GET /jobs; prints JSON.

- `metrics_10k`: 10,000 jobs, each with an ok and a failed run recorded (so every job has its
  run counters, a duration histogram, last success and last failure), a next fire for each
  from a real FireSchedule, 50 queues with items. The app is served by `ApiServer` exactly as
  the runner serves it (uvicorn in its own loop, in a thread here); the scrape is a real HTTP
  request over 127.0.0.1. A run's lines are written when it ends (`run_finished_us`, on the
  loop); `first_scrape_ms` builds the next-fire and last-success/failure lines of every job;
  then 5 % of the jobs run between two scrapes. Target (issue 14): median <= 200 ms.
- `token_overhead_jobs`: GET /jobs (1,000 jobs, body cached: the cheapest read, so the check's
  share is the largest) with no token defined, against 5 tokens defined and a bearer header
  sent. Measured by calling the ASGI app directly (no sockets), in alternating rounds, the
  fastest round of each compared (the slower ones measure a busy machine); the overhead is
  relative to the app's own time, which overstates it against a real request. The target is
  judged on `check_share_pct` (the guard's check alone, timed apart, over a whole open
  request): the difference of two whole-request timings (`overhead_pct`, reported too) moves
  by several percent from run to run on a shared 2-core machine, either way.
  Target: <= 5 %.

    .venv/bin/python benchmarks/bench_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from jeeves_runner.access_model import Scope, StoredToken
from jeeves_runner.api.app import create_app
from jeeves_runner.api.server import ApiServer
from jeeves_runner.auth import TokenGuard, hash_secret
from jeeves_runner.clock import SystemClock
from jeeves_runner.metrics import RunnerMetrics
from jeeves_runner.models import Job, RunResult, ScheduleEntry, format_instant
from jeeves_runner.scheduling.fire_schedule import FirePlan, FireSchedule
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

TARGETS = {
    "metrics_10k": ("median_ms", "<=", 200.0),
    "token_overhead_jobs": ("check_share_pct", "<=", 5.0),
}


class Control:
    def __init__(self, gateway: StoreGateway) -> None:
        self._gateway = gateway
        # A runner's plan over these jobs (GET /jobs carries next_run), made once.
        fires = FireSchedule(UTC)
        fires.reconcile(gateway.store.jobs.enabled_schedules(), datetime.now(UTC))
        self._plan = fires.plan()

    def fire_plan(self) -> FirePlan:
        return self._plan

    @property
    def store(self) -> StoreGateway:
        return self._gateway

    @property
    def failed_registrations(self) -> int:
        return 0

    @property
    def running_count(self) -> int:
        return 0

    def data_version(self, store: Store) -> int:
        return 1  # nothing changes: bodies are reused

    def uptime_seconds(self) -> float:
        return 1.0

    async def trigger(self, job_id: str) -> RunResult:
        raise NotImplementedError

    async def set_enabled(self, job_id: str, enabled: bool) -> bool:
        raise NotImplementedError


class _Slots:
    waiting = 0


class _Dispatcher:
    executing = 3
    slots = _Slots()


class _Scheduler:
    def __init__(self, fires: FireSchedule) -> None:
        self.fires = fires
        self.failed_registrations: dict[str, object] = {}


def fill(store: SqliteStore, jobs: int, queues: int) -> list[str]:
    now = format_instant(datetime.now(UTC))
    ids = [f"job-{i:05d}" for i in range(jobs)]
    for job_id in ids:
        store.jobs.add_job(Job(job_id, job_id, f"{len(job_id) % 60} * * * *", "/bin/true"), now)
    for q in range(queues):
        for n in range(20):
            store.queues.enqueue(f"queue-{q:02d}", json.dumps({"n": n}), 0, None, now)
    return ids


def scrape_metrics(folder: Path, jobs: int, scrapes: int) -> dict[str, Any]:
    store = SqliteStore(folder / "m.sqlite")
    ids = fill(store, jobs, 50)
    clock = SystemClock()
    metrics = RunnerMetrics(clock)
    started = time.perf_counter()
    for job_id in ids:
        metrics.run_finished(job_id, "ok", 2.5)
        metrics.run_finished(job_id, "error", 75.0)
    run_finished_us = (time.perf_counter() - started) / (2 * len(ids)) * 1e6
    fires = FireSchedule(UTC)
    fires.reconcile([ScheduleEntry(j, "*/5 * * * *", "t") for j in ids], datetime.now(UTC))
    metrics.watch(_Dispatcher(), _Scheduler(fires))
    gateway = StoreGateway(store)
    app = create_app(Control(gateway), metrics=metrics)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = ApiServer(app, "127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    times: list[float] = []
    size = lines = 0

    def some_runs(first: int) -> None:
        for job_id in ids[first : first + changed_per_scrape]:
            metrics.run_finished(job_id, "ok", 3.0)

    changed_per_scrape = jobs // 20
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            started = time.perf_counter()
            first = http.get("/metrics")
            cold_ms = (time.perf_counter() - started) * 1000
            assert first.status_code == 200
            for n in range(scrapes):
                # Between two scrapes, 5 % of the jobs run (every job's lines change
                # within 20 scrapes; the first scrape above built all of them).
                loop.call_soon_threadsafe(some_runs, (n * changed_per_scrape) % jobs)
                started = time.perf_counter()
                response = http.get("/metrics")
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
                size = len(response.content)
                lines = response.content.count(b"\n")
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        gateway.close()
    return {
        "jobs": jobs,
        "scrapes": scrapes,
        "body_bytes": size,
        "lines": lines,
        "jobs_changed_between_scrapes": changed_per_scrape,
        "run_finished_us": round(run_finished_us, 1),
        "first_scrape_ms": round(cold_ms, 1),
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
    }


async def _call(app: Any, headers: list[tuple[bytes, bytes]]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/jobs",
        "raw_path": b"/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 1937),
    }
    await app(scope, receive, send)
    return status


def token_overhead(folder: Path, requests: int, rounds: int) -> dict[str, Any]:
    store = SqliteStore(folder / "t.sqlite")
    fill(store, 1000, 0)
    gateway = StoreGateway(store)

    async def main() -> dict[str, Any]:
        open_app = create_app(Control(gateway))
        guard = TokenGuard(None, loopback=True)
        guard.use(
            tuple(
                StoredToken(f"t{i}", Scope.READ, hash_secret(f"secret-{i}"), "t", "b")
                for i in range(5)
            )
        )
        guarded_app = create_app(Control(gateway), guard=guard)
        bearer = [(b"authorization", b"Bearer secret-3"), (b"host", b"127.0.0.1:1937")]
        plain = [(b"host", b"127.0.0.1:1937")]
        assert await _call(open_app, plain) == 200
        assert await _call(guarded_app, bearer) == 200
        assert await _call(guarded_app, plain) == 401
        per: dict[str, list[float]] = {"open": [], "token": []}
        for _ in range(rounds):
            for name, app, headers in (
                ("open", open_app, plain),
                ("token", guarded_app, bearer),
            ):
                started = time.perf_counter()
                for _ in range(requests):
                    await _call(app, headers)
                per[name].append((time.perf_counter() - started) / requests * 1e6)
        # The fastest round of each: on a shared machine the slower rounds measure the
        # neighbours, not the code (medians are given for the record).
        open_us, token_us = min(per["open"]), min(per["token"])
        # The check alone, against the open guard's: steadier than the difference of two
        # whole requests.
        check: dict[str, list[float]] = {"open": [], "token": []}
        open_guard = TokenGuard(None, loopback=True)
        for _ in range(rounds):
            for name, g, header in (
                ("open", open_guard, None),
                ("token", guard, "Bearer secret-3"),
            ):
                started = time.perf_counter()
                for _ in range(requests):
                    await g.verdict(header)
                check[name].append((time.perf_counter() - started) / requests * 1e6)
        check_us = min(check["token"]) - min(check["open"])
        return {
            "requests_per_round": requests,
            "rounds": rounds,
            "open_us_per_request": round(open_us, 1),
            "token_us_per_request": round(token_us, 1),
            "open_us_median": round(statistics.median(per["open"]), 1),
            "token_us_median": round(statistics.median(per["token"]), 1),
            "check_us_over_open": round(check_us, 2),
            "check_share_pct": round(check_us / open_us * 100, 2),
            "overhead_pct": round((token_us - open_us) / open_us * 100, 2),
        }

    try:
        return asyncio.run(main())
    finally:
        gateway.close()


def verdict(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    key, op, target = TARGETS[name]
    value = figures[key]
    ok = value <= target if op == "<=" else value >= target
    return {**figures, "target": f"{key} {op} {target}", "meets_target": ok}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer scrapes and requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = {
            "metrics_10k": verdict(
                "metrics_10k", scrape_metrics(folder, 10_000, 5 if args.quick else 20)
            ),
            "token_overhead_jobs": verdict(
                "token_overhead_jobs",
                token_overhead(folder, 500 if args.quick else 1000, 5 if args.quick else 21),
            ),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
