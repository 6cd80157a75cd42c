"""Issue 12's cluster acceptance, with real processes on one machine: three nodes on one
PostgreSQL schema, 20 jobs firing every second, nodes killed with SIGKILL along the way; then
every (job, second) of the window must have exactly one run (ok, late, error because its node
died, or missed), none left open, and the job pinned to node `a` only ever ran there.

Used by tests/acceptance/test_cluster.py (20 s, kills at 7 s and 14 s) and by
benchmarks/bench_cluster.py (60 s, kills at 20 s and 40 s).
"""

from __future__ import annotations

import math
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from runner_process import RunnerProcess, wait_for

from jeeves_runner.models import Job, format_instant, parse_instant
from jeeves_runner.store.postgres import PostgresStore

PINNED = "job-00"  # run_on: ["a"]


@dataclass
class ClusterOutcome:
    instants: int = 0  # (job, second) pairs in the window
    missing: list[tuple[str, str]] = field(default_factory=list)
    doubled: list[tuple[str, str]] = field(default_factory=list)
    left_open: int = 0
    pinned_nodes: set[str | None] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    killed: list[str] = field(default_factory=list)
    # Kill of the leader -> the first run a new leader planned (its row's id is above every
    # row that existed at the kill), in seconds.
    failover_s: float | None = None
    lateness_ms: list[float] = field(default_factory=list)  # ok runs: start - instant
    final_view: dict[str, Any] = field(default_factory=dict)  # GET /cluster on `a` at the end

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.lateness_ms)
        return {
            "instants": self.instants,
            "missing": len(self.missing),
            "doubled": len(self.doubled),
            "left_open": self.left_open,
            "pinned_ran_on": sorted(str(n) for n in self.pinned_nodes),
            "statuses": dict(self.statuses),
            "killed": self.killed,
            "failover_s": self.failover_s,
            "lateness_p50_ms": _quantile(ordered, 0.5),
            "lateness_p99_ms": _quantile(ordered, 0.99),
        }


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def start_nodes(
    folder: Path, pg_url: str, heartbeat_ms: int, *, together: bool = False
) -> dict[str, RunnerProcess]:
    """`together`: the three processes start at once (any of them may lead); else one after
    the other, `a` last."""
    nodes: dict[str, RunnerProcess] = {}
    try:
        # `a` last: one of the others leads, so killing the leader never strands the pinned
        # job.
        for name in ("b", "c", "a"):
            home = folder / name
            home.mkdir()
            nodes[name] = RunnerProcess(
                home,
                dbUrl=pg_url,
                maxConcurrency=20,
                timezone="UTC",
                log={"level": "info"},
                cluster={"enabled": True, "nodeId": name, "heartbeatMs": heartbeat_ms},
            )
            nodes[name].start(wait=not together)
        if together:
            for node in nodes.values():
                wait_for(node.healthy, 30, f"node on port {node.port} (log: {node.log()})")
    except BaseException:
        # One that did not come up: the others must not outlive the test.
        for node in nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.stop(signal.SIGKILL)
        raise
    return nodes


