"""runs, logs, cancel: a runner's runs through its HTTP API."""

from __future__ import annotations

from typing import Any

import click

from jeeves_runner.cli.api_commands import (
    STATUS_TIMEOUT,
    TRIGGER_TIMEOUT,
    api_body,
    call_api,
    follow_log,
    path_segment,
)
from jeeves_runner.cli.common import CliError, config_option, load

STATUSES = ("pending", "running", "ok", "error", "timeout", "skipped", "cancelled")


def run_id_argument(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise CliError(f"a run id is a whole number from 1, got {text!r}", 2)
    return int(text)


@click.command()
@click.argument("job_id", required=False)
@click.option("-n", "limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option(
    "--status",
    "statuses",
    type=click.Choice(STATUSES),
    multiple=True,
    help="Only runs with this status (repeatable).",
)
@click.option("--since", help="Only runs started at or after this ISO 8601 instant.")
@click.option("--before", type=click.IntRange(1), help="Only runs with a lower id (paging).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
@config_option
def runs(
    job_id: str | None,
    limit: int,
    statuses: tuple[str, ...],
    since: str | None,
    before: int | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """A job's runs, newest first (every job's without JOB_ID)."""
    params: list[tuple[str, str | int]] = [("limit", limit)]
    params += [("status", s) for s in statuses]
    if since is not None:
        params.append(("since", since))
    if before is not None:
        params.append(("before", before))
    path = f"/jobs/{path_segment(job_id)}/runs" if job_id is not None else "/runs"
    response = call_api(load(config_path), "GET", path, STATUS_TIMEOUT, params=params)
    body = api_body(response)
    if as_json:
        click.echo(response.text)
        return
    for run in body.get("runs", []):
        click.echo(describe_run_line(run, with_job=job_id is None))


def describe_run_line(run: dict[str, Any], *, with_job: bool) -> str:
    duration = run.get("duration_ms")
    took = f"{duration / 1000:.1f}s" if isinstance(duration, int) else "-"
    code = run.get("exit_code")
    parts = [f"{run.get('id'):>6}"]
    if with_job:
        parts.append(str(run.get("job_id")))
    parts += [
        f"{run.get('status'):<9}",
        str(run.get("started_at") or "-"),
        f"{took:>7}",
        f"exit {code}" if code is not None else "-",
    ]
    error = run.get("error")
    if error and run.get("status") != "ok":
        parts.append(str(error).strip().splitlines()[0][:80] if str(error).strip() else "")
    return "  ".join(parts).rstrip()


@click.command()
@click.argument("run_id")
@click.option("-f", "--follow", is_flag=True, help="Follow until the run ends; exit 1 unless ok.")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), help="Only this stream.")
@click.option("--tail", type=click.IntRange(1, 1_000_000), help="Only the last N lines.")
@config_option
def logs(
    run_id: str, follow: bool, stream: str | None, tail: int | None, config_path: str | None
) -> None:
    """A run's full log: `<instant> <stream> <line>` per line."""
    number = run_id_argument(run_id)
    config = load(config_path)
    params: list[tuple[str, str | int]] = []
    if stream is not None:
        params.append(("stream", stream))
    if tail is not None:
        params.append(("tail", tail))
    if not follow:
        response = call_api(config, "GET", f"/runs/{number}/log", TRIGGER_TIMEOUT, params=params)
        if not response.is_success:
            api_body(response)  # raises with the runner's message
        click.echo(response.text, nl=False)
        return
    end = None
    for event, data in follow_log(config, number, params):
        if event == "line":
            click.echo(f"{data.get('at')} {data.get('stream')} {data.get('line')}")
        elif event == "end":
            end = data
    status = (end or {}).get("status")
    if status != "ok":
        raise CliError(f"run {number} ended with status {status}")


@click.command()
@click.argument("run_id")
@config_option
def cancel(run_id: str, config_path: str | None) -> None:
    """Stop a run: TERM, then KILL of its process group after 5 s."""
    number = run_id_argument(run_id)
    response = call_api(load(config_path), "POST", f"/runs/{number}/cancel", TRIGGER_TIMEOUT)
    run = api_body(response).get("run") or {}
    click.echo(f"Run {number}: {run.get('status')} ({run.get('error')})")


COMMANDS = [runs, logs, cancel]
