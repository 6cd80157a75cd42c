"""Queue claims and dedup across concurrent PostgreSQL sessions (several stores, as several
processes or machines would have): no item is claimed twice, no duplicate gets in."""

from __future__ import annotations

import json
import threading
from collections import Counter

from jeeves_runner.queue_model import QueueDefinition
from jeeves_runner.store.postgres import PostgresStore

NOW = "2026-03-02T01:00:00.000Z"


def run_together(count: int, work: object) -> None:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(n: int) -> None:
        start.wait()
        try:
            work(n)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_consumers_never_share_an_item(store: PostgresStore, pg_url: str) -> None:
    for n in range(300):
        store.queues.enqueue("work", json.dumps(n), n % 3, None, NOW)
    consumers = [PostgresStore(pg_url, pool_size=1) for _ in range(4)]
    taken: list[list[int]] = [[] for _ in consumers]

    def consume(n: int) -> None:
        while items := consumers[n].queues.claim("work", 7, NOW):
            for item in items:
                taken[n].append(item.id)
                assert consumers[n].queues.done(item.id, NOW, attempt=item.attempts)

    try:
        run_together(len(consumers), consume)
    finally:
        for c in consumers:
            c.close()
    every = Counter(i for ids in taken for i in ids)
    assert len(every) == 300
    assert max(every.values()) == 1
    assert store.queues.queue_status("work", NOW) == {
        "depth": 0,
        "claimedCount": 0,
        "failedCount": 0,
        "oldestAge": None,
    }


def test_racing_producers_with_one_dedup_key_enqueue_it_once(
    store: PostgresStore, pg_url: str
) -> None:
    store.queues.add_queue(QueueDefinition(id="q", name="q", dedup_expr="$.url"), NOW)
    producers = [PostgresStore(pg_url, pool_size=1) for _ in range(6)]
    results: list[int] = []

    def produce(n: int) -> None:
        results.append(producers[n].queues.enqueue("q", '{"url": "same"}', 0, None, NOW))

    try:
        run_together(len(producers), produce)
    finally:
        for p in producers:
            p.close()
    assert sorted(r > 0 for r in results) == [False] * 5 + [True]
    assert store.queues.queue_status("q", NOW)["depth"] == 1  # type: ignore[index]
