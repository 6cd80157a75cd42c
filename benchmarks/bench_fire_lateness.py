"""Fire lateness of the real runner process against a bare-Python floor; prints one JSON object.

20 jobs on `* * * * * *` (every second), maxConcurrency 20. Each job is a bash script that
prints `$EPOCHREALTIME`: the child's own start time, as bash sees it once it runs. Lateness is
that instant minus the whole second the fire was due for, so it covers everything between the
due instant and the child actually running: the runner's wake-up, its precise wait, 20
spawns one after the other, and bash's own start.

Two phases, one after the other (never at the same time), same duration:

1. floor: a separate bare Python process wakes at each whole second (sleep until ~50 ms
   before, then a short precise wait) and starts the same 20 scripts with subprocess.Popen
   (stdout to a pipe, read after all 20 started).
2. runner: `python -m jeeves_runner start -c config.json` in a temp folder (log.level warn);
   the window starts 2 s after /health answers. Afterwards, the runs table is read: for every
   (job, second) in the window there must be exactly one run.

A run is attributed to the whole second its child started in (floor of its start time); a
lateness of a second or more would show up as a duplicate next to a missing slot.

Also reported per phase: the first and the last child of each fire (wake-up precision vs the
train of 20 spawns), the CPU used by the firing process itself, and how busy the whole host
was (it is shared; background load moves the tails more than anything the runner does).
`--blocks N` splits each phase into N alternating blocks (floor, runner, floor, runner, ...)
so that background load falls on both alike; the default, 1, is the plain sequence.

With `--db-url postgresql://...` each block also runs the runner on a fresh schema of that
database (`runner_postgres`, after the SQLite runner, same duration); its target is p50 within
5 ms of the SQLite runner's, measured in the same run, and no fire lost.

    .venv/bin/python benchmarks/bench_fire_lateness.py [--duration 30] [--jobs 20] [--blocks 1]
        [--db-url postgresql://root@127.0.0.1:5432/test]

Targets: runner p50 <= floor p50 + 5 ms, runner p99 <= floor p99 + 10 ms, no fire lost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from harness import PostgresSchema, free_port, health_ok, start_runner, stop_runner
from jeeves_runner.models import Job, OverlapPolicy
from jeeves_runner.store.opening import open_store

HERE = Path(__file__).resolve()
SCRIPT_BODY = '#!/bin/bash\necho "$EPOCHREALTIME"\n'
WARMUP_S = 2  # whole seconds between the runner answering /health and the window start


# ---- small helpers -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(lateness_s: list[float]) -> dict[str, Any]:
    if not lateness_s:
        return {"count": 0}
    ms = [x * 1000 for x in lateness_s]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "min_ms": round(min(ms), 2),
    }


def sleep_until(instant: float) -> None:
    remaining = instant - time.time()
    if remaining > 0:
        time.sleep(remaining)


class HostLoad:
    """How busy the whole machine was during a phase (it is shared: other work skews tails)."""

    def __init__(self) -> None:
        self._start = psutil.cpu_times()

    def busy_pct(self) -> float:
        end = psutil.cpu_times()
        total = sum(end) - sum(self._start)
        idle = (end.idle - self._start.idle) + (end.iowait - self._start.iowait)
        return round(100 * (1 - idle / total), 1) if total else 0.0


class ProcessCpu:
    """CPU used by the firing process itself during the window (its children, the job
    scripts, are not counted: they are the same in both phases)."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self._start: Any = None
        self._end: Any = None

    def begin(self) -> None:
        self._start = self._proc.cpu_times()

    def end(self) -> None:
        self._end = self._proc.cpu_times()

    def used_s(self) -> float:
        return float((self._end.user - self._start.user) + (self._end.system - self._start.system))


def make_scripts(folder: Path, count: int) -> list[str]:
    scripts = []
    for i in range(count):
        path = folder / f"job-{i:02d}.sh"
        path.write_text(SCRIPT_BODY, encoding="utf-8")
        path.chmod(0o755)
        scripts.append(str(path))
    return scripts


