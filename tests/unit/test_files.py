"""files.py: folders and files the runner creates are private; what exists is left alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from jeeves_runner.files import create_private_file, private_folder, readable_by_others


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: whatever is private is so because we asked, not by the umask's grace."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_missing_folders_are_made_0700_and_existing_ones_left(
    tmp_path: Path, open_umask: None
) -> None:
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    target = existing / "data" / "deeper"
    private_folder(target)
    assert mode(existing / "data") == 0o700
    assert mode(target) == 0o700
    assert mode(existing) == 0o755  # the user's folder: not ours to change
    private_folder(target)  # again: nothing to do


def test_a_file_in_the_way_of_a_folder_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError):
        private_folder(blocker)
    with pytest.raises(NotADirectoryError):
        private_folder(blocker / "below")


def test_a_new_file_is_0600_and_an_existing_one_is_left(tmp_path: Path, open_umask: None) -> None:
    new = tmp_path / "new.sqlite"
    create_private_file(new)
    assert mode(new) == 0o600
    assert new.read_bytes() == b""
    theirs = tmp_path / "theirs.sqlite"
    theirs.write_bytes(b"data")
    os.chmod(theirs, 0o644)
    create_private_file(theirs)
    assert (mode(theirs), theirs.read_bytes()) == (0o644, b"data")


@pytest.mark.parametrize(
    ("file_mode", "readable"),
    [(0o600, False), (0o400, False), (0o640, True), (0o604, True), (0o644, True), (0o620, False)],
)
def test_readable_by_others(tmp_path: Path, file_mode: int, readable: bool) -> None:
    token = tmp_path / "token"
    token.write_text("secret")
    os.chmod(token, file_mode)
    assert readable_by_others(token) is readable


def test_a_missing_file_is_not_readable_by_anyone(tmp_path: Path) -> None:
    assert readable_by_others(tmp_path / "missing") is False