def cluster_view(node: RunnerProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{node.url}/cluster", timeout=5).json()
    return body


def leader_of(node: RunnerProcess) -> str | None:
    leaders = [n["id"] for n in cluster_view(node)["nodes"] if n["leader"] and n["state"] == "up"]
    return leaders[0] if len(leaders) == 1 else None


def run_scenario(
    folder: Path,
    pg_url: str,
    *,
    seconds: int,
    kills_at: tuple[float, ...],
    heartbeat_ms: int,
    before_window: Callable[[dict[str, RunnerProcess]], None] | None = None,
) -> ClusterOutcome:
    """`before_window`: more checks on the running nodes, before the window starts."""
    store = PostgresStore(pg_url)
    now = format_instant(datetime.now(UTC))
    for n in range(20):
        job = Job(
            id=f"job-{n:02d}",
            name=f"job {n}",
            schedule="* * * * * *",
            script="",
            command=("true",),
            run_on=("a",) if n == 0 else (),
        )
        store.jobs.add_job(job, now)
    nodes: dict[str, RunnerProcess] = {}
    outcome = ClusterOutcome()
    try:
        nodes.update(start_nodes(folder, pg_url, heartbeat_ms))
        a = nodes["a"]
        wait_for(lambda: leader_of(a), 10, "a leader")
        if before_window is not None:
            before_window(nodes)
        start = math.ceil(time.time()) + 1.0
        end = start + seconds
        for at in kills_at:
            time.sleep(max(0.0, start + at - time.time()))
            leader = leader_of(a)
            # The leader when it is not `a` (the pinned job's only node), else another one.
            victim = (
                leader
                if leader not in (None, "a")
                else next(name for name in ("b", "c") if name not in outcome.killed)
            )
            if victim in outcome.killed:
                victim = next(name for name in ("b", "c") if name not in outcome.killed)
            killed_at = time.time()
            with store.db.connection() as conn:
                row = conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()
            max_id = int(row[0]) if row else 0
            nodes[victim].stop(signal.SIGKILL)
            outcome.killed.append(victim)
            if victim == leader and outcome.failover_s is None:
                outcome.failover_s = _first_new_plan(store, max_id, killed_at)
        time.sleep(max(0.0, end - time.time()))
        for n in range(20):
            store.jobs.set_enabled(f"job-{n:02d}", False, format_instant(datetime.now(UTC)))
        # Every killed node found lost (its runs closed, its claims run elsewhere), and no
        # run of the window left open.
        wait_for(
            lambda: _open_runs(store, end) == 0,
            60,
            "every run of the window closed",
            step=0.2,
        )
        wait_for(lambda: _pool_empty(store), 30, "the pool empty", step=0.2)
        outcome.final_view = cluster_view(a)
        a.stop()
        for name, node in nodes.items():
            if name not in outcome.killed and name != "a":
                node.stop()
        _check(store, start, end, outcome)
    finally:
        for node in nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.stop(signal.SIGKILL)
        store.close()
    return outcome


def _first_new_plan(
    store: PostgresStore, max_id: int, killed_at: float, timeout: float = 10
) -> float | None:
    """Seconds from the kill until a run planned after it shows up."""
    deadline = killed_at + timeout
    while time.time() < deadline:
        with store.db.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM runs WHERE id > %s AND trigger = 'schedule' LIMIT 1", (max_id,)
            ).fetchone()
        if row is not None:
            return round(time.time() - killed_at, 3)
        time.sleep(0.01)
    return None


def _open_runs(store: PostgresStore, end: float) -> int:
    limit = format_instant(datetime.fromtimestamp(end, UTC))
    with store.db.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE status IN ('pending', 'running') "
            "AND (scheduled_for IS NULL OR scheduled_for < %s)",
            (limit,),
        ).fetchone()
    return int(row[0]) if row else 0


def _pool_empty(store: PostgresStore) -> bool:
    with store.db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM runs WHERE status IN ('pending', 'running')")
        counted = row.fetchone()
    return counted is not None and int(counted[0]) == 0


def _check(store: PostgresStore, start: float, end: float, outcome: ClusterOutcome) -> None:
    with store.db.connection() as conn:
        rows = conn.execute(
            "SELECT job_id, status, scheduled_for, missed_first, missed_last, node_id, "
            "started_at FROM runs WHERE trigger = 'schedule'"
        ).fetchall()
    seen: Counter[tuple[str, str]] = Counter()
    for job_id, status, scheduled, first, last, node, started in rows:
        outcome.statuses[status] += 1
        if status == "missed" and first is not None and last is not None:
            instant = parse_instant(first)
            while instant <= parse_instant(last):
                seen[(job_id, format_instant(instant))] += 1
                instant += timedelta(seconds=1)
            continue
        if scheduled is None:
            continue
        seen[(job_id, scheduled)] += 1
        if job_id == PINNED and status not in ("missed", "pending"):
            outcome.pinned_nodes.add(node)
        if status == "ok" and started is not None:
            late = (parse_instant(started) - parse_instant(scheduled)).total_seconds()
            outcome.lateness_ms.append(late * 1000)
    second = int(start)
    while second < end:
        instant = format_instant(datetime.fromtimestamp(second, UTC))
        for n in range(20):
            key = (f"job-{n:02d}", instant)
            outcome.instants += 1
            if seen[key] == 0:
                outcome.missing.append(key)
            elif seen[key] > 1:
                outcome.doubled.append(key)
        second += 1
    with store.db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM runs WHERE status IN ('running', 'pending')")
        counted = row.fetchone()
    outcome.left_open = int(counted[0]) if counted else 0


@dataclass
class FreezeOutcome:
    frozen: str = ""
    new_leader: str | None = None
    # SIGSTOP of the leader -> the first run a new leader planned, in seconds.
    failover_s: float | None = None
    frozen_for_s: float = 0.0
    instants: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)
    doubled: list[tuple[str, str]] = field(default_factory=list)
    # Run ids whose child started more than once (each child appends its JR_RUN_ID).
    started_twice: list[str] = field(default_factory=list)
    left_open: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    leader_after: str | None = None  # as the resumed node sees it
    resumed_log: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "frozen": self.frozen,
            "new_leader": self.new_leader,
            "failover_s": self.failover_s,
            "frozen_for_s": round(self.frozen_for_s, 3),
            "instants": self.instants,
            "missing": len(self.missing),
            "doubled": len(self.doubled),
            "started_twice": len(self.started_twice),
            "left_open": self.left_open,
            "statuses": dict(self.statuses),
            "leader_after": self.leader_after,
        }


