"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from jeeves_runner.clock import Clock, SystemClock
from jeeves_runner.control import RunnerControl
from jeeves_runner.models import format_instant

# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in its thread pool,
# which costs more than the work they do.


def get_control(request: Request) -> RunnerControl:
    return cast(RunnerControl, request.app.state.control)


async def control_dependency(request: Request) -> RunnerControl:
    return get_control(request)


async def now_instant(request: Request) -> str:
    """Now, from the app's clock (tests give the app a fake one), in the stored format."""
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return format_instant((clock if clock is not None else SystemClock()).now())
