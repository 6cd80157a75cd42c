"""Files the runner creates are private to its user: the database (its WAL and shm files
follow the database's mode: SQLite gives them the same permissions), the lock file, and any
folder we make on the way. Files and folders that already exist are the user's: their modes
are left alone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700


def private_folder(path: Path) -> None:
    """Create `path` and its missing parents, each 0700; existing folders stay as they are.
    Raises OSError like `Path.mkdir`."""
    missing: list[Path] = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        try:
            # The umask can only take bits away from 0700, never add any.
            created.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:
            if not created.is_dir():
                raise
    if not path.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(path))


def create_private_file(path: Path) -> None:
    """Create an empty file 0600 unless something is there already (ours or the user's)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def readable_by_others(path: Path) -> bool:
    """Can users other than the owner (its group, or anyone) read the file?"""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))
