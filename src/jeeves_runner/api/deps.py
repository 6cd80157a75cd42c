"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from jeeves_runner.control import RunnerControl


def get_control(request: Request) -> RunnerControl:
    return cast(RunnerControl, request.app.state.control)
