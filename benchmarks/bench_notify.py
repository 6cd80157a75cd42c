"""Notifications: what alerts on change and webhooks cost the runner.

- record_outcome_ms: one streak write (`notify_state.record_outcome`) on a SQLite file, the
  database step every finished run now takes (median and p99 of 2,000).
- enqueue_us: the event loop's share of one outcome (`Notifier.notify_run_later`, which only
  schedules work), per call, over 1,000 calls.
- deliveries_per_s: 1,000 failing outcomes (notify: always) of 100 jobs, each a webhook POST
  to a receiver on 127.0.0.1, from the first call to the last delivery.
- hung_receiver_max_loop_lag_ms: the longest the event loop was late on a 10 ms ticker while
  2,000 events met a receiver that never answers (4 senders stuck, the queue full, the rest
  dropped and logged); dropped counts those.

Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog

from jeeves_runner.clock import SystemClock
from jeeves_runner.config import NotificationsConfig
from jeeves_runner.models import Job, RunResult, RunStatus, format_instant
from jeeves_runner.notify.alerts import Notifier
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway

FAIL = RunResult(RunStatus.ERROR, 100, exit_code=1, error="boom")


class Receiver:
    def __init__(self, hang: bool) -> None:
        self.count = 0
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hang:
                    owner.release.wait(60)
                    return
                owner.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def jobs(store: SqliteStore, count: int) -> list[Job]:
    made = []
    for n in range(count):
        job = Job(id=f"j{n}", name=f"J{n}", schedule="* * * * *", script="/x.sh", notify="always")
        store.jobs.add_job(job, format_instant(SystemClock().now()))
        made.append(job)
    return made


def bench_record_outcome(folder: Path) -> dict[str, float]:
    store = SqliteStore(folder / "streak.sqlite")
    (job,) = jobs(store, 1)
    at = format_instant(SystemClock().now())
    times = []
    for n in range(2000):
        status = RunStatus.OK if n % 5 == 4 else RunStatus.ERROR
        began = time.perf_counter()
        store.notify_state.record_outcome(job.id, status, at)
        times.append((time.perf_counter() - began) * 1000)
    store.close()
    times.sort()
    return {
        "record_outcome_ms_median": round(statistics.median(times), 3),
        "record_outcome_ms_p99": round(times[int(len(times) * 0.99)], 3),
    }


async def bench_deliveries(folder: Path) -> dict[str, float]:
    receiver = Receiver(hang=False)
    store = SqliteStore(folder / "deliveries.sqlite")
    made = jobs(store, 100)
    gateway = StoreGateway(store)
    hook = {"name": "ops", "url": receiver.url, "events": ["run.failed"], "secret": "k"}
    notifier = Notifier(
        NotificationsConfig.model_validate({"webhooks": [hook]}), store=gateway, clock=SystemClock()
    )
    try:
        began = time.perf_counter()
        enqueue = 0.0
        for n in range(1000):
            t = time.perf_counter()
            notifier.notify_run_later(made[n % 100], FAIL, n + 1)
            enqueue += time.perf_counter() - t
        deadline = time.monotonic() + 120
        while receiver.count < 1000 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        took = time.perf_counter() - began
        delivered = receiver.count
    finally:
        await notifier.drain(5)
        await notifier.aclose()
        gateway.close()
        receiver.close()
    return {
        "enqueue_us": round(enqueue / 1000 * 1e6, 1),
        "delivered": delivered,
        "deliveries_per_s": round(delivered / took, 1),
    }


async def bench_hung_receiver(folder: Path) -> dict[str, float]:
    receiver = Receiver(hang=True)
    store = SqliteStore(folder / "hung.sqlite")
    made = jobs(store, 100)
    gateway = StoreGateway(store)
    hook = {"name": "ops", "url": receiver.url, "events": ["run.failed"]}
    notifier = Notifier(
        NotificationsConfig.model_validate({"webhooks": [hook]}), store=gateway, clock=SystemClock()
    )
    lag = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal lag
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lag = max(lag, loop.time() - before - 0.01)

    tick = asyncio.ensure_future(ticker())
    try:
        for n in range(2000):
            notifier.notify_run_later(made[n % 100], FAIL, n + 1)
            if n % 100 == 99:
                await asyncio.sleep(0)
        deadline = time.monotonic() + 60
        while notifier.webhooks.outcomes["dropped"] + notifier.webhooks.pending < 2000:
            assert time.monotonic() < deadline, "the outcomes were not all handled"
            await asyncio.sleep(0.01)
        dropped = notifier.webhooks.outcomes["dropped"]
    finally:
        stop.set()
        await tick
        receiver.close()
        await notifier.drain(0.1)
        await notifier.aclose()
        gateway.close()
    return {"hung_receiver_max_loop_lag_ms": round(lag * 1000, 1), "dropped": dropped}


def main() -> None:
    # Dropped events are logged one by one; that is the point, but not on this console.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures: dict[str, Any] = {}
        figures |= bench_record_outcome(folder)
        figures |= asyncio.run(bench_deliveries(folder))
        figures |= asyncio.run(bench_hung_receiver(folder))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
