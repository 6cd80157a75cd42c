"""status, trigger: commands that go through the running runner's HTTP API; and what every
such command shares (reaching the API, its error bodies, following a run's log)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import click
import httpx

from jeeves_runner.cli.common import EXIT_ERROR, EXIT_UNREACHABLE, CliError, config_option, load
from jeeves_runner.config import Config

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C

STATUS_TIMEOUT = httpx.Timeout(10.0)
# A manual run answers when the job ends, which may be hours away: no read timeout.
TRIGGER_TIMEOUT = httpx.Timeout(10.0, read=None)

# The token these commands send once the runner has tokens (`jeeves-runner token create`).
TOKEN_ENV = "JEEVES_RUNNER_TOKEN"
TOKEN_HINT = f"set {TOKEN_ENV} to a token of the scope needed (jeeves-runner token create)"

# A runner listening on every address is reached on loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def api_url(config: Config) -> str:
    host = _WILDCARDS.get(config.host, config.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def call_api(
    config: Config,
    method: str,
    path: str,
    timeout: httpx.Timeout,
    params: Sequence[tuple[str, str | int]] | None = None,
) -> httpx.Response:
    with api_client(config, timeout) as client:
        # None, not []: httpx would drop a query written in `path` for an empty list.
        return client.request(method, path, params=list(params) if params else None)


@contextmanager
def api_client(config: Config, timeout: httpx.Timeout) -> Iterator[httpx.Client]:
    """A client of the runner's API; failing to reach it is one CliError."""
    base = api_url(config)
    try:
        # trust_env=False: the runner is on this box; a proxy from the environment is not
        # the way to reach it.
        token = os.environ.get(TOKEN_ENV, "").strip()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(
            base_url=base, timeout=timeout, trust_env=False, headers=headers
        ) as client:
            yield client
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise CliError(
            f"the runner is not reachable at {base} ({_reason(exc)}); is it started?",
            EXIT_UNREACHABLE,
        ) from None
    except httpx.TransportError as exc:
        raise CliError(
            f"the connection to the runner at {base} failed before it answered ({_reason(exc)})",
            EXIT_UNREACHABLE,
        ) from None


def _reason(exc: httpx.TransportError) -> str:
    """What went wrong, in words: the OS's own when there is one ("connection refused")."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:1].lower() + cause.strerror[1:]
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip() or type(exc).__name__
    return text[:1].lower() + text[1:]


def api_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a response; an error answer becomes a CliError with its message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        if response.status_code in (401, 403):
            raise CliError(f"{body['error']}: {TOKEN_HINT}", EXIT_ERROR)
        raise CliError(body["error"], EXIT_ERROR)
    raise CliError(
        f"the runner answered HTTP {response.status_code} without a usable body", EXIT_ERROR
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON of GET /stats.")
@config_option
def status(as_json: bool, config_path: str | None) -> None:
    """Show the running runner's statistics."""
    response = call_api(load(config_path), "GET", "/stats", STATUS_TIMEOUT)
    stats = api_body(response)
    if as_json:
        click.echo(response.text)
        return
    rows = (
        ("Jobs", stats.get("totalJobs")),
        ("Running now", stats.get("running")),
        ("Failed to schedule", stats.get("failedRegistrations")),
        ("OK, last hour", stats.get("okLastHour")),
        ("Failed, last hour", stats.get("errorsLastHour")),
    )
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        click.echo(f"{label + ':':<{width}} {value}")


