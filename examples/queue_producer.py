"""Example job: enqueues a work item (deduplicated by its `url`)."""

import time

from jeeves_runner.client import RunnerClient

with RunnerClient() as jr:
    url = f"https://example.invalid/page/{int(time.time()) // 60}"
    item_id = jr.enqueue("pages", {"url": url})
    print(f"enqueued {url} as item {item_id}" if item_id != -1 else f"{url} already queued")
