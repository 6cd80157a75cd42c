"""token_files.py: a token file others can read is one warning line at start, naming it."""

from __future__ import annotations

import os
from pathlib import Path

from structlog.testing import capture_logs

from jeeves_runner.config import parse_config
from jeeves_runner.token_files import readable_token_files, warn_readable_token_files


def token(tmp_path: Path, name: str, file_mode: int) -> str:
    path = tmp_path / name
    path.write_text("secret\n")
    os.chmod(path, file_mode)
    return str(path)


def test_each_exposed_token_file_is_one_warning_naming_it(tmp_path: Path) -> None:
    slack = token(tmp_path, "slack.token", 0o644)
    gateway = token(tmp_path, "gw.token", 0o640)
    config = parse_config(
        {"notifications": {"slackTokenPath": slack}, "gateway": {"tokenPath": gateway}}
    )
    with capture_logs() as logs:
        warn_readable_token_files(config)
    assert logs == [
        {
            "event": f"token file {slack} can be read by other users; run chmod 600 on it",
            "key": "notifications.slackTokenPath",
            "file": slack,
            "log_level": "warning",
        },
        {
            "event": f"token file {gateway} can be read by other users; run chmod 600 on it",
            "key": "gateway.tokenPath",
            "file": gateway,
            "log_level": "warning",
        },
    ]


def test_private_missing_and_unset_token_files_say_nothing(tmp_path: Path) -> None:
    private = token(tmp_path, "slack.token", 0o600)
    config = parse_config(
        {
            "notifications": {"slackTokenPath": private},
            "gateway": {"tokenPath": str(tmp_path / "missing.token")},
        }
    )
    assert readable_token_files(config) == []
    assert readable_token_files(parse_config({})) == []
    with capture_logs() as logs:
        warn_readable_token_files(config)
    assert logs == []
