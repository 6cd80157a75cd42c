"""Token files other users can read. The runner still uses them (refusing to start would turn
a permissions slip into an outage), but says so once at start, naming the file."""

from __future__ import annotations

from pathlib import Path

import structlog

from jeeves_runner.config import Config
from jeeves_runner.files import readable_by_others

log = structlog.get_logger("jeeves_runner.token_files")


def readable_token_files(config: Config) -> list[tuple[str, str]]:
    """(config key, path) of each configured token file that its group or others can read."""
    configured = [
        ("notifications.slackTokenPath", config.notifications.slack_token_path),
        ("gateway.tokenPath", config.gateway.token_path),
    ]
    return [(key, path) for key, path in configured if path and readable_by_others(Path(path))]


def warn_readable_token_files(config: Config) -> None:
    """One warning line per token file that users other than its owner can read."""
    for key, path in readable_token_files(config):
        log.warning(
            f"token file {path} can be read by other users; run chmod 600 on it",
            key=key,
            file=path,
        )