@click.command()
@click.option("-i", "--id", "job_id", required=True, help="Id of the job to run.")
@click.option("--no-wait", is_flag=True, help="Start the run, print its id and return at once.")
@config_option
def trigger(job_id: str, no_wait: bool, config_path: str | None) -> None:
    """Run a job now, show its output as it prints it, and the result at its end (exit 1
    unless it is ok). With --no-wait, print the new run's id and return."""
    config = load(config_path)
    try:
        response = call_api(
            config,
            "POST",
            f"/jobs/{path_segment(job_id)}/run",
            TRIGGER_TIMEOUT,
            [("wait", "false")],
        )
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted before the runner answered: a run of '{job_id}' may have started "
            f"and goes on; see 'jeeves-runner runs {job_id}'",
            EXIT_INTERRUPTED,
        ) from None
    run_id = api_body(response).get("run_id")
    if not isinstance(run_id, int):
        raise CliError("the runner's answer holds no run id", EXIT_ERROR)
    if no_wait:
        click.echo(run_id)
        return
    shown = 0
    try:
        for event, data in follow_log(config, run_id):
            if event == "line":
                shown += 1
                # The job's own output as it printed it: stdout here, the rest on stderr.
                click.echo(data.get("line"), err=data.get("stream") != "stdout")
    except KeyboardInterrupt:
        # Leaving does not stop the run (the runner owns it); say so, and how to stop it,
        # rather than a bare "aborted" that reads as cancelled.
        raise CliError(
            f"interrupted: run {run_id} of '{job_id}' goes on in the runner; stop it with "
            f"'jeeves-runner cancel {run_id}', see it with 'jeeves-runner logs {run_id}'",
            EXIT_INTERRUPTED,
        ) from None
    run = api_body(call_api(config, "GET", f"/runs/{run_id}", STATUS_TIMEOUT)).get("run")
    if not isinstance(run, dict):
        raise CliError("the runner's answer holds no run", EXIT_ERROR)
    result = dict(run)
    if shown:
        # Already shown line by line: the summary does not repeat the tails.
        result["stdout"] = result["stderr"] = ""
    click.echo(describe_result(job_id, result))
    if result.get("status") != "ok":
        # A CliError, not click's Exit: outside standalone mode click returns an Exit's code
        # instead of raising it, and the run would exit 0.
        raise CliError(f"the run of '{job_id}' ended with status {result.get('status')}")


def describe_result(job_id: str, result: dict[str, Any]) -> str:
    duration = result.get("duration_ms")
    took = f" in {duration / 1000:.1f}s" if isinstance(duration, int) else ""
    exit_code = result.get("exit_code")
    code = f", exit code {exit_code}" if exit_code is not None else ""
    lines = [f"Job '{job_id}': {result.get('status')}{took}{code}"]
    if result.get("error") and result.get("status") != "ok":
        lines.append(f"Error: {result['error']}")
    for stream in ("stdout", "stderr"):
        text = result.get(stream)
        if isinstance(text, str) and text.strip():
            lines.append(f"--- {stream} ---")
            lines.append(text.rstrip("\n"))
    return "\n".join(lines)


def path_segment(text: str) -> str:
    """`text` as one path segment: an id holding '/', '?' or '..' still reaches the job route
    (and its 404) rather than another path."""
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


def follow_log(
    config: Config, run_id: int, params: list[tuple[str, str | int]] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The events of GET /runs/:id/log?follow=true as they come: ("line", {...}) for each
    line, then ("end", {...}) with the run's final status."""
    query: list[tuple[str, str | int | float | bool | None]] = [("follow", "true")]
    query.extend(params or [])
    with api_client(config, TRIGGER_TIMEOUT) as client:
        try:
            with client.stream("GET", f"/runs/{run_id}/log", params=query) as response:
                if not response.is_success:
                    response.read()
                    api_body(response)
                ended = False
                event: str | None = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[len("event: ") :]
                    elif line.startswith("data: ") and event is not None:
                        data = json.loads(line[len("data: ") :])
                        yield event, data
                        ended = ended or event == "end"
                        event = None
        except httpx.TransportError as exc:
            raise CliError(
                f"the connection to the runner broke while following run {run_id} ({exc}); "
                f"`jeeves-runner logs {run_id} -f` follows it again",
                EXIT_ERROR,
            ) from None
    if not ended:
        raise CliError(
            f"the runner closed the log of run {run_id} before the run ended; "
            f"`jeeves-runner logs {run_id} -f` follows it again"
        )


COMMANDS = [status, trigger]
