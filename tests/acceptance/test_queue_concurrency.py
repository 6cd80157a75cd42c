"""Claims across real processes on one SQLite file: many consumers never share an item and
lose none; a consumer killed while holding items gives them back when its lease runs out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jeeves_runner.client import RunnerClient
from jeeves_runner.models import parse_instant
from jeeves_runner.store import SqliteStore

pytestmark = pytest.mark.slow

# Claims random batches of 1-5 until the queue is empty, marking each item done; prints the
# ids it got. Waits for a go file so every consumer starts claiming at the same moment.
CONSUMER = r"""
import json, random, sys, time
from pathlib import Path
from jeeves_runner.client import RunnerClient

db, queue, go, seed = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
with RunnerClient(db) as jr:
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal within 60 s")
        time.sleep(0.001)
    claimed = []
    while True:
        batch = jr.dequeue(queue, rng.randint(1, 5))
        if not batch:
            break
        for item in batch:
            claimed.append(item.id)
            jr.done(item.id)
    print(json.dumps(claimed), flush=True)
"""

# Claims N items, reports them, then holds them until it is killed.
HOLDER = r"""
import json, sys
from jeeves_runner.client import RunnerClient

jr = RunnerClient(sys.argv[1])
items = jr.dequeue(sys.argv[2], int(sys.argv[3]))
print(json.dumps([[i.id, i.lease_expires_at] for i in items]), flush=True)
sys.stdin.read()
"""


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_all(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()


def test_eight_processes_claim_5000_items_exactly_once(tmp_db: Path, tmp_path: Path) -> None:
    with RunnerClient(tmp_db) as jr:
        ids = [jr.enqueue("load", {"n": n}, priority=n % 3) for n in range(5000)]
    go = tmp_path / "go"
    with ExitStack() as stack:
        consumers = [
            stack.enter_context(_spawn(CONSUMER, str(tmp_db), "load", str(go), str(seed)))
            for seed in range(8)
        ]
        stack.callback(_kill_all, consumers)  # runs before each Popen's own exit waits
        for consumer in consumers:
            assert consumer.stdout is not None
            assert consumer.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [consumer.communicate(timeout=120) for consumer in consumers]

    claims: list[list[int]] = []
    for consumer, (stdout, stderr) in zip(consumers, outputs, strict=True):
        assert consumer.returncode == 0, stderr
        claims.append(json.loads(stdout))
    claimed = [item_id for batch in claims for item_id in batch]
    doubles = [item_id for item_id, n in Counter(claimed).items() if n > 1]
    assert doubles == []
    assert sorted(claimed) == sorted(ids)  # none lost
    assert sum(1 for batch in claims if batch) >= 2  # the claims really did interleave
    with RunnerClient(tmp_db) as jr:
        assert jr.dequeue("load", 5) == []
    store = SqliteStore(tmp_db)
    try:
        rows = store.db.connection().execute(
            "SELECT status, attempts, count(*) FROM queue_items GROUP BY status, attempts"
        )
        assert [tuple(row) for row in rows] == [("done", 1, 5000)]
    finally:
        store.close()


def test_items_of_a_killed_consumer_are_claimed_again_after_the_lease(tmp_db: Path) -> None:
    lease_ms = 5000
    with RunnerClient(tmp_db) as jr:
        jr.add_queue("jobs", lease_ms=lease_ms, max_attempts=3)
        ids = [jr.enqueue("jobs", {"n": n}) for n in range(5)]

    with _spawn(HOLDER, str(tmp_db), "jobs", "3") as holder:
        try:
            assert holder.stdout is not None
            held = json.loads(holder.stdout.readline())
        finally:
            holder.kill()  # SIGKILL: no chance to give anything back
            holder.communicate()
    held_ids = [item_id for item_id, _lease in held]
    lease_end = max(parse_instant(lease) for _id, lease in held)
    assert held_ids == ids[:3]

    with RunnerClient(tmp_db) as jr:
        assert datetime.now(UTC) < lease_end, "the machine took longer than the lease"
        others = jr.dequeue("jobs", 10)
        assert [item.id for item in others] == ids[3:]  # the dead consumer's items are leased
        for item in others:
            assert jr.done(item.id) is True

        deadline = time.monotonic() + lease_ms / 1000 + 30
        again = jr.dequeue("jobs", 10)
        while not again:
            assert time.monotonic() < deadline, "the held items never came back"
            time.sleep(0.05)
            again = jr.dequeue("jobs", 10)
        reclaimed_at = datetime.now(UTC)

    assert sorted(item.id for item in again) == held_ids
    assert all(item.attempts == 2 for item in again)  # the lost claim counts as an attempt
    assert reclaimed_at >= lease_end
