"""`token create|list|revoke` and `audit` through the real CLI, on a real database: the
secret is printed once and only its hash kept; every change leaves an audit row."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.auth import hash_secret
from jeeves_runner.store import SqliteStore

ME = f"cli:{getpass.getuser()}"
INSTANT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"dbPath": "runner.sqlite"}))
    return path


def ok(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert (code, err) == (0, ""), err
    return out


def created(result: tuple[int, str, str]) -> str:
    code, out, err = result
    # (the first one may also say it created the database)
    assert code == 0 and err.splitlines()[-1].startswith("Created token "), err
    return out.strip()


def error(result: tuple[int, str, str], message: str, code: int = 1) -> None:
    got, _out, err = result
    assert "Traceback" not in err
    assert err.splitlines() == [f"error: {message}"]
    assert got == code


def test_create_prints_the_secret_once_and_keeps_only_its_hash(run_cli: Any, config: Path) -> None:
    code, out, err = run_cli("token", "create", "prometheus", "--scope", "read", "-c", str(config))
    assert code == 0
    # A token is what a runner beyond loopback needs before its first start: the database
    # may be made here.
    assert err.splitlines() == [
        f"Created database {config.parent / 'runner.sqlite'}",
        "Created token 'prometheus' (scope read). It is shown only now:",
    ]
    secret = out.strip()
    assert re.fullmatch(r"jr_[A-Za-z0-9_-]{43}", secret)
    store = SqliteStore(config.parent / "runner.sqlite")
    try:
        [token] = store.tokens.list_tokens()
    finally:
        store.close()
    assert (token.name, token.scope.value, token.created_by) == ("prometheus", "read", ME)
    assert token.token_hash == hash_secret(secret)
    assert secret not in (config.parent / "runner.sqlite").read_bytes().decode("latin-1")

    listed = ok(run_cli("token", "list", "-c", str(config)))
    assert re.fullmatch(rf"prometheus  read     {INSTANT}  {re.escape(ME)}\n", listed)
    assert secret not in listed


def test_token_errors_are_one_line(run_cli: Any, config: Path) -> None:
    created(run_cli("token", "create", "ci", "--scope", "trigger", "-c", str(config)))
    error(
        run_cli("token", "create", "ci", "--scope", "admin", "-c", str(config)),
        "A token named 'ci' already exists",
    )
    error(
        run_cli("token", "create", "bad name", "--scope", "admin", "-c", str(config)),
        "invalid token name 'bad name': use 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit",
    )
    error(
        run_cli("token", "create", "x", "--scope", "root", "-c", str(config)),
        "Invalid value for '--scope': 'root' is not one of 'read', 'trigger', 'admin'.",
        code=2,
    )
    error(run_cli("token", "revoke", "nope", "-c", str(config)), "no token named 'nope'")


def test_list_without_tokens_says_what_that_means(run_cli: Any, config: Path) -> None:
    SqliteStore(config.parent / "runner.sqlite").close()
    assert ok(run_cli("token", "list", "-c", str(config))) == (
        "No tokens: the API answers anyone on loopback and refuses other addresses.\n"
    )


def test_every_cli_change_is_in_the_audit_log(run_cli: Any, config: Path, tmp_path: Path) -> None:
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    created(run_cli("token", "create", "ci", "--scope", "trigger", "-c", str(config)))
    ok(run_cli("token", "revoke", "ci", "-c", str(config)))
    ok(
        run_cli(
            "add-job",
            "--id",
            "hello",
            "--name",
            "Hello",
            "--schedule",
            "* * * * *",
            "--script",
            str(script),
            "-c",
            str(config),
        )
    )
    lines = ok(run_cli("audit", "-c", str(config))).splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        rf"{INSTANT}  {re.escape(ME)}  local  job.added  hello  - -> {{.*}}", lines[0]
    )
    assert '"schedule": "* * * * *"' in lines[0]
    assert lines[1].endswith(f'  {ME}  local  token.revoked  ci  {{"scope": "trigger"}} -> -')
    assert lines[2].endswith(f'  {ME}  local  token.created  ci  - -> {{"scope": "trigger"}}')

    entries = [
        json.loads(line)
        for line in ok(run_cli("audit", "--json", "--limit", "1", "-c", str(config))).splitlines()
    ]
    assert [(e["action"], e["actor"], e["address"]) for e in entries] == [
        ("job.added", ME, "local")
    ]
    assert entries[0]["after"]["script"] == str(script)
    assert ok(run_cli("audit", "--since", "2999-01-01T00:00:00Z", "-c", str(config))) == (
        "No audit entries.\n"
    )
    error(
        run_cli("audit", "--since", "soon", "-c", str(config)),
        "--since must be an ISO 8601 instant with a zone, such as 2026-03-02T01:03:00Z, got 'soon'",
    )


def test_start_refuses_a_network_address_without_a_token(run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"host": "0.0.0.0", "port": 1, "dbPath": "runner.sqlite"}))
    SqliteStore(tmp_path / "runner.sqlite").close()
    error(
        run_cli("start", "-c", str(path)),
        "refusing to listen on 0.0.0.0 without an access token: anyone who can reach it could "
        "run any job; create one first with "
        "'jeeves-runner token create NAME --scope admin -c CONFIG'",
    )


def test_status_and_trigger_send_the_token_from_the_environment(
    run_cli: Any, tmp_path: Path
) -> None:
    from jeeves_runner.access_model import Scope, StoredToken
    from live_runner import LiveRunner

    store = SqliteStore(tmp_path / "r.sqlite")
    for name, scope in (("reader", Scope.READ), ("ops", Scope.TRIGGER)):
        store.tokens.create_token(StoredToken(name, scope, hash_secret(f"s-{name}"), "t", "x"))
    store.close()
    live = LiveRunner(tmp_path).start()
    try:
        live.add_job("j", "ok_with_result.py")
        config = tmp_path / "api.json"
        config.write_text(json.dumps({"port": live.runner.port}))
        hint = "set JEEVES_RUNNER_TOKEN to a token of the scope needed (jeeves-runner token create)"
        error(run_cli("status", "-c", str(config)), f"A valid token is required: {hint}")
        assert ok(run_cli("status", "-c", str(config), env={"JEEVES_RUNNER_TOKEN": "s-reader"}))
        error(
            run_cli(
                "trigger", "-i", "j", "-c", str(config), env={"JEEVES_RUNNER_TOKEN": "s-reader"}
            ),
            f"The token 'reader' has scope read; this request needs trigger: {hint}",
        )
        code, out, _ = run_cli(
            "trigger", "-i", "j", "-c", str(config), env={"JEEVES_RUNNER_TOKEN": "s-ops"}
        )
        assert code == 0, out
    finally:
        live.join()
