"""One runner per database: an exclusive lock on `<db>.lock`, held for the process's life.

flock is released by the kernel when the process dies, even by SIGKILL, so a crashed runner
never blocks the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import TextIO


class DatabaseInUseError(Exception):
    pass


class ProcessLock:
    def __init__(self, db_path: str) -> None:
        self.path = Path(f"{db_path}.lock")
        self._fh: TextIO | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            db = str(self.path)[: -len(".lock")]
            raise DatabaseInUseError(
                f"another runner (pid {holder}) is already using {db}; stop it first"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
