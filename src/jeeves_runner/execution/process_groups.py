"""Process groups as the kernel shows them: signalling a group, whether anything of it can
still run, and a process's start time (what tells one process from a later one that was given
the same PID). Linux /proc; elsewhere the answers fall back to what signals can tell."""

from __future__ import annotations

import contextlib
import os
import signal


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to every process of the group; a group that is gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """Fields 3 on (state, ppid, pgrp, ...) of /proc/<pid>/stat, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    return stat[stat.rfind(b")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat);
    None when there is no such process (or no /proc to ask)."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])  # field 22, counted from 1; `fields` starts at field 3


def group_is_alive(pgid: int) -> bool:
    """Does the group still have a member that is not a zombie? Orphaned members are reaped
    by PID 1, late or (when the runner is PID 1 itself) never; counting their zombies would
    hold every timeout for the whole grace."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc (macOS): the signal test is all we have
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is not None and len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False