def tally(
    starts: list[tuple[int, float]], jobs: int, windows: list[tuple[int, int]]
) -> dict[str, Any]:
    """starts: (job index, child start). Attribute each to its whole second; check that every
    (job, second) of each window [first, first + duration) has exactly one."""
    in_window = {sec for first, duration in windows for sec in range(first, first + duration)}
    seen: dict[tuple[int, int], int] = {}
    lateness: list[float] = []
    per_second: dict[int, list[float]] = {}
    for job, t in starts:
        second = math.floor(t)
        if second not in in_window:
            continue
        seen[(job, second)] = seen.get((job, second), 0) + 1
        lateness.append(t - second)
        per_second.setdefault(second, []).append(t - second)
    expected = jobs * len(in_window)
    missing = sum(1 for j in range(jobs) for sec in in_window if (j, sec) not in seen)
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    return {
        "fires_expected": expected,
        "fires_recorded": len(lateness),
        "missing": missing,
        "duplicates": duplicates,
        "lateness": summary_ms(lateness),
        # The first child of each fire shows the wake-up precision; the last one adds the
        # train of spawns before it.
        "first_child_of_fire": summary_ms([min(v) for v in per_second.values()]),
        "last_child_of_fire": summary_ms([max(v) for v in per_second.values()]),
    }


