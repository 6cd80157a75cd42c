"""Example job: claims up to five items and marks them done."""

from jeeves_runner.client import RunnerClient

with RunnerClient() as jr:
    items = jr.dequeue("pages", count=5)
    for item in items:
        print(f"processing item {item.id}: {item.payload}")
        jr.done(item.id)
    print(f"processed {len(items)} item(s)")
