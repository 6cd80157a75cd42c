"""Cluster mode with real processes: issue 12's full acceptance run and its failover figure;
prints one JSON object.

Three nodes (`start` with `cluster.enabled`, default heartbeat 2 s) on a fresh schema of the
given database, 20 jobs on `* * * * * *` (one pinned to node `a` with `run_on`), for 60 s;
SIGKILL of the leader at 20 s and of another node at 40 s (never `a`). Afterwards every
(job, second) of the window must have exactly one run (ok, late, closed because its node
died, skipped, or missed), none left open, and the pinned job only ever ran on `a`.

Failover: from the leader's SIGKILL to the first run a new leader planned (a row added after
the kill). Its session ends with the process, so another node's next try of the leader lock
(every 0.5 s) takes it and plans from the last planned instant in the database.

    .venv/bin/python benchmarks/bench_cluster.py --db-url postgresql://root@127.0.0.1:5432/test
        [--seconds 60] [--kills 20,40] [--heartbeat-ms 2000]

`--freeze N`: instead, N runs of the frozen-leader scenario (three nodes, 20 jobs every
second; the leader stopped with SIGSTOP, its session and the leader lock left open, until a
new leader has planned, then resumed with SIGCONT): failover from SIGSTOP to the new
leader's first plan, each run and the median, against the bound 3 heartbeats + 2 s; and
every (job, second) at most once, no child started twice, none left open.

The scenario lives in tests/acceptance/cluster_scenario.py (the CI test runs it for 12 s,
killing at 4 s and 8 s).
Targets: failover <= 2 s; 0 missing, 0 doubled, 0 left open; the pinned job only on `a`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from harness import PostgresSchema

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "acceptance"), str(ROOT / "tests")]

from cluster_scenario import run_freeze_scenario, run_scenario  # noqa: E402

TARGET_FAILOVER_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--kills", default="20,40", help="seconds into the window")
    parser.add_argument("--heartbeat-ms", type=int, default=2000)
    parser.add_argument("--freeze", type=int, default=0, help="runs of the freeze scenario")
    args = parser.parse_args()
    if args.freeze:
        freeze(args.db_url, args.freeze, args.heartbeat_ms)
        return
    kills = tuple(float(k) for k in args.kills.split(",") if k)
    with PostgresSchema(args.db_url) as url, tempfile.TemporaryDirectory() as tmp:
        outcome = run_scenario(
            Path(tmp), url, seconds=args.seconds, kills_at=kills, heartbeat_ms=args.heartbeat_ms
        )
    result = outcome.as_dict()
    failover = outcome.failover_s
    result["targets_met"] = {
        "failover_within_2s": failover is not None and failover <= TARGET_FAILOVER_S,
        "every_instant_once": not outcome.missing and not outcome.doubled,
        "none_left_open": outcome.left_open == 0,
        "pinned_only_on_a": outcome.pinned_nodes == {"a"},
    }
    print(
        json.dumps(
            {"benchmark": "cluster", "seconds": args.seconds, "heartbeat_ms": args.heartbeat_ms}
            | result
        )
    )


def freeze(db_url: str, runs: int, heartbeat_ms: int) -> None:
    bound_s = 3 * heartbeat_ms / 1000 + 2
    outcomes = []
    for _ in range(runs):
        with PostgresSchema(db_url) as url, tempfile.TemporaryDirectory() as tmp:
            outcome = run_freeze_scenario(
                Path(tmp), url, jobs=20, heartbeat_ms=heartbeat_ms, before_s=3.0, after_s=4.0
            )
        outcomes.append(outcome.as_dict())
    failovers = sorted(o["failover_s"] for o in outcomes if o["failover_s"] is not None)
    median = failovers[len(failovers) // 2] if len(failovers) == runs else None
    print(
        json.dumps(
            {
                "benchmark": "cluster_freeze",
                "heartbeat_ms": heartbeat_ms,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "failover_s": [o["failover_s"] for o in outcomes],
                "failover_median_s": median,
                "bound_s": bound_s,
                "runs": outcomes,
                "targets_met": {
                    "failover_within_bound": median is not None and failovers[-1] <= bound_s,
                    "at_most_once": all(
                        not o["doubled"] and not o["started_twice"] for o in outcomes
                    ),
                    "none_left_open": all(o["left_open"] == 0 for o in outcomes),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
