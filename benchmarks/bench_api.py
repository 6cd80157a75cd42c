"""HTTP API throughput and latency on a large history; prints its figures as JSON.

The server runs in this process (uvicorn in its own event loop, as inside the runner); the
client is a separate Python process on one keep-alive connection, so the two do not share a
GIL. Scenarios:

- `jobs_1k_*`: GET /jobs, 1,000 jobs, 50,000 runs.
- `runs_limit50_*`: GET /jobs/:id/runs?limit=50 over the same data, cycling through 143 jobs.
- `jobs_10k_*`: GET /jobs with 10,000 jobs and 1,000,000 runs.

`warm`: the data version stays put, so encoded bodies are reused (an idle runner polled by a
dashboard). `cold`: the version moves on every request, so every body is read from SQLite and
encoded again (the worst case: runs starting and finishing all the time).

With `--db-url postgresql://...` the 1,000-job data set is copied (`migrate`'s code) into a
fresh schema of that database and served from PostgreSQL; `warm` then still asks the server
for its data version on every request, as the runner does (targets: >= 1,000 req/s warm,
>= 300 cold). The 10,000-job set is SQLite only.

    .venv/bin/python benchmarks/bench_api.py [--quick] [--seconds N] [--db-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from jeeves_runner.api.app import create_app
from jeeves_runner.api.server import ApiServer
from jeeves_runner.models import RunResult, format_instant
from jeeves_runner.scheduling.fire_schedule import FirePlan, FireSchedule
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.opening import open_store
from jeeves_runner.store.postgres import PostgresStore
from jeeves_runner.store.protocols import Store

POSTGRES_TARGETS = {
    "jobs_1k_warm": ("requests_per_s", ">=", 1000),
    "jobs_1k_write": ("requests_per_s", ">=", 300),
}
TARGETS = {
    "jobs_1k_warm": ("requests_per_s", ">=", 1600),
    "runs_limit50_warm": ("requests_per_s", ">=", 2000),
    "runs_limit50_cold": ("requests_per_s", ">=", 2000),
    "jobs_1k_write": ("requests_per_s", ">=", 800),
    "runs_limit50_write": ("requests_per_s", ">=", 3000),
    "jobs_10k_warm": ("median_ms", "<=", 50),
    "jobs_10k_cold": ("median_ms", "<=", 50),
    "jobs_10k_write": ("median_ms", "<=", 50),
}

_JOB_SQL = (
    "INSERT INTO jobs (id, name, schedule, script, type, description, enabled, timeout_ms, "
    "overlap_policy, on_failure, on_success, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, 'script', ?, ?, ?, ?, ?, NULL, ?, ?)"
)
_RUN_SQL = (
    "INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, exit_code, "
    "stdout, stderr, error, trigger) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'schedule')"
)
_POINT_LAST_RUNS = (
    "UPDATE jobs SET last_run_id = (SELECT max(r.id) FROM runs r "
    "WHERE r.job_id = jobs.id AND r.status <> 'skipped')"
)


def build_dataset(path: str, jobs: int, runs: int) -> None:
    """Jobs and runs inserted in bulk through the store's own connection, one transaction."""
    rng = random.Random(1937)
    store = SqliteStore(path)
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    created = format_instant(now - timedelta(days=90))
    job_ids = [f"job-{i:05d}" for i in range(jobs)]
    job_rows = [
        (
            job_id,
            f"Job number {i}",
            f"{i % 60} * * * *",
            f"/opt/scripts/{job_id}.py",
            "Synchronises one thing with another" if i % 3 else None,
            int(i % 10 != 0),
            120_000 if i % 2 else None,
            ("skip", "queue", "allow")[i % 3],
            "C0123456789" if i % 4 == 0 else None,
            created,
            created,
        )
        for i, job_id in enumerate(job_ids)
    ]

    def run_rows() -> Any:
        span = 30 * 24 * 3600
        for n in range(runs):
            job_id = job_ids[n % jobs]
            started = now - timedelta(seconds=span * (runs - n) / runs)
            roll = rng.random()
            status = "ok" if roll < 0.9 else "error" if roll < 0.96 else "timeout"
            if roll > 0.99:
                status = "skipped"
            duration = rng.randint(50, 20_000)
            yield (
                job_id,
                status,
                format_instant(started),
                format_instant(started + timedelta(milliseconds=duration)),
                duration,
                0 if status == "ok" else 1,
                f"Synced {n % 97} messages\nChecked {n % 13} folders\nDone",
                "" if status == "ok" else "Traceback: something failed",
                None if status == "ok" else "Exit code 1",
            )

    with store.db.transaction() as conn:
        conn.executemany(_JOB_SQL, job_rows)
        conn.executemany(_RUN_SQL, run_rows())
        conn.execute(_POINT_LAST_RUNS)
    store.close()


