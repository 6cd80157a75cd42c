"""Running the runner's asyncio loop: the plain loop (uvloop spawns children 2.2–2.8× slower
here) and, on Python 3.11, the pidfd child watcher, which waits for children without the
thread per child that 3.11's default watcher starts. Python 3.12+ picks pidfd by itself."""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _pidfd_works() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


async def _with_pidfd_watcher(main: Coroutine[Any, Any, T]) -> T:
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy.set_child_watcher(watcher)
    try:
        return await main
    finally:
        # The watcher belongs to this loop; leave the policy to make a fresh default one
        # for whatever loop comes next (tests run several loops in one process).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            policy.set_child_watcher(None)  # type: ignore[arg-type]


def run(main: Coroutine[Any, Any, T]) -> T:
    if sys.version_info < (3, 12) and _pidfd_works():
        return asyncio.run(_with_pidfd_watcher(main))
    return asyncio.run(main)