class Phase:
    """What one phase (floor or runner) gathered over its blocks."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, float]] = []
        self.windows: list[tuple[int, int]] = []
        self.cpu_s = 0.0
        self.host_busy: list[float] = []
        self.statuses: dict[str, int] = {}
        self.exit_codes: list[int | None] = []
        self.blocks: list[dict[str, Any]] = []

    def add_block(
        self,
        starts: list[tuple[int, float]],
        window: tuple[int, int],
        jobs: int,
        cpu_s: float,
        host_busy: float,
    ) -> None:
        self.starts += starts
        self.windows.append(window)
        self.cpu_s += cpu_s
        self.host_busy.append(host_busy)
        lat = tally(starts, jobs, [window])["lateness"]
        self.blocks.append(
            {"p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"), "host_busy_pct": host_busy}
        )

    def result(self, jobs: int) -> dict[str, Any]:
        out = tally(self.starts, jobs, self.windows)
        seconds = sum(d for _, d in self.windows)
        out["process_cpu_pct_of_one_core"] = round(100 * self.cpu_s / seconds, 1)
        out["host_busy_pct_of_all_cores"] = round(sum(self.host_busy) / len(self.host_busy), 1)
        if self.statuses:
            out["statuses_in_window"] = self.statuses
        if self.exit_codes:
            out["runner_exit_codes"] = self.exit_codes
        if len(self.blocks) > 1:
            out["blocks"] = self.blocks
        return out


# ---- floor: a bare Python loop in its own process ------------------------------------------


def floor_child(scripts: list[str], first: int, duration: int) -> None:
    """Runs in a separate process. Prints [[job index, child start], ...] as JSON."""
    starts: list[tuple[int, float]] = []
    for second in range(first, first + duration):
        sleep_until(second - 0.05)
        remaining = second - time.time()
        if remaining > 0.002:
            time.sleep(remaining - 0.0015)
        while time.time() < second:
            pass
        procs = [
            subprocess.Popen(["bash", s], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            for s in scripts
        ]
        for i, p in enumerate(procs):
            out, _ = p.communicate()
            starts.append((i, float(out.decode().split()[0])))
    print(json.dumps(starts))


def run_floor(scripts: list[str], duration: int, phase: Phase) -> None:
    first = math.ceil(time.time()) + 2  # let the child import and settle
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "--_floor-child", str(first), str(duration), *scripts],
        stdout=subprocess.PIPE,
        text=True,
    )
    cpu = ProcessCpu(proc.pid)
    sleep_until(first)
    cpu.begin()
    host = HostLoad()
    sleep_until(first + duration)
    cpu.end()
    busy = host.busy_pct()
    out, _ = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"floor process exited {proc.returncode}")
    starts = [(int(j), float(t)) for j, t in json.loads(out)]
    phase.add_block(starts, (first, duration), len(scripts), cpu.used_s(), busy)


# ---- the real runner process ----------------------------------------------------------------


def run_runner(
    folder: Path,
    scripts: list[str],
    duration: int,
    block: int,
    phase: Phase,
    db_url: str | None = None,
    cluster_nodes: int = 0,
) -> None:
    """One runner process on a fresh database (a SQLite file, or the fresh PostgreSQL schema
    `db_url` names), or `cluster_nodes` runners in cluster mode on that schema; the window
    starts WARMUP_S after /health (of every node). The CPU figure is the first process's."""
    db_path = folder / f"runner-{block}.sqlite"
    location = db_url or str(db_path)
    configs: list[tuple[Path, int]] = []
    for node in range(max(1, cluster_nodes)):
        port = free_port()
        config: dict[str, Any] = {
            "port": port,
            "host": "127.0.0.1",
            **({"dbUrl": db_url} if db_url else {"dbPath": str(db_path)}),
            "maxConcurrency": len(scripts),
            "timezone": "UTC",
            "log": {"level": "warn", "file": str(folder / f"runner-{block}-{node}.log")},
        }
        if cluster_nodes:
            config["cluster"] = {"enabled": True, "nodeId": f"node-{node}"}
        config_path = folder / f"config-{block}-{node}.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        configs.append((config_path, port))

    store = open_store(location)
    now = "2026-01-01T00:00:00.000Z"
    for i, script in enumerate(scripts):
        job = Job(
            id=f"job-{i:02d}",
            name=f"Lateness probe {i}",
            schedule="* * * * * *",
            script=script,
            overlap_policy=OverlapPolicy.SKIP,
        )
        store.jobs.add_job(job, now)
    store.close()

    procs: list[subprocess.Popen[bytes]] = []
    try:
        for node, (config_path, port) in enumerate(configs):
            stderr_path = folder / f"runner-{block}-{node}.stderr"
            proc = start_runner(config_path, folder, stderr_path)
            procs.append(proc)
            deadline = time.monotonic() + 30
            while not health_ok(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"runner did not come up: {stderr_path.read_text(errors='replace')[-2000:]}"
                    )
                time.sleep(0.02)
        first = math.ceil(time.time()) + WARMUP_S
        cpu = ProcessCpu(procs[0].pid)
        sleep_until(first)
        cpu.begin()
        host = HostLoad()
        sleep_until(first + duration)
        cpu.end()
        busy = host.busy_pct()
        # The last window second's children start within it; leave time for their rows.
        sleep_until(first + duration + 1.5)
    finally:
        for proc in procs:
            stop_runner(proc)
    phase.exit_codes.extend(proc.returncode for proc in procs)
    store = open_store(location)
    try:
        rows = [
            (run["job_id"], run["status"], run["stdout"], run["started_at"])
            for i in range(len(scripts))
            for run in store.runs.list_runs(f"job-{i:02d}", 1_000_000)
        ]
    finally:
        store.close()
    starts: list[tuple[int, float]] = []
    counts = phase.statuses
    for job_id, status, stdout, started_at in rows:
        if status == "skipped":
            # started_at of a skipped row is the fire instant; count those in the window.
            if started_at and first <= _parse_ts(started_at) < first + duration:
                counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        if not stdout or not stdout.strip():
            counts[f"{status}_without_output"] = counts.get(f"{status}_without_output", 0) + 1
            continue
        t = float(stdout.split()[0])
        if first <= math.floor(t) < first + duration:
            counts[status] = counts.get(status, 0) + 1
        starts.append((int(job_id.split("-")[1]), t))
    phase.add_block(starts, (first, duration), len(scripts), cpu.used_s(), busy)