class BenchControl:
    """A read-only RunnerControl over a store. `cold`: the data version moves on every read,
    so no response body is ever reused. `real`: the version is the store's own, as the
    runner's is (another process's commit moves it)."""

    def __init__(self, store: Store, *, cold: bool, real: bool = False) -> None:
        self._store = store
        self._gateway = StoreGateway(store)
        self._cold = cold
        self._real = real
        self._version = 0
        # The scheduler's plan of a runner over these jobs (made once: nothing fires here),
        # so GET /jobs carries next_run as a runner's does.
        fires = FireSchedule(UTC)
        fires.reconcile(store.jobs.enabled_schedules(), datetime.now(UTC))
        self._plan = fires.plan()

    @property
    def store(self) -> StoreGateway:
        return self._gateway

    @property
    def failed_registrations(self) -> int:
        return 0

    @property
    def running_count(self) -> int:
        return 0

    def data_version(self, store: Store) -> tuple[int, int]:
        if self._real:
            return 0, store.data_version()
        if self._cold:
            self._version += 1
        # PostgreSQL's answer is a round trip, which every request of a real runner pays;
        # SQLite's (a pragma) costs microseconds and is left out, as before.
        asked = store.data_version() if isinstance(store, PostgresStore) else 0
        return self._version, asked

    def uptime_seconds(self) -> float:
        return 0.0

    def fire_plan(self) -> FirePlan:
        return self._plan

    @property
    def stopping(self) -> bool:
        return False

    def database_problem(self) -> str | None:
        return None

    async def trigger(
        self, job_id: str, *, on_started: Callable[[int], None] | None = None
    ) -> RunResult:
        raise NotImplementedError("the benchmark does not run jobs")

    async def start_run(self, job_id: str) -> int:
        raise NotImplementedError("the benchmark does not run jobs")

    async def set_enabled(self, job_id: str, enabled: bool) -> bool:
        raise NotImplementedError("the benchmark does not change jobs")


