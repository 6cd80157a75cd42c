"""Overlap decisions: what a fire does when its job already has a run in flight. Pure."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from jeeves_runner.models import OverlapPolicy


class FireDecision(StrEnum):
    RUN = "run"
    QUEUE = "queue"
    SKIP = "skip"


@dataclass(slots=True)
class JobActivity:
    """What one job has in flight. `in_flight` counts accepted runs (waiting for a slot or
    executing); `queued` is the one run waiting behind them under the `queue` policy."""

    in_flight: int = 0
    queued: bool = False
    skip_row: int | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_release(self) -> None:
        """Until some run of this job ends."""
        await self._released.wait()

    def released(self) -> None:
        self._released.set()
        self._released = asyncio.Event()
        if self.in_flight == 0:
            self.idle.set()


def decide(policy: OverlapPolicy, activity: JobActivity) -> tuple[FireDecision, str | None]:
    if activity.in_flight == 0 or policy is OverlapPolicy.ALLOW:
        return FireDecision.RUN, None
    if policy is OverlapPolicy.QUEUE:
        if activity.queued:
            return FireDecision.SKIP, "a run is in flight and another is already queued"
        return FireDecision.QUEUE, None
    return FireDecision.SKIP, "the previous run was still in flight (overlap policy skip)"