def _parse_ts(text: str) -> float:
    from jeeves_runner.models import parse_instant

    return parse_instant(text).timestamp()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_floor-child":
        floor_child(sys.argv[4:], int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds per phase")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument(
        "--blocks",
        type=int,
        default=1,
        help="split each phase into this many alternating blocks (floor, runner, floor, ...) "
        "so that background load on a shared host falls on both alike",
    )
    parser.add_argument("--db-url", help="also run the runner on this PostgreSQL database")
    parser.add_argument(
        "--cluster-nodes",
        type=int,
        default=0,
        help="with --db-url: also run this many nodes in cluster mode on a fresh schema",
    )
    args = parser.parse_args()
    block_s = max(1, args.duration // args.blocks)

    floor, runner, on_postgres, on_cluster = Phase(), Phase(), Phase(), Phase()
    with tempfile.TemporaryDirectory(prefix="jr-bench-fire-") as tmp:
        folder = Path(tmp)
        scripts = make_scripts(folder, args.jobs)
        for block in range(args.blocks):
            run_floor(scripts, block_s, floor)
            run_runner(folder, scripts, block_s, block, runner)
            if args.db_url:
                with PostgresSchema(args.db_url) as url:
                    run_runner(folder, scripts, block_s, block + 1000, on_postgres, url)
                if args.cluster_nodes:
                    with PostgresSchema(args.db_url) as url:
                        run_runner(
                            folder,
                            scripts,
                            block_s,
                            block + 2000,
                            on_cluster,
                            url,
                            cluster_nodes=args.cluster_nodes,
                        )
    fl, rn = floor.result(args.jobs), runner.result(args.jobs)
    fla, rla = fl["lateness"], rn["lateness"]
    targets = {
        "no_fire_lost": rn["missing"] == 0
        and rn["duplicates"] == 0
        and rn["fires_recorded"] == rn["fires_expected"],
        "p50_within_floor_plus_5ms": rla.get("p50_ms", math.inf) <= fla["p50_ms"] + 5,
        "p99_within_floor_plus_10ms": rla.get("p99_ms", math.inf) <= fla["p99_ms"] + 10,
    }
    extra: dict[str, Any] = {}
    if args.db_url:
        pg = on_postgres.result(args.jobs)
        pla = pg["lateness"]
        targets["postgres_no_fire_lost"] = (
            pg["missing"] == 0
            and pg["duplicates"] == 0
            and pg["fires_recorded"] == pg["fires_expected"]
        )
        targets["postgres_p50_within_sqlite_plus_5ms"] = (
            pla.get("p50_ms", math.inf) <= rla.get("p50_ms", math.inf) + 5
        )
        extra = {
            "runner_postgres": pg,
            "postgres_minus_sqlite_ms": {
                "p50": round(pla.get("p50_ms", math.nan) - rla.get("p50_ms", math.nan), 2),
                "p99": round(pla.get("p99_ms", math.nan) - rla.get("p99_ms", math.nan), 2),
            },
        }
    if args.db_url and args.cluster_nodes:
        cl = on_cluster.result(args.jobs)
        cla = cl["lateness"]
        targets["cluster_no_fire_lost"] = (
            cl["missing"] == 0
            and cl["duplicates"] == 0
            and cl["fires_recorded"] == cl["fires_expected"]
        )
        targets["cluster_p50_within_sqlite_plus_5ms"] = (
            cla.get("p50_ms", math.inf) <= rla.get("p50_ms", math.inf) + 5
        )
        extra["cluster_nodes"] = args.cluster_nodes
        extra["runner_cluster"] = cl
        extra["cluster_minus_sqlite_ms"] = {
            "p50": round(cla.get("p50_ms", math.nan) - rla.get("p50_ms", math.nan), 2),
            "p99": round(cla.get("p99_ms", math.nan) - rla.get("p99_ms", math.nan), 2),
        }
    print(
        json.dumps(
            {
                "benchmark": "fire_lateness",
                "jobs": args.jobs,
                "duration_s": block_s * args.blocks,
                "blocks": args.blocks,
                "cpus": os.cpu_count(),
                "floor": fl,
                "runner": rn,
                "runner_minus_floor_ms": {
                    "p50": round(rla.get("p50_ms", math.nan) - fla["p50_ms"], 2),
                    "p99": round(rla.get("p99_ms", math.nan) - fla["p99_ms"], 2),
                },
                **extra,
                "targets_met": targets,
            }
        )
    )


if __name__ == "__main__":
    main()
