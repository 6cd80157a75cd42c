"""Example job: prints a greeting and counts its own runs in the runner's state."""

from jeeves_runner.client import RunnerClient

with RunnerClient() as jr:
    count = int(jr.get_state("hello", "runs") or 0) + 1
    jr.set_state("hello", "runs", str(count))
    print(f"Hello! This job has run {count} times.")
    print(f'JR_RESULT:{{"meta": "run {count}"}}')
