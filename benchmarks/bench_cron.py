"""Micro-benchmark for scheduling.cron: median cost of one CronSchedule.next_after call.

Run: .venv/bin/python benchmarks/bench_cron.py  (prints one JSON object)
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from jeeves_runner.scheduling.cron import parse

EXPRESSIONS = (
    "*/5 * * * *",
    "0 3 * * *",
    "* * * * * *",
    "0 9 * * MON-FRI",
    "0 0 L * *",
    "0 0 * * 5#L",
)
ZONES = ("UTC", "America/New_York", "Europe/London")
CALLS = 2000
ROUNDS = 5


def _bench(expression: str, zone_name: str) -> float:
    """Median microseconds per next_after call over ROUNDS rounds of CALLS start instants."""
    schedule = parse(expression)
    zone = ZoneInfo(zone_name)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # Spread the starts over a year, so DST and month ends are part of the mix.
    starts = [base + timedelta(seconds=15_767 * i) for i in range(CALLS)]
    rounds = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for start in starts:
            schedule.next_after(start, zone)
        rounds.append((time.perf_counter() - began) / CALLS * 1e6)
    return statistics.median(rounds)


def main() -> None:
    per_case = {f"{expr} @ {zone}": _bench(expr, zone) for expr in EXPRESSIONS for zone in ZONES}
    ordinary = [v for k, v in per_case.items() if k.split(" @ ")[0] in EXPRESSIONS[:3]]
    print(
        json.dumps(
            {
                "next_after_us_median": round(statistics.median(ordinary), 2),
                "next_after_us_max": round(max(per_case.values()), 2),
                "per_case_us": {k: round(v, 2) for k, v in per_case.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