class ServedApi:
    """The API served from a background thread's event loop."""

    def __init__(self, db: str, *, cold: bool, real: bool = False) -> None:
        self.store = open_store(db)
        control = BenchControl(self.store, cold=cold, real=real)
        app = create_app(control)
        if cold and hasattr(app.state, "runs_list"):
            # Nothing reused: run pages skip the view of run fragments (which follows the
            # database, not the data version) and are built whole every request.
            app.state.runs_list.depth = 0
        self.server = ApiServer(app, "127.0.0.1", 0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ServedApi:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self.store.close()


class KeepAliveClient:
    """HTTP/1.1 GETs on one keep-alive socket with the least client work per request: the
    request bytes are built once and only Content-Length is parsed, so the figures are the
    server's, as wrk's would be, rather than http.client's."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One buffer, grown when a body needs it and read into in place: appending each
        # chunk to a bytes object would copy the whole answer so far at every recv (for a
        # 784 KB body, several MB of copying a request, all counted as the server's).
        self._space = bytearray(1 << 20)
        self._view = memoryview(self._space)
        self._start = 0  # the unread bytes are _space[_start:_end]
        self._end = 0

    def get(self, request: bytes) -> tuple[int, int]:
        """(status, body length) of one request."""
        self._sock.sendall(request)
        while (end := self._space.find(b"\r\n\r\n", self._start, self._end)) < 0:
            self._receive()
        head = bytes(self._view[self._start : end])
        self._start = end + 4
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while self._end - self._start < length:
            self._receive(length)
        self._start += length
        return status, length

    def _receive(self, wanted: int = 0) -> None:
        """One recv into the free space after the unread bytes; `wanted`: the bytes the
        caller needs in all (room is made for them at once)."""
        unread = self._end - self._start
        need = max(wanted - unread, 65536)
        if len(self._space) - self._end < need and self._start > 0:
            self._space[:unread] = self._view[self._start : self._end]  # move to the front
            self._start, self._end = 0, unread
        if len(self._space) - self._end < need:
            self._view.release()
            self._space.extend(bytes(need - (len(self._space) - self._end)))
            self._view = memoryview(self._space)
        got = self._sock.recv_into(self._view[self._end :])
        if not got:
            raise SystemExit("the server closed the connection")
        self._end += got

    def close(self) -> None:
        self._sock.close()


class RunWriter:
    """The write made before every request of a `_write` scenario, by the client process on
    its own connection (another process, as far as the server knows): a finished run of the
    job the next request reads (GET /jobs: jobs in turn), so that job's last run, and its
    run list, change every time. Its time is not counted in the request's."""

    _SQL = (
        "INSERT INTO runs (job_id, status, started_at, finished_at, duration_ms, exit_code, "
        "stdout, stderr, trigger) VALUES ({p}, 'ok', {p}, {p}, 7, 0, 'written', '', 'manual')"
    )

    def __init__(self, db: str) -> None:
        self._count = 0
        if db.startswith("postgresql:"):
            import psycopg

            self._pg = psycopg.connect(db, autocommit=True)
            self._sql = self._SQL.format(p="%s")
        else:
            self._lite = sqlite3.connect(db, isolation_level=None, timeout=30)
            # A commit without an fsync (WAL): the write is what is measured around, not
            # the disk.
            self._lite.execute("PRAGMA synchronous = NORMAL")
            self._sql = self._SQL.format(p="?")

    def write(self, job_id: str) -> None:
        self._count += 1
        at = format_instant(datetime(2026, 3, 3, tzinfo=UTC) + timedelta(seconds=self._count))
        if hasattr(self, "_pg"):
            self._pg.execute(self._sql, (job_id, at, at))
        else:
            self._lite.execute(self._sql, (job_id, at, at))

    def close(self) -> None:
        (self._pg if hasattr(self, "_pg") else self._lite).close()


def _written_job(path: str, count: int) -> str:
    """The job a request reads: its own for a run list, jobs in turn for GET /jobs."""
    if path.startswith("/jobs/"):
        return path.split("/")[2]
    return f"job-{count % 1000:05d}"


def client_loop(
    port: int, paths: list[str], seconds: float, write_db: str | None = None
) -> dict[str, Any]:
    """One keep-alive connection, requests back to back for `seconds`; with `write_db`, a
    write to that database before each request (not timed)."""
    requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for p in paths]
    client = KeepAliveClient(port)
    writer = RunWriter(write_db) if write_db else None
    for request in requests[:20]:  # warm-up: connection, caches, first queries
        client.get(request)
    latencies: list[float] = []
    body_bytes = 0
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        if writer is not None:
            writer.write(_written_job(paths[count % len(paths)], count))
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        status, length = client.get(requests[count % len(requests)])
        if status != 200:
            raise SystemExit(f"GET {paths[count % len(paths)]} answered {status}")
        latencies.append(time.perf_counter() - t0)
        body_bytes += length
        count += 1
    elapsed = time.perf_counter() - started
    client.close()
    if writer is not None:
        writer.close()
    latencies.sort()
    # With writes, the rate is that of the requests alone (the writes' time left out); the
    # rate of whole write+request cycles is reported beside it.
    busy = sum(latencies) if writer is not None else elapsed
    figures = {
        "requests": count,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(count / busy, 1),
        "median_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000, 3),
        "body_bytes": body_bytes // max(count, 1),
    }
    if writer is not None:
        figures["write_and_request_cycles_per_s"] = round(count / elapsed, 1)
    return figures