def run_freeze_scenario(
    folder: Path, pg_url: str, *, jobs: int, heartbeat_ms: int, before_s: float, after_s: float
) -> FreezeOutcome:
    """Three nodes, `jobs` jobs every second; the leader is frozen with SIGSTOP (its
    session, and the leader lock, stay open) until a new leader has planned and half a
    second more has passed, then resumed with SIGCONT and left to run `after_s` seconds."""
    store = PostgresStore(pg_url)
    starts = folder / "started.txt"
    now = format_instant(datetime.now(UTC))
    for n in range(jobs):
        job = Job(
            id=f"job-{n:02d}",
            name=f"job {n}",
            schedule="* * * * * *",
            script="",
            command=("sh", "-c", f'echo "$JR_RUN_ID" >> "{starts}"'),
        )
        store.jobs.add_job(job, now)
    nodes: dict[str, RunnerProcess] = {}
    outcome = FreezeOutcome()
    frozen: RunnerProcess | None = None
    try:
        nodes.update(start_nodes(folder, pg_url, heartbeat_ms, together=True))
        a = nodes["a"]
        leader = wait_for(lambda: leader_of(a), 10, "a leader")
        start = math.ceil(time.time())
        time.sleep(max(0.0, start + before_s - time.time()))
        leader = wait_for(lambda: leader_of(a), 5, "a leader")
        frozen = nodes[leader]
        watcher = next(node for name, node in nodes.items() if name != leader)
        outcome.frozen = leader
        assert frozen.proc is not None
        frozen.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        time.sleep(0.05)  # a commit it had sent lands before the mark
        with store.db.connection() as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()
        max_id = int(row[0]) if row else 0
        first = _first_new_plan(store, max_id, stopped_at, timeout=15)
        outcome.failover_s = first
        outcome.new_leader = wait_for(
            lambda: (found := leader_of(watcher)) != leader and found, 10, "a new leader"
        )
        time.sleep(0.5)
        frozen.proc.send_signal(signal.SIGCONT)
        outcome.frozen_for_s = time.time() - stopped_at
        end = math.floor(time.time() + after_s)
        time.sleep(max(0.0, end - time.time()))
        for n in range(jobs):
            store.jobs.set_enabled(f"job-{n:02d}", False, format_instant(datetime.now(UTC)))
        wait_for(lambda: _open_runs(store, end) == 0, 30, "every run closed", step=0.2)
        wait_for(lambda: _pool_empty(store), 30, "the pool empty", step=0.2)
        outcome.leader_after = leader_of(frozen)
        for node in nodes.values():  # all at once
            assert node.proc is not None
            node.proc.send_signal(signal.SIGTERM)
        for node in nodes.values():
            node.stop()
        outcome.resumed_log = frozen.log()
        _check_window(store, start, end, jobs, outcome)
        lines = starts.read_text().split() if starts.exists() else []
        outcome.started_twice = sorted(k for k, v in Counter(lines).items() if v > 1)
    finally:
        if frozen is not None and frozen.proc is not None and frozen.proc.poll() is None:
            frozen.proc.send_signal(signal.SIGCONT)
        for node in nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.stop(signal.SIGKILL)
        store.close()
    return outcome


def _check_window(
    store: PostgresStore, start: float, end: float, jobs: int, outcome: FreezeOutcome
) -> None:
    with store.db.connection() as conn:
        rows = conn.execute(
            "SELECT job_id, status, scheduled_for, missed_first, missed_last FROM runs "
            "WHERE trigger = 'schedule'"
        ).fetchall()
        counted = conn.execute(
            "SELECT count(*) FROM runs WHERE status IN ('running', 'pending')"
        ).fetchone()
    outcome.left_open = int(counted[0]) if counted else 0
    seen: Counter[tuple[str, str]] = Counter()
    for job_id, status, scheduled, first, last in rows:
        outcome.statuses[status] += 1
        if status == "missed" and first is not None and last is not None:
            instant = parse_instant(first)
            while instant <= parse_instant(last):
                seen[(job_id, format_instant(instant))] += 1
                instant += timedelta(seconds=1)
        elif scheduled is not None:
            seen[(job_id, scheduled)] += 1
    second = int(start)
    while second < end:
        instant = format_instant(datetime.fromtimestamp(second, UTC))
        for n in range(jobs):
            key = (f"job-{n:02d}", instant)
            outcome.instants += 1
            if seen[key] == 0:
                outcome.missing.append(key)
            elif seen[key] > 1:
                outcome.doubled.append(key)
        second += 1
