"""Process-wide limits the runner sets for itself at start."""

from __future__ import annotations

import resource

import structlog

log = structlog.get_logger("jeeves_runner.process_limits")


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit: each run holds pipes, each API
    client a socket, and 1,024 (a common default) runs out under load. Returns the new soft
    limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-file limit", soft=soft, hard=hard, reason=str(exc))
        return soft
    return hard
