"""Process groups a dead runner left behind.

A runner killed with -9 (or by the OOM killer) cannot end its children: each run's process
group lives on under PID 1 while the next start sees its row still open. The store keeps each
run's PID, group and process start time; at the next start, a group whose leader is still the
very process that run started (same PID *and* same start time) is ended TERM, then KILL. A
PID whose start time differs belongs to some later process and is never signalled.

A group whose leader has exited but whose other members live on is left alone: nothing then
proves the group id still names the run's group rather than a later one.
"""

from __future__ import annotations

import asyncio
import math
import signal

from jeeves_runner.execution.process_groups import (
    group_is_alive,
    process_start_ticks,
    signal_group,
)
from jeeves_runner.models import STOPPED_DURING_RUN, OpenRun

__all__ = ["group_is_alive", "kill_orphan_groups", "process_start_ticks"]

_POLL_S = 0.05

STOPPED_WITH_TERM = (
    STOPPED_DURING_RUN + "; its process group {pgid} was still running and was stopped with SIGTERM"
)
KILLED_AFTER_GRACE = (
    STOPPED_DURING_RUN + "; its process group {pgid} was still running, did not stop "
    "within {grace} s of SIGTERM and was killed with SIGKILL"
)


def _still_ours(run: OpenRun) -> bool:
    if run.pid is None or run.pgid is None or run.process_started is None:
        return False
    return process_start_ticks(run.pid) == run.process_started


async def kill_orphan_groups(runs: list[OpenRun], grace_s: float) -> dict[int, str]:
    """End the live process groups of `runs` (open runs of a runner that is gone): SIGTERM
    to each, SIGKILL to those still alive after `grace_s`. Returns run id -> one sentence
    saying what was done, for the runs whose group was found alive; other runs are not in
    it. Every group is signalled together, so the whole pass takes at most about `grace_s`."""
    live = [run for run in runs if _still_ours(run)]
    for run in live:
        assert run.pgid is not None
        signal_group(run.pgid, signal.SIGTERM)
    # Counted in polls, not read from a clock: a stalled or fake clock cannot stretch it.
    for _ in range(math.ceil(max(grace_s, 0) / _POLL_S)):
        if not any(run.pgid is not None and group_is_alive(run.pgid) for run in live):
            break
        await asyncio.sleep(_POLL_S)
    done: dict[int, str] = {}
    for run in live:
        assert run.pgid is not None
        if group_is_alive(run.pgid):
            # The group id cannot have been reused: it stays taken while any member lives.
            signal_group(run.pgid, signal.SIGKILL)
            done[run.id] = KILLED_AFTER_GRACE.format(pgid=run.pgid, grace=f"{grace_s:g}")
        else:
            done[run.id] = STOPPED_WITH_TERM.format(pgid=run.pgid)
    return done