def measure(
    db: str, paths: list[str], seconds: float, *, cold: bool, write: bool = False
) -> dict[str, Any]:
    """`write`: a write from the client process before every request, and the API's data
    version the store's own (as in the runner), so no body is reused that the write made
    stale."""
    with ServedApi(db, cold=cold, real=write) as api:
        cpu_before = time.process_time()
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                str(api.server.port),
                str(seconds),
                db if write else "-",
                *paths,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        # The server's CPU time a request (this process serves; the client is another):
        # steadier than the rates on a shared, noisy host.
        cpu = time.process_time() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"client failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["server_cpu_ms_per_request"] = round(cpu * 1000 / max(result["requests"], 1), 3)
    return result


def store_reads(db: str, rounds: int = 300) -> dict[str, Any]:
    """In process, through the store verbs the routes use, with a write by another
    connection before each read: GET /jobs's body refreshed from the change feed against
    built whole, and a 50-run list. Medians in ms; steadier than HTTP on a loaded host."""
    try:
        from jeeves_runner.store.jobs_list import JobsListView
    except ImportError:  # an older tree, measured as a baseline: it has no change feed
        return {}
    try:
        from jeeves_runner.store.runs_list import RunsListView
    except ImportError:  # nor, older still, a runs view
        RunsListView = None  # type: ignore[assignment,misc]
    store = open_store(db)
    writer = RunWriter(db)
    view = JobsListView()
    store.jobs.refresh_jobs_list(view)
    runs_view = RunsListView() if RunsListView is not None else None
    timings: dict[str, list[float]] = {
        "refresh": [],
        "whole": [],
        "runs": [],
        "runs_dicts": [],
        "runs_view": [],
    }
    try:
        for n in range(rounds):
            job_id = f"job-{(n * 7) % 1000:05d}"
            writer.write(job_id)
            t0 = time.perf_counter()
            refreshed = store.jobs.refresh_jobs_list(view)
            t1 = time.perf_counter()
            store.runs.list_runs_json(job_id, 50)
            t2 = time.perf_counter()
            timings["refresh"].append(t1 - t0)
            timings["runs"].append(t2 - t1)
            if n % 2:  # the list as the route built it before: rows, dicts, orjson
                writer.write(job_id)
                t3 = time.perf_counter()
                orjson.dumps({"runs": store.runs.list_runs(job_id, 50)})
                timings["runs_dicts"].append(time.perf_counter() - t3)
            if n % 10 == 0:
                whole = store.jobs.jobs_list_json()
                timings["whole"].append(time.perf_counter() - t2)
                if whole != refreshed:
                    raise SystemExit("the refreshed GET /jobs body differs from a whole one")
            if runs_view is not None:  # the page through the view of run fragments
                writer.write(job_id)
                t3 = time.perf_counter()
                page = store.runs.refresh_runs_list(runs_view, job_id, 50)
                timings["runs_view"].append(time.perf_counter() - t3)
                if page != store.runs.list_runs_json(job_id, 50):
                    raise SystemExit("the runs page through the view differs from a whole one")
    finally:
        writer.close()
        store.close()
    figures = {
        f"{k}_median_ms": round(statistics.median(v) * 1000, 3) for k, v in timings.items() if v
    }
    figures["whole_over_refresh"] = round(
        figures["whole_median_ms"] / max(figures["refresh_median_ms"], 1e-6), 1
    )
    figures["runs_dicts_over_json"] = round(
        figures["runs_dicts_median_ms"] / max(figures["runs_median_ms"], 1e-6), 2
    )
    return figures


