"""What a run costs on top of a bare spawn of the same trivial script; prints one JSON object.

The script is a tiny executable file (`#!/bin/sh` + `exit 0`, no extension, so the runner
starts it directly, as the bare spawns do).

1. In process: `Runner(config, serve_api=False)` started inside `event_loop.run(...)` (the
   runner's own loop and child watcher). Each round does, in a rotating order so drift and
   warm-up hit every method alike:
   - `await runner.trigger(job_id)` (a manual run: job read, run row, spawn with pipes in its
     own session, output tails, mark running, finish_run);
   - bare `asyncio.create_subprocess_exec(script)` + `wait()`;
   - the same with what the runner adds at the spawn itself (stdin DEVNULL, stdout/stderr
     pipes read to the end, start_new_session, a copied environment), to split the overhead
     between "spawn options" and "runner bookkeeping";
   - `subprocess.run([script])` (blocking, same loop thread).
   Then a shorter pass with the store's write calls timed, to say where the rest goes.
2. Through HTTP: the real runner process (`python -m jeeves_runner start -c ...`), and this
   process as the client on one keep-alive connection (http.client): `POST /jobs/:id/run`
   (answers when the run has ended) against a bare `subprocess.run([script])` here,
   interleaved the same way.

    .venv/bin/python benchmarks/bench_run_overhead.py [--runs 200] [--http-runs 200]

Targets: in-process median overhead (trigger - bare asyncio spawn) <= 2 ms; HTTP median
<= bare spawn + 3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import free_port, start_runner, stop_runner
from jeeves_runner.config import parse_config
from jeeves_runner.execution import event_loop
from jeeves_runner.logs import configure_logging
from jeeves_runner.models import Job, RunStatus
from jeeves_runner.runner import Runner
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.sqlite.runs import SqliteRunStore as RunStore

JOB_ID = "trivial"
NEVER_DURING_BENCH = "0 0 1 1 *"  # yearly; manual runs only
WARMUP = 10
TARGET_INPROCESS_MS = 2.0
TARGET_HTTP_MS = 3.0


def stats_ms(samples: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples)
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p10_ms": round(ms[len(ms) // 10], 3),
        "p90_ms": round(ms[(len(ms) * 9) // 10], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def make_script(folder: Path) -> str:
    path = folder / "trivial"
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def make_db(db_path: Path, script: str) -> None:
    store = SqliteStore(db_path)
    store.jobs.add_job(
        Job(id=JOB_ID, name="Trivial", schedule=NEVER_DURING_BENCH, script=script),
        "2026-01-01T00:00:00.000Z",
    )
    store.close()


# ---- 1. in process ----------------------------------------------------------------------------


async def in_process(folder: Path, script: str, runs: int) -> dict[str, Any]:
    db_path = folder / "inproc.sqlite"
    make_db(db_path, script)
    config = parse_config(
        {
            "dbPath": str(db_path),
            "timezone": "UTC",
            "port": free_port(),
            "log": {"level": "warn", "file": str(folder / "inproc.log")},
        }
    )
    runner = Runner(config, serve_api=False)
    await runner.start()
    env = dict(os.environ)

    async def trigger() -> None:
        result = await runner.trigger(JOB_ID)
        if result.status is not RunStatus.OK:
            raise RuntimeError(f"run did not succeed: {result}")

    async def bare_async() -> None:
        proc = await asyncio.create_subprocess_exec(script)
        await proc.wait()

    async def bare_async_like_runner() -> None:
        proc = await asyncio.create_subprocess_exec(
            script,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
        await proc.communicate()

    async def bare_subprocess_run() -> None:
        subprocess.run([script], check=True)

    methods: dict[str, Callable[[], Awaitable[None]]] = {
        "runner_trigger": trigger,
        "bare_asyncio_spawn": bare_async,
        "bare_asyncio_spawn_with_runner_options": bare_async_like_runner,
        "subprocess_run": bare_subprocess_run,
    }
    try:
        samples = await _interleaved(methods, runs)
        breakdown = await _store_breakdown(runner, trigger, max(runs // 4, 20))
    finally:
        await runner.stop()
    result = {name: stats_ms(s) for name, s in samples.items()}
    base = result["bare_asyncio_spawn"]["median_ms"]
    result["overhead_median_ms"] = {
        "trigger_minus_bare_asyncio": round(result["runner_trigger"]["median_ms"] - base, 3),
        "spawn_options_part": round(
            result["bare_asyncio_spawn_with_runner_options"]["median_ms"] - base, 3
        ),
        "runner_bookkeeping_part": round(
            result["runner_trigger"]["median_ms"]
            - result["bare_asyncio_spawn_with_runner_options"]["median_ms"],
            3,
        ),
        "trigger_minus_subprocess_run": round(
            result["runner_trigger"]["median_ms"] - result["subprocess_run"]["median_ms"], 3
        ),
    }
    result["store_writes_per_trigger"] = breakdown
    return result


async def _interleaved(
    methods: dict[str, Callable[[], Awaitable[None]]], runs: int
) -> dict[str, list[float]]:
    names = list(methods)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(WARMUP + runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            began = time.perf_counter()
            await methods[name]()
            elapsed = time.perf_counter() - began
            if i >= WARMUP:
                samples[name].append(elapsed)
    return samples


async def _store_breakdown(
    runner: Runner, trigger: Callable[[], Awaitable[None]], runs: int
) -> dict[str, Any]:
    """Median ms per trigger spent in each store write (create_run, mark_running,
    finish_run: one committed transaction each), timed by wrapping the store's methods."""
    store_runs = runner.sync_store.runs
    spent: dict[str, float] = {}
    originals: dict[str, Any] = {}

    def timed(name: str) -> Any:
        original = getattr(store_runs, name)
        originals[name] = original

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

        return wrapper

    for name in ("create_run", "mark_running", "finish_run"):
        if hasattr(RunStore, name):
            setattr(store_runs, name, timed(name))
    per: dict[str, list[float]] = {name: [] for name in originals}
    totals: list[float] = []
    try:
        for _ in range(runs):
            spent.clear()
            began = time.perf_counter()
            await trigger()
            totals.append(time.perf_counter() - began)
            for name in per:
                per[name].append(spent.get(name, 0.0))
    finally:
        for name, original in originals.items():
            setattr(store_runs, name, original)
    out: dict[str, Any] = {name: round(statistics.median(v) * 1000, 3) for name, v in per.items()}
    out["sum_of_medians_ms"] = round(sum(v for k, v in out.items()), 3)
    out["trigger_median_ms_in_this_pass"] = round(statistics.median(totals) * 1000, 3)
    out["runs"] = runs
    return out


