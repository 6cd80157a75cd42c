"""Runs routes against the real server over a real store (FakeControl behind the API): one
run, history across jobs, a job's runs by status and page, logs (text, stream, tail, follow
from the store), cancel; every bad parameter a 400 with its sentence."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fake_control import NOW, FakeControl
from hypothesis import given
from hypothesis import strategies as st
from live_api import wait_for
from starlette.requests import Request

from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import LIMIT_DEFAULT, limit_from
from jeeves_runner.api.runs import before_from, run_filters, statuses_from
from jeeves_runner.models import LogChunk, LogStream, RunLogWrite, RunResult, RunStatus
from jeeves_runner.store import SqliteStore

RUN_NOT_FOUND = {"error": "Run not found"}
STATUS_ERROR = (
    "status must be one of pending, running, ok, error, timeout, skipped, cancelled, missed; got "
)
A = "2026-03-02T12:00:00.100Z"
B = "2026-03-02T12:00:00.200Z"


@pytest.fixture
def history(control: FakeControl) -> dict[str, int]:
    control.add_job("a")
    control.add_job("b")
    runs = {
        "old_error": control.add_run("a", RunStatus.ERROR, NOW - timedelta(days=2), NOW),
        "ok": control.add_run("a", RunStatus.OK, NOW - timedelta(hours=2), NOW),
        "b_error": control.add_run("b", RunStatus.ERROR, NOW - timedelta(hours=1), NOW),
        "timeout": control.add_run("a", RunStatus.TIMEOUT, NOW - timedelta(minutes=5), NOW),
    }
    return runs


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["runs"]]


# ---- GET /runs/:id ---------------------------------------------------------------------


def test_one_run_with_every_field(client: httpx.Client, history: dict[str, int]) -> None:
    run = client.get(f"/runs/{history['ok']}").json()["run"]
    assert run == {
        "id": history["ok"],
        "job_id": "a",
        "started_at": "2026-03-02T10:00:00.000Z",
        "finished_at": "2026-03-02T12:00:00.000Z",
        "status": "ok",
        "exit_code": 0,
        "stdout": "",
        "stderr": "",
        "duration_ms": 100,
        "error": None,
        "trigger": "schedule",
        "tokens": None,
        "result_meta": None,
        "skipped_count": None,
        "last_skipped_at": None,
        "scheduled_for": None,
        "attempt": 1,
        "retry_of": None,
        "missed_count": None,
        "missed_first": None,
        "missed_last": None,
        "node_id": None,
    }


@pytest.mark.parametrize("path", ["/runs/999", "/runs/abc", "/runs/-1", "/runs/1e3"])
def test_an_unknown_run_is_404(client: httpx.Client, path: str) -> None:
    for suffix in ("", "/log", "/log?follow=true"):
        response = client.get(path + suffix)
        assert (response.status_code, response.json()) == (404, RUN_NOT_FOUND)
    response = client.post(path + "/cancel")
    assert (response.status_code, response.json()) == (404, RUN_NOT_FOUND)


# ---- GET /runs and GET /jobs/:id/runs --------------------------------------------------


def test_runs_across_jobs_by_status_since_before_and_limit(
    client: httpx.Client, history: dict[str, int]
) -> None:
    h = history
    assert ids(client.get("/runs")) == [h["timeout"], h["b_error"], h["ok"], h["old_error"]]
    assert ids(client.get("/runs?status=error")) == [h["b_error"], h["old_error"]]
    last_day = "2026-03-01T12:00:00Z"
    assert ids(client.get(f"/runs?status=error&status=timeout&since={last_day}")) == [
        h["timeout"],
        h["b_error"],
    ]
    assert ids(client.get(f"/runs?status=error,timeout&since={last_day}")) == [
        h["timeout"],
        h["b_error"],
    ]
    # A bare date-time is UTC; an offset is honoured.
    assert ids(client.get("/runs?since=2026-03-02T11:00:00")) == [h["timeout"], h["b_error"]]
    assert ids(client.get("/runs?since=2026-03-02T13:30:00%2B02:00")) == [h["timeout"]]
    assert ids(client.get("/runs?limit=2")) == [h["timeout"], h["b_error"]]
    assert ids(client.get(f"/runs?limit=2&before={h['b_error']}")) == [h["ok"], h["old_error"]]


def test_a_jobs_runs_by_status_and_page(client: httpx.Client, history: dict[str, int]) -> None:
    h = history
    assert ids(client.get("/jobs/a/runs?status=error&status=timeout")) == [
        h["timeout"],
        h["old_error"],
    ]
    assert ids(client.get(f"/jobs/a/runs?before={h['timeout']}&limit=1")) == [h["ok"]]
    assert ids(client.get("/jobs/b/runs?status=ok")) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=broken", STATUS_ERROR + "'broken'"),
        ("status=", STATUS_ERROR + "''"),
        ("status=ok,nope", STATUS_ERROR + "'nope'"),
        ("before=", "before must be a run id (an integer from 1)"),
        ("before=0", "before must be a run id (an integer from 1)"),
        ("before=-5", "before must be a run id (an integer from 1)"),
        ("before=1.5", "before must be a run id (an integer from 1)"),
        ("limit=0", "limit must be an integer from 1 to 1000"),
    ],
)
def test_bad_history_parameters_are_400_with_a_sentence(
    client: httpx.Client, history: dict[str, int], query: str, message: str
) -> None:
    for path in ("/runs", "/jobs/a/runs"):
        response = client.get(f"{path}?{query}")
        assert (response.status_code, response.json()) == (400, {"error": message}), path


@pytest.mark.parametrize("since", ["", "yesterday", "2026-13-01", "12:00"])
def test_a_bad_since_is_400(client: httpx.Client, since: str) -> None:
    response = client.get("/runs", params={"since": since})
    assert response.status_code == 400
    assert response.json() == {
        "error": f"since must be an ISO 8601 instant, e.g. 2026-03-02T01:03:00Z; got {since!r}"
    }


# ---- GET /runs/:id/log -----------------------------------------------------------------


def log_run(control: FakeControl, store: SqliteStore) -> int:
    control.add_job("logged")
    run_id = control.add_run("logged", RunStatus.RUNNING, NOW)
    chunks = (
        LogChunk(0, LogStream.STDOUT, A, b"one\ntwo\n"),
        LogChunk(1, LogStream.STDERR, A, b"bad \xff byte\n"),
        LogChunk(2, LogStream.RUNNER, B, b"warning: x\n"),
        LogChunk(3, LogStream.STDOUT, B, b"three\n"),
    )
    store.logs.write_logs([RunLogWrite(run_id, chunks)])
    return run_id


def test_a_log_as_text_whole_by_stream_and_its_last_lines(
    client: httpx.Client, control: FakeControl, store: SqliteStore
) -> None:
    run_id = log_run(control, store)
    whole = client.get(f"/runs/{run_id}/log")
    assert whole.headers["content-type"] == "text/plain; charset=utf-8"
    assert whole.text == (
        f"{A} stdout one\n{A} stdout two\n{A} stderr bad \ufffd byte\n"
        f"{B} runner warning: x\n{B} stdout three\n"
    )
    stdout = client.get(f"/runs/{run_id}/log?stream=stdout").text
    assert stdout == f"{A} stdout one\n{A} stdout two\n{B} runner warning: x\n{B} stdout three\n"
    assert client.get(f"/runs/{run_id}/log?tail=2").text == (
        f"{B} runner warning: x\n{B} stdout three\n"
    )
    assert client.get(f"/runs/{run_id}/log?tail=3&stream=stdout").text == (
        f"{A} stdout two\n{B} runner warning: x\n{B} stdout three\n"
    )
    assert client.get(f"/runs/{run_id}/log?tail=1000").text == whole.text
    empty_run = control.add_run("logged", RunStatus.OK, NOW, NOW)
    assert client.get(f"/runs/{empty_run}/log").text == ""


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("stream=both", "stream must be stdout or stderr"),
        ("stream=", "stream must be stdout or stderr"),
        ("tail=0", "tail must be an integer from 1 to 1000000"),
        ("tail=", "tail must be an integer from 1 to 1000000"),
        ("tail=1000001", "tail must be an integer from 1 to 1000000"),
        ("tail=x", "tail must be an integer from 1 to 1000000"),
        ("follow=yes", "follow must be true or false"),
        ("follow=", "follow must be true or false"),
    ],
)
def test_bad_log_parameters_are_400_with_a_sentence(
    client: httpx.Client, control: FakeControl, store: SqliteStore, query: str, message: str
) -> None:
    run_id = log_run(control, store)
    response = client.get(f"/runs/{run_id}/log?{query}")
    assert (response.status_code, response.json()) == (400, {"error": message})


def read_events(response: httpx.Response, out: list[tuple[str, dict[str, Any]]]) -> None:
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            assert event is not None
            out.append((event, json.loads(line[6:])))


def test_follow_of_a_run_this_runner_does_not_hold_reads_the_store_until_its_end(
    client: httpx.Client, control: FakeControl, store: SqliteStore
) -> None:
    run_id = log_run(control, store)
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/runs/{run_id}/log?follow=true&stream=stdout") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=read_events, args=(response, events))
        reader.start()
        wait_for(lambda: len(events) == 4, "what was printed so far")
        more = (LogChunk(4, LogStream.STDOUT, B, b"four\n"),)
        store.logs.write_logs([RunLogWrite(run_id, more)])
        wait_for(lambda: len(events) == 5, "a new line")
        store.runs.finish_run(
            run_id,
            RunResult(RunStatus.ERROR, 42, exit_code=2),
            "2026-03-02T12:00:01.000Z",
            log=RunLogWrite(run_id, (LogChunk(5, LogStream.STDOUT, B, b"last\n"),)),
        )
        reader.join(10)
    assert [(e, d.get("stream"), d.get("line")) for e, d in events[:-1]] == [
        ("line", "stdout", "one"),
        ("line", "stdout", "two"),
        ("line", "runner", "warning: x"),
        ("line", "stdout", "three"),
        ("line", "stdout", "four"),
        ("line", "stdout", "last"),
    ]
    assert events[0][1]["at"] == A
    assert events[-1] == (
        "end",
        {
            "id": run_id,
            "status": "error",
            "exit_code": 2,
            "error": None,
            "duration_ms": 42,
            "finished_at": "2026-03-02T12:00:01.000Z",
        },
    )


# ---- POST /runs/:id/cancel -------------------------------------------------------------


def test_cancel_a_run_in_flight(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("slow")
    control.hold("slow")
    run_id = client.post("/jobs/slow/run?wait=false").json()["run_id"]
    answer = client.post(f"/runs/{run_id}/cancel")
    assert answer.status_code == 200
    run = answer.json()["run"]
    assert (run["id"], run["status"], run["error"]) == (
        run_id,
        "cancelled",
        "Cancelled through the API",
    )
    assert control.cancel_calls == [(run_id, "Cancelled through the API")]
    again = client.post(f"/runs/{run_id}/cancel")
    assert (again.status_code, again.json()) == (
        409,
        {"error": f"Run {run_id} has already finished (cancelled)"},
    )


def test_cancel_of_a_finished_run_or_one_held_elsewhere_is_409(
    client: httpx.Client, control: FakeControl, history: dict[str, int]
) -> None:
    done = client.post(f"/runs/{history['ok']}/cancel")
    assert (done.status_code, done.json()) == (
        409,
        {"error": f"Run {history['ok']} has already finished (ok)"},
    )
    elsewhere = control.add_run("a", RunStatus.RUNNING, NOW)
    response = client.post(f"/runs/{elsewhere}/cancel")
    assert (response.status_code, response.json()) == (
        409,
        {"error": f"Run {elsewhere} is not in flight in this runner"},
    )


def test_follow_with_tail_starts_from_the_last_lines(
    client: httpx.Client, control: FakeControl, store: SqliteStore
) -> None:
    run_id = log_run(control, store)
    store.runs.finish_run(run_id, RunResult(RunStatus.OK, 1, exit_code=0), B)
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/runs/{run_id}/log?follow=true&tail=2") as response:
        read_events(response, events)
    assert [(e, d.get("line")) for e, d in events[:-1]] == [
        ("line", "warning: x"),
        ("line", "three"),
    ]
    assert events[-1][0] == "end" and events[-1][1]["status"] == "ok"


# run_filters reads the common query strings (none, or `limit` in plain digits) straight from
# the raw bytes; these are the strings it must answer exactly as the general readers do.
_QUERY_PIECES = st.sampled_from(
    [
        "limit=50",
        "limit=1",
        "limit=0",
        "limit=1000",
        "limit=1001",
        "limit=0050",
        "limit=99999999",
        "limit=",
        "limit",
        "limit=5x",
        "limit=%35",
        "LIMIT=5",
        "limit=-1",
        "limit=+5",
        "limit= 5",
        "status=ok",
        "status=ok,error",
        "status=bogus",
        "before=3",
        "before=0",
        "before=x",
        "other=1",
        "",
    ]
)


def _outcome(read: Any) -> Any:
    try:
        return ("value", read())
    except ApiError as exc:
        return ("error", exc.status_code, exc.message)


@given(st.lists(_QUERY_PIECES, max_size=3), st.sampled_from(["&", ";"]))
def test_run_filters_answer_every_query_string_as_the_general_readers(
    pieces: list[str], joiner: str
) -> None:
    query = joiner.join(pieces).encode()
    request = Request({"type": "http", "query_string": query, "headers": []})
    general = _outcome(
        lambda: (limit_from(request), tuple(statuses_from(request)), before_from(request))
    )
    assert _outcome(lambda: run_filters(request)) == general, query


def test_run_filters_take_the_plain_limit_without_the_general_parse() -> None:
    """What the shortcut is for: `limit=50` and no query at all never build QueryParams."""
    for query, limit in ((b"limit=7", 7), (b"", LIMIT_DEFAULT)):
        request = Request({"type": "http", "query_string": query, "headers": []})
        assert run_filters(request) == (limit, (), None)
        assert not hasattr(request, "_query_params"), query