def verdict(
    name: str, figures: dict[str, Any], targets: dict[str, Any] = TARGETS
) -> dict[str, Any]:
    if name not in targets:
        return figures  # measured for the record; the issue sets no target for it
    key, op, bound = targets[name]
    value = figures[key]
    ok = value >= bound if op == ">=" else value <= bound
    return {**figures, "target": f"{key} {op} {bound}", "meets_target": ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-job data set")
    parser.add_argument("--db-url", help="serve the 1,000-job set from this PostgreSQL database")
    args = parser.parse_args()
    if args.db_url:
        postgres(args)
        return
    report: dict[str, Any] = {"python": sys.version.split()[0], "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        small = str(Path(tmp) / "small.sqlite")
        t0 = time.perf_counter()
        build_dataset(small, 1_000, 50_000)
        report["build_small_s"] = round(time.perf_counter() - t0, 2)
        scenarios = report["scenarios"]
        runs_paths = [f"/jobs/job-{i:05d}/runs?limit=50" for i in range(0, 1000, 7)]
        for cold in (False, True):
            kind = "cold" if cold else "warm"
            scenarios[f"jobs_1k_{kind}"] = verdict(
                f"jobs_1k_{kind}", measure(small, ["/jobs"], args.seconds, cold=cold)
            )
            scenarios[f"runs_limit50_{kind}"] = verdict(
                f"runs_limit50_{kind}", measure(small, runs_paths, args.seconds, cold=cold)
            )
        # Uncached for real (issue 9): a write before every request. Last, as they add runs.
        report["store_reads_after_a_write"] = store_reads(small)
        scenarios["jobs_1k_write"] = verdict(
            "jobs_1k_write", measure(small, ["/jobs"], args.seconds, cold=False, write=True)
        )
        scenarios["runs_limit50_write"] = verdict(
            "runs_limit50_write",
            measure(small, runs_paths, args.seconds, cold=False, write=True),
        )
        if not args.quick:
            large = str(Path(tmp) / "large.sqlite")
            t0 = time.perf_counter()
            build_dataset(large, 10_000, 1_000_000)
            report["build_large_s"] = round(time.perf_counter() - t0, 2)
            scenarios["jobs_10k_warm"] = verdict(
                "jobs_10k_warm", measure(large, ["/jobs"], args.seconds, cold=False)
            )
            scenarios["jobs_10k_cold"] = verdict(
                "jobs_10k_cold", measure(large, ["/jobs"], args.seconds, cold=True)
            )
            scenarios["jobs_10k_write"] = verdict(
                "jobs_10k_write",
                measure(large, ["/jobs"], args.seconds, cold=False, write=True),
            )
    report["all_targets_met"] = all(
        s["meets_target"] for s in report["scenarios"].values() if "meets_target" in s
    )
    print(json.dumps(report, indent=2))


def postgres(args: argparse.Namespace) -> None:
    from harness import PostgresSchema
    from jeeves_runner.store.transfer import copy_sqlite_to_postgres

    report: dict[str, Any] = {"python": sys.version.split()[0], "backend": "postgres"}
    scenarios: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as tmp,
        PostgresSchema(args.db_url) as url,
    ):
        small = str(Path(tmp) / "small.sqlite")
        t0 = time.perf_counter()
        build_dataset(small, 1_000, 50_000)
        source, target = SqliteStore(small), PostgresStore(url)
        try:
            copy_sqlite_to_postgres(source, target)
        finally:
            source.close()
            target.close()
        report["build_small_s"] = round(time.perf_counter() - t0, 2)
        runs_paths = [f"/jobs/job-{i:05d}/runs?limit=50" for i in range(0, 1000, 7)]
        for cold in (False, True):
            kind = "cold" if cold else "warm"
            scenarios[f"jobs_1k_{kind}"] = verdict(
                f"jobs_1k_{kind}",
                measure(url, ["/jobs"], args.seconds, cold=cold),
                POSTGRES_TARGETS,
            )
            scenarios[f"runs_limit50_{kind}"] = verdict(
                f"runs_limit50_{kind}",
                measure(url, runs_paths, args.seconds, cold=cold),
                POSTGRES_TARGETS,
            )
        report["store_reads_after_a_write"] = store_reads(url)
        for name, paths in (("jobs_1k_write", ["/jobs"]), ("runs_limit50_write", runs_paths)):
            scenarios[name] = verdict(
                name, measure(url, paths, args.seconds, cold=False, write=True), POSTGRES_TARGETS
            )
    report["scenarios"] = scenarios
    report["all_targets_met"] = all(
        s["meets_target"] for s in scenarios.values() if "meets_target" in s
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        port, seconds, write_db, *paths = sys.argv[2:]
        figures = client_loop(
            int(port), paths, float(seconds), None if write_db == "-" else write_db
        )
        print(json.dumps(figures))
    else:
        main()
