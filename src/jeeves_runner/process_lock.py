"""One runner per database: an exclusive flock on the database file itself, held for the
process's life, plus `<db>.lock` holding our pid for the message a second runner prints.

The lock follows the file, not a spelling of its path: the path is resolved (symlinks, `..`)
and the lock sits on the database's inode, so neither a symlink to the database nor deleting
`<db>.lock` lets a second runner in. On Linux flock and the POSIX (fcntl) locks SQLite uses
are independent, so the CLI and job scripts read and write the database as before while we
hold it. (On NFS, Linux emulates flock with fcntl locks and this would break SQLite's own
locking: keep the database on a local disk, as SQLite itself asks.)

Both locks are released by the kernel when the process dies, even by SIGKILL, so a crashed
runner never blocks the next start. `<db>.lock` is flocked too, so a runner of an older
version (which locked only that file) and this one still exclude each other.

Our descriptor on the database file stays open until `release()`: closing any descriptor of
a file drops every POSIX lock the process holds on it, SQLite's included, so `release()`
must come after the store is closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from jeeves_runner.files import PRIVATE_FILE_MODE, private_folder


class DatabaseInUseError(Exception):
    pass


class ProcessLock:
    # A flock cannot be taken away from a living process: nothing to watch.
    watch_interval_s: float | None = None

    def still_held(self) -> bool:
        return True

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.real_path = Path(db_path).resolve()
        self.path = Path(f"{self.real_path}.lock")
        self._fds: list[int] = []

    def acquire(self) -> None:
        private_folder(self.real_path.parent)
        try:
            for target in (self.real_path, self.path):
                fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
                self._fds.append(fd)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise DatabaseInUseError(
                f"another runner (pid {self._holder()}) is already using {self._shown()}; "
                "stop it first"
            ) from None
        except BaseException:
            self.release()
            raise
        pid_fd = self._fds[1]
        os.ftruncate(pid_fd, 0)
        os.pwrite(pid_fd, str(os.getpid()).encode(), 0)

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"  # someone deleted the pid file; the lock on the database holds

    def _shown(self) -> str:
        if str(self.real_path) == self.db_path:
            return self.db_path
        return f"{self.db_path} ({self.real_path})"

    def release(self) -> None:
        for fd in reversed(self._fds):
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []
