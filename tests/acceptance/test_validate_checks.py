"""`validate` fails on what `start` would fail on, through the real CLI."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.access_model import Scope, StoredToken
from jeeves_runner.store import SqliteStore


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write(folder: Path, data: dict[str, Any] | str) -> Path:
    path = folder / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def error(result: tuple[int, str, str], message: str) -> None:
    code, _out, err = result
    assert "Traceback" not in err
    assert err.splitlines() == [f"error: {message}"]
    assert code == 1


def test_valid_config_shows_the_resolved_zone(run_cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path, {"port": free_port(), "timezone": "Europe/London"})
    code, out, err = run_cli("validate", "-c", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("Config is valid.\n")
    assert json.loads(out.split("\n", 1)[1])["timezone"] == "Europe/London"
    # Without a zone the machine's own is named, never null.
    path = write(tmp_path, {"port": free_port()})
    shown = json.loads(run_cli("validate", "-c", str(path), env={"TZ": "UTC"})[1].split("\n", 1)[1])
    assert shown["timezone"] not in (None, "")


def test_a_host_that_does_not_resolve(run_cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path, {"host": "no-such-host.invalid", "port": 1937})
    code, _out, err = run_cli("validate", "-c", str(path))
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}: cannot listen on no-such-host.invalid:1937: ")


def test_a_port_in_use(run_cli: Any, tmp_path: Path, held_port: int) -> None:
    path = write(tmp_path, {"port": held_port})
    error(
        run_cli("validate", "-c", str(path)),
        f"{path}: cannot listen on 127.0.0.1:{held_port}: address already in use",
    )


def test_a_network_address_needs_a_token_first(run_cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path, {"host": "0.0.0.0", "port": free_port(), "dbPath": "r.sqlite"})
    error(
        run_cli("validate", "-c", str(path)),
        f"{path}: refusing to listen on 0.0.0.0 without an access token: anyone who can reach "
        "it could run any job; create one first with "
        "'jeeves-runner token create NAME --scope admin -c CONFIG'",
    )
    assert not (tmp_path / "r.sqlite").exists()  # validate creates no database
    store = SqliteStore(tmp_path / "r.sqlite")
    store.tokens.create_token(StoredToken("ops", Scope.ADMIN, "h", "t", "test"))
    store.close()
    code, out, err = run_cli("validate", "-c", str(path))
    assert (code, err) == (0, "") and out.startswith("Config is valid.\n")


def test_unreadable_token_files_name_the_setting(run_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "empty.token").write_text("\n")
    path = write(
        tmp_path,
        {
            "port": free_port(),
            "notifications": {"slackTokenPath": "missing.token"},
            "gateway": {"tokenPath": "empty.token"},
        },
    )
    error(
        run_cli("validate", "-c", str(path)),
        f"{path}: 2 problems: notifications.slackTokenPath: the file cannot be read "
        "(No such file or directory); gateway.tokenPath: the file is empty",
    )


def test_a_gateway_url_that_is_not_http(run_cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path, {"gateway": {"url": "ftp:/x"}})
    error(
        run_cli("validate", "-c", str(path)),
        f'{path}: gateway.url: must be an http:// or https:// URL, got "ftp:/x"',
    )


def test_duplicate_keys(run_cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path, '{"port": 1937, "port": 1938}')
    error(run_cli("validate", "-c", str(path)), f"{path}: port: given more than once")
    # start refuses the same file with the same line
    error(run_cli("start", "-c", str(path)), f"{path}: port: given more than once")
