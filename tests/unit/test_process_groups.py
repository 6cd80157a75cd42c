"""execution/process_groups.py: groups and start times read from the real kernel."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

from jeeves_runner.execution.process_groups import (
    group_is_alive,
    process_start_ticks,
    signal_group,
)


def test_start_ticks_are_the_kernels_start_time_of_the_process() -> None:
    child = subprocess.Popen(["sleep", "5"])
    try:
        ticks = process_start_ticks(child.pid)
        assert ticks is not None
        started = psutil.boot_time() + ticks / os.sysconf("SC_CLK_TCK")
        assert abs(started - psutil.Process(child.pid).create_time()) < 0.05
        assert process_start_ticks(child.pid) == ticks  # stable: it names this process
        mine = process_start_ticks(os.getpid())
        assert mine is not None
        assert mine <= ticks  # we started before our child
    finally:
        child.kill()
        child.wait()


def test_start_ticks_of_a_process_that_is_gone() -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: the PID names nothing now
    assert process_start_ticks(child.pid) is None


def test_signal_group_of_a_group_that_is_gone_is_quiet() -> None:
    child = subprocess.Popen(["true"], start_new_session=True)
    child.wait()
    signal_group(child.pid, signal.SIGTERM)  # no error


def test_a_group_of_zombies_counts_as_gone() -> None:
    child = subprocess.Popen(["true"], start_new_session=True)  # not reaped yet: a zombie
    try:
        deadline = time.monotonic() + 5
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.killpg(child.pid, 0)  # the kernel still knows the group...
        assert group_is_alive(child.pid) is False  # ...but nothing in it can run
    finally:
        child.wait()
    live = subprocess.Popen(["sleep", "5"], start_new_session=True)
    try:
        assert group_is_alive(live.pid) is True
    finally:
        live.kill()
        live.wait()
