"""service install|uninstall: install the runner as a service on this platform.

Whatever the platform, the service runs as an ordinary user (never root unless asked), is
restarted when it fails, may open many files, and is stopped the way the runner wants:
SIGTERM to the runner alone, which drains its runs for `shutdownGraceMs` and then stops its
own jobs; the service manager kills what is left only after that (TimeoutStopSec).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import click

from jeeves_runner.cli.common import CliError, config_option, load
from jeeves_runner.execution.executor import KILL_GRACE_S

DEFAULT_NAME = "jeeves-runner"
SYSTEMD_DIR = "/etc/systemd/system"
LAUNCHD_DIR = "/Library/LaunchDaemons"
OPEN_FILES = 65536
# systemd's rule for a unit name (templates with '@' aside), which launchd labels and Windows
# service names also accept; at most 255 characters with the ".service" suffix.
_UNIT_NAME = re.compile(r"^[A-Za-z0-9_.:][A-Za-z0-9_.:\-]{0,246}$")


def name_problem(name: str) -> str | None:
    if _UNIT_NAME.match(name):
        return None
    return (
        f"invalid service name {name!r}: use 1 to 247 letters, digits, '-', '_', '.' or ':' "
        "(not starting with '-')"
    )


def _checked_name(name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise CliError(problem)
    return name


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    group: str


def service_account(user: str | None, allow_root: bool) -> Account:
    """`--user`, else the user who ran sudo, else the current user; root only when allowed."""
    import grp
    import pwd

    name = user or os.environ.get("SUDO_USER") or pwd.getpwuid(os.geteuid()).pw_name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise CliError(f"no user named '{name}' on this machine") from None
    if entry.pw_uid == 0 and not allow_root:
        raise CliError(
            "refusing to run jobs as root: pass --user NAME (an unprivileged account that owns "
            "the database folder), or --allow-root if you mean it"
        )
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    return Account(entry.pw_name, group)


def _program() -> list[str]:
    # The interpreter of this installation, so the service runs the same code and venv.
    return [sys.executable, "-m", "jeeves_runner"]


def _start_command(config_path: str | None) -> list[str]:
    command = [*_program(), "start"]
    if config_path:
        command += ["-c", str(Path(config_path).resolve())]
    return command


def _workdir(config_path: str | None) -> Path:
    return Path(config_path).resolve().parent if config_path else Path.cwd()


def stop_timeout_s(shutdown_grace_ms: int) -> int:
    # The service manager must wait for the runner's own shutdown (grace, then TERM -> KILL
    # of what is left 5 s later) before it kills it, or in-flight runs go unrecorded.
    return math.ceil(shutdown_grace_ms / 1000) + math.ceil(KILL_GRACE_S) + 10


def systemd_unit(name: str, config_path: str | None, stop_timeout: int, account: Account) -> str:
    return f"""[Unit]
Description=jeeves-runner job runner ({name})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={account.user}
Group={account.group}
ExecStart={shlex.join(_start_command(config_path))}
WorkingDirectory={_workdir(config_path)}
Restart=on-failure
RestartSec=5
# SIGTERM to the runner only: it drains runs for shutdownGraceMs, then stops its own jobs.
# What is still alive after TimeoutStopSec gets SIGKILL, the jobs included.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={stop_timeout}
LimitNOFILE={OPEN_FILES}

[Install]
WantedBy=multi-user.target
"""


def launchd_plist(name: str, config_path: str | None, stop_timeout: int, account: Account) -> str:
    args = "\n".join(f"    <string>{escape(a)}</string>" for a in _start_command(config_path))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{escape(name)}</string>
  <key>ProgramArguments</key>
  <array>
{args}
  </array>
  <key>WorkingDirectory</key>
  <string>{escape(str(_workdir(config_path)))}</string>
  <key>UserName</key>
  <string>{escape(account.user)}</string>
  <key>GroupName</key>
  <string>{escape(account.group)}</string>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ExitTimeOut</key>
  <integer>{stop_timeout}</integer>
  <key>SoftResourceLimits</key>
  <dict>
    <key>NumberOfFiles</key>
    <integer>{OPEN_FILES}</integer>
  </dict>
</dict>
</plist>
"""


def nssm_lines(name: str, config_path: str | None, stop_timeout: int) -> str:
    command = _start_command(config_path)
    return (
        f'nssm install {name} "{command[0]}" {" ".join(command[1:])}\n'
        f'nssm set {name} AppDirectory "{_workdir(config_path)}"\n'
        f"nssm set {name} AppExit Default Restart\n"
        f"nssm set {name} AppStopMethodConsole {stop_timeout * 1000}\n"
        f"nssm set {name} AppStopMethodSkip 6\n"
        f"nssm start {name}\n"
    )


@click.group()
def service() -> None:
    """Install or remove the runner as a systemd, launchd or NSSM service."""


@service.command()
@config_option
@click.option("-n", "--name", default=DEFAULT_NAME, show_default=True, help="Service name.")
@click.option("--print", "only_print", is_flag=True, help="Only show the definition.")
@click.option("--user", default=None, help="Run as this user (default: the sudo caller).")
@click.option("--allow-root", is_flag=True, help="Allow running jobs as root.")
@click.option(
    "--unit-dir",
    default=None,
    type=click.Path(file_okay=False),
    help=f"Where to write the definition (default {SYSTEMD_DIR}, or {LAUNCHD_DIR}).",
)
def install(
    config_path: str | None,
    name: str,
    only_print: bool,
    user: str | None,
    allow_root: bool,
    unit_dir: str | None,
) -> None:
    """Write the service definition and print the commands that enable it."""
    _checked_name(name)
    # Loaded also to fail now: a service with a broken config would fail at every start.
    config = load(config_path)
    stop_timeout = stop_timeout_s(config.shutdown_grace_ms)
    if sys.platform == "win32":
        # NSSM installs the service itself: what to run is the whole definition.
        click.echo(nssm_lines(name, config_path, stop_timeout), nl=False)
        return
    account = service_account(user, allow_root)
    if sys.platform == "darwin":
        text = launchd_plist(name, config_path, stop_timeout, account)
        path = Path(unit_dir or LAUNCHD_DIR) / f"{name}.plist"
        enable = [f"launchctl bootstrap system {path}"]
    else:
        text = systemd_unit(name, config_path, stop_timeout, account)
        path = Path(unit_dir or SYSTEMD_DIR) / f"{name}.service"
        enable = ["systemctl daemon-reload", f"systemctl enable --now {name}"]
    if only_print:
        click.echo(f"# {path}")
        click.echo(text, nl=False)
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"cannot write {path}: {reason}; run it with sudo, or use --print") from None
    click.echo(f"Wrote {path} (runs as {account.user}:{account.group}). To enable it:")
    for line in enable:
        click.echo(f"  {line}")


@service.command()
@config_option
@click.option("-n", "--name", default=DEFAULT_NAME, show_default=True, help="Service name.")
def uninstall(config_path: str | None, name: str) -> None:
    """Print how to remove the service."""
    _checked_name(name)
    if sys.platform == "darwin":
        path = f"{LAUNCHD_DIR}/{name}.plist"
        click.echo(f"launchctl bootout system {path}\nrm {path}")
    elif sys.platform == "win32":
        click.echo(f"nssm stop {name}\nnssm remove {name} confirm")
    else:
        click.echo(f"systemctl disable --now {name}")
        click.echo(f"rm {SYSTEMD_DIR}/{name}.service")
        click.echo("systemctl daemon-reload")
