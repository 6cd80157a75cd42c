"""The client library job scripts import: every operation, on a real SQLite file, with the
time given by a FakeClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.client import (
    DB_PATH_ENV,
    DB_URL_ENV,
    DedupScope,
    ItemStatus,
    QueueExistsError,
    RunnerClient,
    StoreError,
    parse_ttl,
)
from jeeves_runner.clock import FakeClock
from jeeves_runner.store import SqliteStore

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def jr(tmp_db: Path, clock: FakeClock) -> Iterator[RunnerClient]:
    with RunnerClient(tmp_db, clock=clock) as client:
        yield client


# -- opening ----------------------------------------------------------------------------------


def test_opens_the_database_named_by_jr_db_path(
    tmp_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DB_PATH_ENV, str(tmp_db))
    with RunnerClient() as jr:
        jr.set_state("ns", "k", "v")
        assert jr.db_path == str(tmp_db)
    with RunnerClient(tmp_db) as again:
        assert again.get_state("ns", "k") == "v"


def test_without_a_path_or_jr_db_path_it_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DB_PATH_ENV, raising=False)
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    with pytest.raises(StoreError) as caught:
        RunnerClient()
    assert str(caught.value) == (
        "no database: pass a path or URL to RunnerClient or set JR_DB_URL or JR_DB_PATH "
        "(the runner sets one of them for every job)"
    )


def test_a_closed_client_refuses_calls(tmp_db: Path) -> None:
    jr = RunnerClient(tmp_db)
    jr.close()
    jr.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="this RunnerClient is closed"):
        jr.get_state("ns", "k")
    with pytest.raises(StoreError, match="closed"):
        jr.list_queues()


def test_on_store_shares_an_open_store_and_leaves_it_open(tmp_db: Path) -> None:
    store = SqliteStore(tmp_db)
    try:
        with RunnerClient.on_store(store) as jr:
            jr.set_state("ns", "k", "v")
        assert store.jobs.count_jobs() == 0  # still open
        with RunnerClient.on_store(store) as jr:
            assert jr.get_state("ns", "k") == "v"
    finally:
        store.close()


# -- TTL --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("90s", timedelta(seconds=90)),
        ("60m", timedelta(minutes=60)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
        ("1s", timedelta(seconds=1)),
    ],
)
def test_parse_ttl(text: str, length: timedelta) -> None:
    assert parse_ttl(text) == length


@pytest.mark.parametrize(
    "text", ["", "30", "d", "0d", "1w", "1.5h", "-1d", " 1d", "1d ", "1D", "٣d", "1" * 5000 + "d"]
)
def test_parse_ttl_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_ttl(text)
    assert str(caught.value) == (
        f"ttl {text!r} is not valid: use a whole number above 0 followed by s, m, h or d "
        "(e.g. 90s, 60m, 24h, 30d)"
    )


def test_parse_ttl_refuses_a_length_no_clock_can_hold() -> None:
    with pytest.raises(ValueError, match="ttl '9999999999d' is too long"):
        parse_ttl("9999999999d")


def test_a_value_past_the_end_of_time_is_refused(jr: RunnerClient) -> None:
    with pytest.raises(ValueError, match="ttl '3000000d' is too long"):
        jr.set_state("ns", "k", "v", ttl="3000000d")  # fits a timedelta, not a date


@pytest.mark.parametrize("ttl", ["90s", "60m", "24h", "30d"])
def test_a_value_expires_exactly_at_its_ttl(jr: RunnerClient, clock: FakeClock, ttl: str) -> None:
    jr.set_state("ns", "k", "v", ttl=ttl)
    clock.advance(parse_ttl(ttl).total_seconds() - 0.001)
    assert jr.get_state("ns", "k") == "v"  # 1 ms before the end
    clock.advance(0.001)
    assert jr.get_state("ns", "k") is None  # at the end, before any maintenance


def test_an_expired_value_is_missing_for_every_read(jr: RunnerClient, clock: FakeClock) -> None:
    jr.set_state("ns", "k", "v", ttl="60m")
    jr.set_item("ns", "k", "seen", "1")
    clock.advance(3600)
    assert jr.get_state("ns", "k") is None
    assert not jr.has_item("ns", "k", "seen")
    assert jr.get_item("ns", "k", "seen") is None
    assert jr.count_items("ns", "k") == 0
    assert jr.list_item_keys("ns", "k") == []
    assert jr.prune_items("ns", "k", 0) == 0
    assert jr.delete_state("ns", "k") is False


def test_setting_again_renews_or_drops_the_ttl(jr: RunnerClient, clock: FakeClock) -> None:
    jr.set_state("ns", "k", "v", ttl="60m")
    clock.advance(1800)
    jr.set_state("ns", "k", "v2", ttl="60m")  # a new hour from now
    clock.advance(3000)
    assert jr.get_state("ns", "k") == "v2"
    jr.set_state("ns", "k", "v3")  # no ttl: never expires
    clock.advance(365 * 86400)
    assert jr.get_state("ns", "k") == "v3"


def test_a_value_set_after_expiry_starts_without_the_old_items(
    jr: RunnerClient, clock: FakeClock
) -> None:
    jr.set_state("ns", "k", "v", ttl="1m")
    jr.set_item("ns", "k", "old")
    clock.advance(60)
    jr.set_state("ns", "k", "new")
    assert jr.list_item_keys("ns", "k") == []


# -- state ------------------------------------------------------------------------------------


def test_state_get_set_delete(jr: RunnerClient) -> None:
    assert jr.get_state("ns", "k") is None
    jr.set_state("ns", "k", "v1")
    jr.set_state("ns", "k", "v2")
    jr.set_state("other", "k", "x")
    assert jr.get_state("ns", "k") == "v2"
    assert jr.get_state("other", "k") == "x"
    assert jr.delete_state("ns", "k") is True
    assert jr.delete_state("ns", "k") is False
    assert jr.get_state("ns", "k") is None
    assert jr.get_state("other", "k") == "x"


def test_values_are_text_kept_exactly(jr: RunnerClient) -> None:
    for value in ("", " padded ", "ünïcödé ✓", '{"json": true}', "multi\nline", "x" * 100_000):
        jr.set_state("ns", "k", value)
        assert jr.get_state("ns", "k") == value


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda jr: jr.set_state("ns", "k", 5), TypeError, "value must be a string, got int"),
        (lambda jr: jr.set_state("ns", "k", None), TypeError, "value must be a string, got"),
        (lambda jr: jr.get_state("", "k"), ValueError, "namespace must not be empty"),
        (lambda jr: jr.get_state("ns", ""), ValueError, "key must not be empty"),
        (lambda jr: jr.get_state(1, "k"), TypeError, "namespace must be a string, got int"),
        (lambda jr: jr.set_item("ns", "k", ""), ValueError, "item_key must not be empty"),
        (lambda jr: jr.set_item("ns", "k", "i", 3), TypeError, "value must be a string or None"),
        (lambda jr: jr.prune_items("ns", "k", -1), ValueError, "keep must be at least 0, got -1"),
        (lambda jr: jr.list_item_keys("ns", "k", -1), ValueError, "limit must be at least 0"),
        (lambda jr: jr.list_item_keys("ns", "k", order="up"), ValueError, "order must be 'asc'"),
    ],
)
def test_state_arguments_are_checked(
    jr: RunnerClient, call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        call(jr)
    assert str(caught.value).startswith(message)


# -- collections ------------------------------------------------------------------------------


def test_items_under_a_key(jr: RunnerClient, clock: FakeClock) -> None:
    assert not jr.has_item("ns", "seen", "a")
    jr.set_item("ns", "seen", "a")  # no value: records presence
    clock.advance(1)
    jr.set_item("ns", "seen", "b", "payload")
    assert jr.has_item("ns", "seen", "a") is True
    assert jr.get_item("ns", "seen", "a") is None
    assert jr.get_item("ns", "seen", "b") == "payload"
    assert jr.count_items("ns", "seen") == 2
    assert jr.get_state("ns", "seen") is None  # the parent row exists, without a value
    assert jr.delete_item("ns", "seen", "a") is True
    assert jr.delete_item("ns", "seen", "a") is False
    assert jr.count_items("ns", "seen") == 1


def test_set_item_keeps_the_parents_value(jr: RunnerClient) -> None:
    jr.set_state("ns", "k", "cursor-42")
    jr.set_item("ns", "k", "a")
    assert jr.get_state("ns", "k") == "cursor-42"


def test_list_item_keys_order_and_limit(jr: RunnerClient, clock: FakeClock) -> None:
    for name in ("one", "two", "three"):
        jr.set_item("ns", "k", name)
        clock.advance(1)
    assert jr.list_item_keys("ns", "k") == ["three", "two", "one"]
    assert jr.list_item_keys("ns", "k", order="asc") == ["one", "two", "three"]
    assert jr.list_item_keys("ns", "k", limit=2) == ["three", "two"]
    assert jr.list_item_keys("ns", "k", limit=0) == []
    jr.set_item("ns", "k", "one", "rewritten")  # a write makes it the newest
    assert jr.list_item_keys("ns", "k", limit=1) == ["one"]


def test_prune_items_keeps_the_newest_and_counts_the_rest(
    jr: RunnerClient, clock: FakeClock
) -> None:
    for n in range(10):
        jr.set_item("ns", "k", f"item{n}")
        clock.advance(1)
    assert jr.prune_items("ns", "k", 3) == 7
    assert jr.list_item_keys("ns", "k") == ["item9", "item8", "item7"]
    assert jr.prune_items("ns", "k", 3) == 0
    assert jr.prune_items("ns", "k", 0) == 3
    assert jr.count_items("ns", "k") == 0


def test_delete_state_takes_its_items(jr: RunnerClient) -> None:
    jr.set_item("ns", "k", "a")
    assert jr.delete_state("ns", "k") is True
    assert not jr.has_item("ns", "k", "a")


# -- queues -----------------------------------------------------------------------------------


def test_enqueue_and_dequeue_round_trip(jr: RunnerClient, clock: FakeClock) -> None:
    payload = {"url": "https://example.org/ü", "n": [1, 2.5, None, True]}
    item_id = jr.enqueue("work", payload, priority=2)
    clock.advance(1)
    [item] = jr.dequeue("work")
    assert (item.id, item.queue, item.payload, item.priority, item.attempts) == (
        item_id,
        "work",
        payload,
        2,
        1,
    )
    assert item.created_at == "2026-03-02T01:00:00.000Z"
    assert item.lease_expires_at == "2026-03-02T01:05:01.000Z"  # default lease: 5 minutes
    assert item.max_attempts == 1
    assert jr.dequeue("work") == []


@pytest.mark.parametrize("payload", [None, 0, "text", [1, "a"], {"nested": {"deep": [{}]}}])
def test_any_json_value_is_a_payload(jr: RunnerClient, payload: Any) -> None:
    jr.enqueue("q", payload)
    assert [i.payload for i in jr.dequeue("q")] == [payload]


def test_dequeue_takes_highest_priority_then_oldest(jr: RunnerClient, clock: FakeClock) -> None:
    for name, priority in (("a", 0), ("b", 10), ("c", 0), ("d", 10), ("e", -5)):
        jr.enqueue("q", name, priority=priority)
        clock.advance(0.001)
    assert [i.payload for i in jr.dequeue("q", 2)] == ["b", "d"]
    assert [i.payload for i in jr.dequeue("q", 10)] == ["a", "c", "e"]


def test_done_and_fail(jr: RunnerClient) -> None:
    first = jr.enqueue("q", 1, max_attempts=2)
    second = jr.enqueue("q", 2)  # the queue's default: one attempt
    assert jr.done(first) is False  # not claimed yet
    jr.dequeue("q", 2)
    assert jr.fail(first, "flaky") is ItemStatus.PENDING
    assert jr.fail(second, "broken") is ItemStatus.FAILED
    [retry] = jr.dequeue("q")
    assert (retry.id, retry.attempts) == (first, 2)
    assert jr.done(first) is True
    assert jr.done(first) is False
    assert jr.fail(first) is None
    assert jr.fail(9999) is None


def test_dedup_in_scope_pending(jr: RunnerClient) -> None:
    jr.add_queue("links", dedup_expr="$.url")
    first = jr.enqueue("links", {"url": "a", "n": 1})
    assert jr.enqueue("links", {"url": "a", "n": 2}) == -1  # pending duplicate
    [claimed] = jr.dequeue("links")
    assert jr.enqueue("links", {"url": "a", "n": 3}) == -1  # processing duplicate
    jr.done(claimed.id)
    again = jr.enqueue("links", {"url": "a", "n": 4})  # done is outside this scope
    assert again > first
    assert jr.enqueue("links", {"url": "b"}) > again
    assert jr.enqueue("links", {"no_url": True}) > 0  # no key: never a duplicate
    assert jr.enqueue("links", {"no_url": True}) > 0


def test_dedup_in_scope_all(jr: RunnerClient) -> None:
    jr.add_queue("links", dedup_expr="$.url", dedup_scope="all")
    jr.enqueue("links", {"url": "a"})
    [claimed] = jr.dequeue("links")
    jr.done(claimed.id)
    assert jr.enqueue("links", {"url": "a"}) == -1  # done still counts
    jr.enqueue("links", {"url": "f"})
    [failing] = jr.dequeue("links")
    jr.fail(failing.id, "gave up")
    assert jr.enqueue("links", {"url": "f"}) > 0  # failed does not: it may be retried


def test_enqueue_auto_creates_a_default_queue(jr: RunnerClient) -> None:
    assert jr.get_queue("fresh") is None
    jr.enqueue("fresh", 1)
    definition = jr.get_queue("fresh")
    assert definition is not None
    assert (definition.name, definition.max_attempts, definition.retention_days) == (
        "fresh",
        1,
        7,
    )
    assert (definition.lease_ms, definition.dedup_scope) == (300_000, DedupScope.PENDING)


def test_max_attempts_defaults_to_the_queues(jr: RunnerClient) -> None:
    jr.add_queue("q", max_attempts=4)
    jr.enqueue("q", 1)
    jr.enqueue("q", 2, max_attempts=1)
    assert [i.max_attempts for i in jr.dequeue("q", 2)] == [4, 1]


def test_a_lease_that_runs_out_delivers_the_item_again(jr: RunnerClient, clock: FakeClock) -> None:
    jr.add_queue("q", lease_ms=10_000, max_attempts=2)
    item_id = jr.enqueue("q", "job")
    jr.dequeue("q")
    clock.advance(9.999)
    assert jr.dequeue("q") == []
    clock.advance(0.001)
    [again] = jr.dequeue("q")  # no maintenance needed
    assert (again.id, again.attempts) == (item_id, 2)
    clock.advance(10)
    assert jr.dequeue("q") == []  # second lease gone too, attempts used: dead-lettered
    assert jr.done(item_id) is False


def test_a_late_finish_does_not_touch_the_next_consumers_claim(
    tmp_db: Path, clock: FakeClock
) -> None:
    with RunnerClient(tmp_db, clock=clock) as a, RunnerClient(tmp_db, clock=clock) as b:
        a.add_queue("q", lease_ms=10_000, max_attempts=3)
        item_id = a.enqueue("q", "x")
        a.dequeue("q")
        clock.advance(10)
        [taken] = b.dequeue("q")  # a's lease ran out: b has it now
        assert taken.attempts == 2
        assert a.done(item_id) is False
        assert a.fail(item_id, "late") is None  # and still refused after the first try
        assert b.done(item_id) is True


def test_a_consumer_past_its_lease_finishes_if_nobody_took_the_item(
    jr: RunnerClient, clock: FakeClock
) -> None:
    jr.add_queue("q", lease_ms=1000)
    item_id = jr.enqueue("q", "x")
    jr.dequeue("q")
    clock.advance(5)
    assert jr.done(item_id) is True


def test_an_item_claimed_elsewhere_is_finished_by_id(tmp_db: Path, clock: FakeClock) -> None:
    # What `jeeves-runner queue done ID` does: the claim was made by another process.
    with RunnerClient(tmp_db, clock=clock) as a, RunnerClient(tmp_db, clock=clock) as b:
        first, second = a.enqueue("q", 1, max_attempts=2), a.enqueue("q", 2)
        a.dequeue("q", 2)
        assert b.done(first) is True
        assert b.fail(second, "from elsewhere") is ItemStatus.FAILED


def test_add_queue_list_and_replace(jr: RunnerClient, clock: FakeClock) -> None:
    created = jr.add_queue(
        "mail",
        "Mail to send",
        description="outgoing",
        dedup_expr="$.id",
        dedup_scope=DedupScope.ALL,
        max_attempts=3,
        retention_days=0,
        lease_ms=60_000,
    )
    assert created.as_dict() == {
        "id": "mail",
        "name": "Mail to send",
        "description": "outgoing",
        "dedup_expr": "$.id",
        "dedup_scope": "all",
        "max_attempts": 3,
        "retention_days": 0,
        "lease_ms": 60_000,
        "created_at": "2026-03-02T01:00:00.000Z",
    }
    with pytest.raises(QueueExistsError, match="Queue 'mail' already exists"):
        jr.add_queue("mail")
    clock.advance(5)
    replaced = jr.add_queue("mail", replace=True)
    assert (replaced.name, replaced.dedup_expr, replaced.created_at) == (
        "mail",
        None,
        "2026-03-02T01:00:00.000Z",
    )
    jr.add_queue("alpha")
    assert [q.id for q in jr.list_queues()] == ["alpha", "mail"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda jr: jr.enqueue("q", {1, 2}), TypeError, "payload must be JSON-serializable"),
        (lambda jr: jr.enqueue("q", float("nan")), ValueError, "payload must be JSON-serializable"),
        (lambda jr: jr.enqueue("q", 1, priority=True), TypeError, "priority must be an integer"),
        (lambda jr: jr.enqueue("q", 1, priority=1.5), TypeError, "priority must be an integer"),
        (lambda jr: jr.enqueue("q", 1, priority=2**63), ValueError, "priority must be at most"),
        (lambda jr: jr.enqueue("q", 1, max_attempts=0), ValueError, "max_attempts must be at"),
        (lambda jr: jr.enqueue("a b", 1), ValueError, "queue 'a b' may hold only letters"),
        (lambda jr: jr.enqueue("a/b", 1), ValueError, "queue 'a/b' may hold only letters"),
        (lambda jr: jr.enqueue("", 1), ValueError, "queue must not be empty"),
        (lambda jr: jr.dequeue("q", 0), ValueError, "count must be at least 1, got 0"),
        (lambda jr: jr.done("1"), TypeError, "item_id must be an integer, got str"),
        (lambda jr: jr.fail(1, 500), TypeError, "error must be a string or None"),
        (lambda jr: jr.add_queue("q", dedup_expr="$["), ValueError, "dedup expression '$['"),
        (lambda jr: jr.add_queue("q", dedup_scope="some"), ValueError, "dedup_scope must be"),
        (lambda jr: jr.add_queue("q", lease_ms=0), ValueError, "lease_ms must be at least 1"),
        (lambda jr: jr.add_queue("q", retention_days=-1), ValueError, "retention_days must be"),
        (lambda jr: jr.add_queue("q", name=""), ValueError, "name must not be empty"),
    ],
)
def test_queue_arguments_are_checked(
    jr: RunnerClient, call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        call(jr)
    assert str(caught.value).startswith(message)
    assert jr.list_queues() == []  # nothing was written


def test_a_client_works_from_several_threads(jr: RunnerClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for n in range(40):
        jr.enqueue("q", n)
    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = list(pool.map(lambda _: jr.dequeue("q", 5), range(8)))
    ids = [item.id for batch in batches for item in batch]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 40


# -- PostgreSQL: the same client through JR_DB_URL --------------------------------------------


def test_jr_db_url_opens_postgres_and_wins_over_jr_db_path(
    pg_url: str, tmp_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DB_URL_ENV, pg_url)
    monkeypatch.setenv(DB_PATH_ENV, str(tmp_db))
    with RunnerClient() as jr:
        assert jr.db_path == pg_url
        jr.set_state("ns", "k", "v", ttl="1h")
        jr.set_item("ns", "k", "a")
        assert jr.enqueue("q", {"n": 1}, priority=2) > 0
    with RunnerClient(pg_url) as again:
        assert (again.get_state("ns", "k"), again.count_items("ns", "k")) == ("v", 1)
        [item] = again.dequeue("q")
        assert (item.payload, item.priority) == ({"n": 1}, 2)
        assert again.done(item.id) is True
    assert not tmp_db.exists()  # the SQLite file was never opened