def fsync_commit_ms(folder: Path, rounds: int = 50) -> dict[str, float]:
    """What one committed one-row write costs on this disk, WAL, synchronous FULL vs NORMAL
    (the runner uses FULL): context for the store writes above."""
    import sqlite3

    out: dict[str, float] = {}
    for sync in ("FULL", "NORMAL"):
        conn = sqlite3.connect(folder / f"commit-{sync}.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute("CREATE TABLE t (v)")
        times = []
        for i in range(rounds):
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - began)
        conn.close()
        out[f"synchronous_{sync.lower()}_median_ms"] = round(statistics.median(times) * 1000, 3)
    return out


# ---- 2. through HTTP, real runner process ----------------------------------------------------


def through_http(folder: Path, script: str, runs: int) -> dict[str, Any]:
    db_path = folder / "http.sqlite"
    make_db(db_path, script)
    port = free_port()
    config_path = folder / "config.json"
    config_path.write_text(
        json.dumps(
            {
                "port": port,
                "host": "127.0.0.1",
                "dbPath": str(db_path),
                "timezone": "UTC",
                "log": {"level": "warn", "file": str(folder / "http.log")},
            }
        ),
        encoding="utf-8",
    )
    stderr_path = folder / "runner.stderr"
    proc = start_runner(config_path, folder, stderr_path)
    conn: http.client.HTTPConnection | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    break
                conn.close()
                time.sleep(0.02)
            except OSError:
                if conn is not None:
                    conn.close()
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "runner did not come up: " + stderr_path.read_text(errors="replace")
                    ) from None
                time.sleep(0.02)
        assert conn is not None
        client = conn

        def post_run() -> None:
            client.request("POST", f"/jobs/{JOB_ID}/run", body=b"")
            response = client.getresponse()
            body = response.read()
            if response.status != 200 or json.loads(body)["result"]["status"] != "ok":
                raise RuntimeError(f"POST /jobs/{JOB_ID}/run answered {response.status}: {body!r}")

        def health() -> None:
            client.request("GET", "/health")
            client.getresponse().read()

        def bare() -> None:
            subprocess.run([script], check=True)

        methods: dict[str, Callable[[], None]] = {
            "http_post_run": post_run,
            "bare_subprocess_run": bare,
            "http_get_health": health,
        }
        names = list(methods)
        samples: dict[str, list[float]] = {n: [] for n in names}
        for i in range(WARMUP + runs):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                began = time.perf_counter()
                methods[name]()
                elapsed = time.perf_counter() - began
                if i >= WARMUP:
                    samples[name].append(elapsed)
    finally:
        if conn is not None:
            conn.close()
        stop_runner(proc)
    result: dict[str, Any] = {name: stats_ms(s) for name, s in samples.items()}
    result["overhead_median_ms"] = {
        "post_run_minus_bare": round(
            result["http_post_run"]["median_ms"] - result["bare_subprocess_run"]["median_ms"], 3
        ),
    }
    result["runner_exit_code"] = proc.returncode
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="in-process rounds")
    parser.add_argument("--http-runs", type=int, default=200, help="HTTP rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jr-bench-overhead-") as tmp:
        folder = Path(tmp)
        script = make_script(folder)
        # The runner logs to a file; nothing may reach stdout but the JSON.
        configure_logging("warn", str(folder / "inproc.log"))
        inproc = event_loop.run(in_process(folder, script, args.runs))
        http_result = through_http(folder, script, args.http_runs)
        commit = fsync_commit_ms(folder)
    targets = {
        "in_process_overhead_le_2ms": inproc["overhead_median_ms"]["trigger_minus_bare_asyncio"]
        <= TARGET_INPROCESS_MS,
        "http_le_bare_plus_3ms": http_result["overhead_median_ms"]["post_run_minus_bare"]
        <= TARGET_HTTP_MS,
    }
    print(
        json.dumps(
            {
                "benchmark": "run_overhead",
                "cpus": os.cpu_count(),
                "runs": args.runs,
                "http_runs": args.http_runs,
                "in_process": inproc,
                "http": http_result,
                "sqlite_commit_on_this_disk": commit,
                "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
                "targets_met": targets,
            }
        )
    )


if __name__ == "__main__":
    main()
