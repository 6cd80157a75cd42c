"""execution/orphans.py: groups a dead runner left, ended by the next start — real processes
in sessions of their own stand in for a crashed runner's children."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from jeeves_runner.execution.orphans import (
    group_is_alive,
    kill_orphan_groups,
    process_start_ticks,
)
from jeeves_runner.models import OpenRun, RunStatus

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Children the test starts; whatever is left of them is killed and reaped at the end."""
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def spawn(started: list[subprocess.Popen[bytes]], *command: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE)
    started.append(child)
    return child


def open_run(run_id: int, child: subprocess.Popen[bytes], ticks_offset: int = 0) -> OpenRun:
    ticks = process_start_ticks(child.pid)
    assert ticks is not None
    return OpenRun(
        id=run_id,
        job_id="job",
        status=RunStatus.RUNNING,
        pid=child.pid,
        pgid=child.pid,
        process_started=ticks + ticks_offset,
    )


def test_a_live_group_is_stopped_with_term_and_the_run_says_so(
    started: list[subprocess.Popen[bytes]],
) -> None:
    child = spawn(started, "sleep", "60")
    done = asyncio.run(kill_orphan_groups([open_run(7, child)], grace_s=5))
    assert done == {
        7: f"The runner stopped during this run; its process group {child.pid} was still "
        "running and was stopped with SIGTERM"
    }
    assert child.wait(timeout=5) == -signal.SIGTERM


def test_a_reused_pid_is_never_signalled(started: list[subprocess.Popen[bytes]]) -> None:
    # Same PID, another start time: the process the run started is gone and this one is
    # somebody else's.
    child = spawn(started, "sleep", "60")
    for offset in (-1, 1):
        assert asyncio.run(kill_orphan_groups([open_run(1, child, offset)], grace_s=1)) == {}
    assert child.poll() is None
    assert psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE


def test_a_group_that_ignores_term_is_killed_after_the_grace(
    started: list[subprocess.Popen[bytes]],
) -> None:
    child = spawn(started, "bash", str(SCRIPTS / "ignores_term.sh"))
    assert child.stdout is not None
    assert child.stdout.readline() == b"ignoring TERM\n"  # the trap is set
    done = asyncio.run(kill_orphan_groups([open_run(3, child)], grace_s=0.3))
    assert done == {
        3: f"The runner stopped during this run; its process group {child.pid} was still "
        "running, did not stop within 0.3 s of SIGTERM and was killed with SIGKILL"
    }
    assert child.wait(timeout=5) == -signal.SIGKILL
    # The leader is reaped; its `sleep` child gets the same KILL a moment later at most.
    deadline = time.monotonic() + 2
    while group_is_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert group_is_alive(child.pid) is False


def test_the_whole_group_goes_not_only_its_leader(
    started: list[subprocess.Popen[bytes]],
) -> None:
    child = spawn(started, "bash", str(SCRIPTS / "grandchild.sh"))
    assert child.stdout is not None
    grandchild = int(child.stdout.readline().split()[1])
    asyncio.run(kill_orphan_groups([open_run(1, child)], grace_s=5))
    child.wait(timeout=5)
    assert group_is_alive(child.pid) is False
    with contextlib.suppress(psutil.NoSuchProcess):
        # reparented to PID 1, which may reap it late (or never): a zombie at most
        assert psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_runs_without_a_live_process_are_left_out(
    started: list[subprocess.Popen[bytes]],
) -> None:
    gone = spawn(started, "true")
    gone_run = open_run(1, gone)
    gone.wait()  # reaped: its PID names nothing now
    live = spawn(started, "sleep", "60")
    runs = [
        OpenRun(id=2, job_id="j", status=RunStatus.PENDING, pid=None, pgid=None,
                process_started=None),
        OpenRun(id=3, job_id="j", status=RunStatus.RUNNING, pid=live.pid, pgid=live.pid,
                process_started=None),  # no start time recorded: cannot prove it is ours
        gone_run,
        open_run(4, live),
    ]  # fmt: skip
    done = asyncio.run(kill_orphan_groups(runs, grace_s=5))
    assert list(done) == [4]
    assert live.wait(timeout=5) == -signal.SIGTERM


def test_several_groups_share_one_grace(started: list[subprocess.Popen[bytes]]) -> None:
    stubborn = []
    for _ in range(3):
        child = spawn(started, "bash", str(SCRIPTS / "ignores_term.sh"))
        assert child.stdout is not None
        child.stdout.readline()
        stubborn.append(child)
    loop_time: list[float] = []

    async def timed() -> dict[int, str]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await kill_orphan_groups(
            [open_run(i, c) for i, c in enumerate(stubborn)], grace_s=0.5
        )
        loop_time.append(loop.time() - start)
        return result

    done = asyncio.run(timed())
    assert sorted(done) == [0, 1, 2]
    assert loop_time[0] < 1.5  # one grace for all of them, not one each
    for child in stubborn:
        assert child.wait(timeout=5) == -signal.SIGKILL
