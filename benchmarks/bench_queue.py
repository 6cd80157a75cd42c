"""Queue throughput on one SQLite file (WAL, synchronous=FULL), or on PostgreSQL with
`--db-url`, through the client library.

- enqueue: one process enqueues N items, each its own transaction and commit (the way a job
  script calls `enqueue`). Target: >= 2,000 enqueues/s.
- claims: P processes claim random batches of 1-5 until the queue is empty, twice: claiming
  only (`claim_only`: every write transaction is a claim), and as a real consumer does,
  marking each item done after claiming it (`claim_and_done`: one `done` commit per item on
  top of the claims). Every claimed id is collected: an id claimed twice is a double claim,
  an id never claimed is lost. Target, in both runs: >= 1,000 claims/s in total (claim
  transactions in `claim_only`, claimed items in `claim_and_done`), zero double claims, zero
  lost.

With `--db-url postgresql://...` the same runs go to a fresh schema of that database (dropped
after); the PostgreSQL target is >= 2,000 items/s claimed and done by 8 processes.

Run: .venv/bin/python benchmarks/bench_queue.py [--items N] [--processes P] [--check]
     [--db-url postgresql://root@127.0.0.1:5432/test]
Prints one JSON object. Exits 1 on a double claim or a lost item, and with --check also when
a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import PostgresSchema
from jeeves_runner.client import RunnerClient

ENQUEUE_TARGET = 2000.0
CLAIM_TARGET = 1000.0
POSTGRES_CLAIM_AND_DONE_TARGET = 2000.0
CLAIM_ONLY = "claim-only"
CLAIM_AND_DONE = "claim-and-done"


def _worker(db: str, queue: str, go: Path, seed: int) -> None:
    """One consumer: waits for the go file, then claims (and, on the claim-and-done queue,
    finishes each item) until nothing is left."""
    finish = queue == CLAIM_AND_DONE
    rng = random.Random(seed)
    with RunnerClient(db) as jr:
        print("ready", flush=True)
        deadline = time.monotonic() + 120
        while not go.exists():
            if time.monotonic() > deadline:
                sys.exit("no go signal within 120 s")
            time.sleep(0.0005)
        started = time.time()
        claimed: list[int] = []
        claims = 0
        while True:
            batch = jr.dequeue(queue, rng.randint(1, 5))
            claims += 1
            if not batch:
                break
            for item in batch:
                claimed.append(item.id)
                if finish:
                    jr.done(item.id)
        finished = time.time()
    print(json.dumps({"ids": claimed, "claims": claims, "start": started, "end": finished}))


def _fill(jr: RunnerClient, queue: str, items: int) -> list[int]:
    return [
        jr.enqueue(queue, {"n": n, "url": f"https://example.invalid/{n}"}) for n in range(items)
    ]


def _bench_enqueue(db: str, items: int) -> tuple[dict[str, Any], list[int], list[int]]:
    with RunnerClient(db) as jr:
        jr.enqueue("warm-up", 0)  # opens the connection, creates the file's WAL
        began = time.perf_counter()
        claim_only = _fill(jr, CLAIM_ONLY, items)
        seconds = time.perf_counter() - began
        claim_and_done = _fill(jr, CLAIM_AND_DONE, items)
    return (
        {
            "items": items,
            "commits": items,
            "seconds": round(seconds, 3),
            "per_second": round(items / seconds, 1),
            "target_per_second": ENQUEUE_TARGET,
        },
        claim_only,
        claim_and_done,
    )


def _bench_claims(
    db: str, queue: str, processes: int, ids: list[int], folder: Path
) -> dict[str, Any]:
    go = folder / f"go-{queue}"
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", db, queue, str(go), str(seed)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit("a worker did not start")
        go.touch()
        reports = [json.loads(worker.communicate(timeout=600)[0]) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    claimed = [item_id for report in reports for item_id in report["ids"]]
    counts = Counter(claimed)
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    transactions = sum(r["claims"] for r in reports)
    return {
        "processes": processes,
        "items": len(ids),
        "seconds": round(seconds, 3),
        "items_per_second": round(len(claimed) / seconds, 1),
        "claim_transactions": transactions,
        "claim_transactions_per_second": round(transactions / seconds, 1),
        "items_per_process": [len(r["ids"]) for r in reports],
        "double_claims": sum(1 for n in counts.values() if n > 1),
        "lost": len(set(ids) - set(counts)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="items per queue")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--db-url", help="PostgreSQL database to measure instead of SQLite")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)  # DB QUEUE GO SEED
    args = parser.parse_args()
    if args.worker:
        db, queue, go, seed = args.worker
        _worker(db, queue, Path(go), int(seed))
        return

    with tempfile.TemporaryDirectory(prefix="bench-queue-") as folder, contextlib.ExitStack() as on:
        db = str(Path(folder) / "bench.sqlite")
        if args.db_url:
            db = on.enter_context(PostgresSchema(args.db_url))
        enqueue, only_ids, done_ids = _bench_enqueue(db, args.items)
        claim_only = _bench_claims(db, CLAIM_ONLY, args.processes, only_ids, Path(folder))
        claim_and_done = _bench_claims(db, CLAIM_AND_DONE, args.processes, done_ids, Path(folder))
    runs = (claim_only, claim_and_done)
    correct = all(run["double_claims"] == 0 and run["lost"] == 0 for run in runs)
    done_target = POSTGRES_CLAIM_AND_DONE_TARGET if args.db_url else CLAIM_TARGET
    # PostgreSQL's target is the claims; its enqueue rate is reported, not judged.
    fast = (
        (args.db_url or enqueue["per_second"] >= ENQUEUE_TARGET)
        and claim_only["claim_transactions_per_second"] >= CLAIM_TARGET
        and claim_and_done["items_per_second"] >= done_target
    )
    result = {
        "backend": "postgres" if args.db_url else "sqlite",
        "enqueue": enqueue,
        "claim_only": claim_only,
        "claim_and_done": claim_and_done,
        "claim_target_per_second": CLAIM_TARGET,
        "claim_and_done_target_per_second": done_target,
        "correct": correct,
        "meets_targets": fast,
    }
    print(json.dumps(result, indent=2))
    if not correct or (args.check and not fast):
        sys.exit(1)


if __name__ == "__main__":
    main()
