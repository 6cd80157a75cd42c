"""`service install|uninstall` through the real CLI: the unit it writes (checked by
`systemd-analyze verify` where it exists, and key by key), the account it runs as, names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.cli.service_commands import (
    Account,
    launchd_plist,
    nssm_lines,
    stop_timeout_s,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX accounts")
USER = "daemon"  # an unprivileged account every Linux and macOS box has


def config_file(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(data))
    return path


def ok(result: tuple[int, str, str]) -> str:
    code, out, err = result
    assert (code, err) == (0, ""), err
    return out


def error(result: tuple[int, str, str], message: str, code: int = 1) -> None:
    got, _out, err = result
    assert "Traceback" not in err
    assert err.splitlines() == [f"error: {message}"]
    assert got == code


def unit_keys(text: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key] = value
    return keys


linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd")


@linux
def test_install_writes_the_unit_and_says_how_to_enable_it(run_cli: Any, tmp_path: Path) -> None:
    config = config_file(tmp_path / "etc", {"shutdownGraceMs": 120_000})
    units = tmp_path / "units"
    units.mkdir()
    out = ok(
        run_cli(
            "service",
            "install",
            "-c",
            str(config),
            "-n",
            "jr-test",
            "--user",
            USER,
            "--unit-dir",
            str(units),
        )
    )
    path = units / "jr-test.service"
    group = subprocess.run(["id", "-gn", USER], capture_output=True, text=True).stdout.strip()
    assert out.splitlines() == [
        f"Wrote {path} (runs as {USER}:{group}). To enable it:",
        "  systemctl daemon-reload",
        "  systemctl enable --now jr-test",
    ]
    keys = unit_keys(path.read_text())
    assert keys == {
        "Description": "jeeves-runner job runner (jr-test)",
        "After": "network-online.target",
        "Wants": "network-online.target",
        "Type": "simple",
        "User": USER,
        "Group": group,
        "ExecStart": f"{sys.executable} -m jeeves_runner start -c {config.resolve()}",
        "WorkingDirectory": str(config.parent.resolve()),
        "Restart": "on-failure",
        "RestartSec": "5",
        "KillMode": "mixed",
        "KillSignal": "SIGTERM",
        # 120 s grace + 5 s from TERM to KILL + 10 s margin
        "TimeoutStopSec": "135",
        "LimitNOFILE": "65536",
        "WantedBy": "multi-user.target",
    }
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        verified = subprocess.run(
            [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
        )
        assert verified.returncode == 0, verified.stderr


@linux
def test_print_only_shows_it(run_cli: Any, tmp_path: Path) -> None:
    out = ok(run_cli("service", "install", "--print", "--user", USER, cwd=tmp_path))
    assert out.startswith("# /etc/systemd/system/jeeves-runner.service\n[Unit]\n")
    keys = unit_keys(out)
    assert keys["ExecStart"] == f"{sys.executable} -m jeeves_runner start"
    assert keys["TimeoutStopSec"] == "45"  # the default 30 s grace
    assert keys["KillMode"] == "mixed"


@linux
def test_the_sudo_caller_is_the_default_account(run_cli: Any, tmp_path: Path) -> None:
    out = ok(run_cli("service", "install", "--print", cwd=tmp_path, env={"SUDO_USER": USER}))
    assert unit_keys(out)["User"] == USER


@linux
def test_root_is_refused_unless_allowed(run_cli: Any, tmp_path: Path) -> None:
    refused = run_cli("service", "install", "--print", "--user", "root", cwd=tmp_path)
    error(
        refused,
        "refusing to run jobs as root: pass --user NAME (an unprivileged account that owns "
        "the database folder), or --allow-root if you mean it",
    )
    out = ok(
        run_cli("service", "install", "--print", "--user", "root", "--allow-root", cwd=tmp_path)
    )
    assert unit_keys(out)["User"] == "root"


def test_an_unknown_user_is_one_error(run_cli: Any, tmp_path: Path) -> None:
    error(
        run_cli("service", "install", "--print", "--user", "no-such-user-x", cwd=tmp_path),
        "no user named 'no-such-user-x' on this machine",
    )


@pytest.mark.parametrize("name", ["bad name/x", "-x", "a/b", "", "x" * 248, "é"])
def test_a_bad_name_is_one_error(run_cli: Any, tmp_path: Path, name: str) -> None:
    message = (
        f"invalid service name {name!r}: use 1 to 247 letters, digits, '-', '_', '.' or ':' "
        "(not starting with '-')"
    )
    error(run_cli("service", "install", "-n", name, "--user", USER, cwd=tmp_path), message)
    error(run_cli("service", "uninstall", "-n", name, cwd=tmp_path), message)


def test_a_write_that_fails_names_the_way_out(run_cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    error(
        run_cli("service", "install", "--user", USER, "--unit-dir", str(missing), cwd=tmp_path),
        f"cannot write {missing}/jeeves-runner.service: No such file or directory; "
        "run it with sudo, or use --print",
    )


def test_a_broken_config_is_refused(run_cli: Any, tmp_path: Path) -> None:
    config = config_file(tmp_path, {"maxConcurrency": 0})
    error(
        run_cli("service", "install", "--print", "--user", USER, "-c", str(config)),
        f"{config}: maxConcurrency: must be an integer ≥ 1, got 0",
    )


@linux
def test_uninstall(run_cli: Any, tmp_path: Path) -> None:
    assert ok(run_cli("service", "uninstall", "-n", "jr-test", cwd=tmp_path)).splitlines() == [
        "systemctl disable --now jr-test",
        "rm /etc/systemd/system/jr-test.service",
        "systemctl daemon-reload",
    ]


def test_launchd_follows_the_same_rules(tmp_path: Path) -> None:
    config = config_file(tmp_path, {})
    text = launchd_plist("jr.test", str(config), stop_timeout_s(30_000), Account("ops", "staff"))
    for fragment in (
        "<key>UserName</key>\n  <string>ops</string>",
        "<key>GroupName</key>\n  <string>staff</string>",
        "<key>ExitTimeOut</key>\n  <integer>45</integer>",
        "<key>NumberOfFiles</key>\n    <integer>65536</integer>",
        "<key>SuccessfulExit</key>\n    <false/>",  # restarted only when it fails
        f"<string>{config.resolve()}</string>",
    ):
        assert fragment in text


def test_nssm_follows_the_same_rules(tmp_path: Path) -> None:
    lines = nssm_lines("jr-test", None, stop_timeout_s(30_000)).splitlines()
    assert lines[0].startswith(f'nssm install jr-test "{sys.executable}" -m jeeves_runner start')
    assert "nssm set jr-test AppExit Default Restart" in lines
    assert "nssm set jr-test AppStopMethodConsole 45000" in lines
