"""What `start` would fail on, checked without starting: the address to listen on, the
access tokens a non-loopback address needs, and the token files named in the config.

(Bad JSON, duplicate keys, wrong types and non-http(s) URLs are already refused when the
config is loaded.)
"""

from __future__ import annotations

from pathlib import Path

from jeeves_runner.auth import InsecureBindError, is_loopback
from jeeves_runner.config import Config
from jeeves_runner.store import SqliteStore


def problems(config: Config) -> list[str]:
    found: list[str] = []
    listen = listen_problem(config.host, config.port)
    if listen is not None:
        found.append(listen)
    elif not is_loopback(config.host) and count_tokens(config.db_path) == 0:
        found.append(str(InsecureBindError(config.host)))
    for key, path in (
        ("notifications.slackTokenPath", config.notifications.slack_token_path),
        ("gateway.tokenPath", config.gateway.token_path),
    ):
        problem = token_file_problem(path)
        if problem is not None:
            found.append(f"{key}: {problem}")
    return found


def listen_problem(host: str, port: int) -> str | None:
    """None when `host:port` resolves and can be bound right now (the socket is closed
    again at once), else the reason, worded as `start` words it."""
    from jeeves_runner.api.server import ListenError, bind_socket

    try:
        bind_socket(host, port).close()
    except ListenError as exc:
        return str(exc)
    return None


def count_tokens(db_path: str) -> int:
    """Tokens in the database; 0 when it does not exist yet (it is not created here)."""
    if not Path(db_path).is_file():
        return 0
    store = SqliteStore(db_path)  # StoreError for an unusable file: start would fail too
    try:
        return store.tokens.count_tokens()
    finally:
        store.close()


def token_file_problem(path: str | None) -> str | None:
    """Why the token file cannot be used, naming the setting, not the path: token paths are
    redacted wherever the config is shown."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return f"the file cannot be read ({exc.strerror or exc})"
    except UnicodeDecodeError:
        return "the file is not UTF-8 text"
    if not text.strip():
        return "the file is empty"
    return None
