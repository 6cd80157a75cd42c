"""service install|uninstall: print what installs the runner as a service on this platform."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

import click

from jeeves_runner.cli.common import config_option, load
from jeeves_runner.execution.executor import KILL_GRACE_S


def _program() -> list[str]:
    # The interpreter of this installation, so the service runs the same code and venv.
    return [sys.executable, "-m", "jeeves_runner"]


def _start_command(config_path: str | None) -> list[str]:
    command = [*_program(), "start"]
    if config_path:
        command += ["-c", str(Path(config_path).resolve())]
    return command


def systemd_unit(name: str, config_path: str | None, stop_timeout_s: int) -> str:
    workdir = Path(config_path).resolve().parent if config_path else Path.cwd()
    return f"""[Unit]
Description=jeeves-runner job runner ({name})
After=network.target

[Service]
Type=simple
ExecStart={shlex.join(_start_command(config_path))}
WorkingDirectory={workdir}
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec={stop_timeout_s}

[Install]
WantedBy=multi-user.target
"""


def launchd_plist(name: str, config_path: str | None, stop_timeout_s: int) -> str:
    args = "\n".join(f"    <string>{a}</string>" for a in _start_command(config_path))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{name}</string>
  <key>ProgramArguments</key>
  <array>
{args}
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <true/>
  <key>ExitTimeOut</key>
  <integer>{stop_timeout_s}</integer>
</dict>
</plist>
"""


def nssm_lines(name: str, config_path: str | None, stop_timeout_s: int) -> str:
    command = _start_command(config_path)
    return (
        f'nssm install {name} "{command[0]}" {" ".join(command[1:])}\n'
        f"nssm set {name} AppStopMethodConsole {stop_timeout_s * 1000}\n"
        f"nssm start {name}\n"
    )


@click.group()
def service() -> None:
    """Print service definitions for systemd, launchd or NSSM."""


@service.command()
@config_option
@click.option("-n", "--name", default="jeeves-runner", show_default=True)
def install(config_path: str | None, name: str) -> None:
    """Print how to install the runner as a service on this platform."""
    # Loaded also to fail now: a service with a broken config would fail at every start.
    config = load(config_path)
    # The service manager must wait for the runner's own shutdown (grace, then TERM -> KILL
    # of what is left 5 s later) before it kills it, or in-flight runs go unrecorded.
    stop_timeout_s = math.ceil(config.shutdown_grace_ms / 1000) + math.ceil(KILL_GRACE_S) + 10
    if sys.platform == "darwin":
        click.echo(f"# Save as ~/Library/LaunchAgents/{name}.plist, then: launchctl load <file>")
        click.echo(launchd_plist(name, config_path, stop_timeout_s), nl=False)
    elif sys.platform == "win32":
        click.echo(nssm_lines(name, config_path, stop_timeout_s), nl=False)
    else:
        click.echo(f"# Save as /etc/systemd/system/{name}.service, then:")
        click.echo(f"#   systemctl daemon-reload && systemctl enable --now {name}")
        click.echo(systemd_unit(name, config_path, stop_timeout_s), nl=False)


@service.command()
@config_option
@click.option("-n", "--name", default="jeeves-runner", show_default=True)
def uninstall(config_path: str | None, name: str) -> None:
    """Print how to remove the service."""
    if sys.platform == "darwin":
        path = f"~/Library/LaunchAgents/{name}.plist"
        click.echo(f"launchctl unload {path}\nrm {path}")
    elif sys.platform == "win32":
        click.echo(f"nssm stop {name}\nnssm remove {name} confirm")
    else:
        click.echo(f"systemctl disable --now {name}")
        click.echo(f"rm /etc/systemd/system/{name}.service")
        click.echo("systemctl daemon-reload")
