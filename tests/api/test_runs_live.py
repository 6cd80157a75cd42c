"""Runs you can follow, against the REAL runner and real children: full logs through
`/runs/:id/log`, the cap, live follow, cancel, the asynchronous trigger."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jeeves_runner.execution.process_groups import group_is_alive
from live_runner import LiveRunner

INSTANT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
LOG_LINE = re.compile(rf"^({INSTANT}) (stdout|stderr|runner) (.*)$")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveRunner]:
    runner = LiveRunner(tmp_path, shutdownGraceMs=10_000, runLogMaxBytes=10 * 1024 * 1024)
    runner.start()
    try:
        yield runner
    finally:
        runner.join()


@pytest.fixture
def http(live: LiveRunner) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def script(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def fifo(folder: Path) -> Path:
    """What a child blocks on until the test writes to it."""
    path = folder / "go"
    os.mkfifo(path)
    return path


def release(path: Path) -> None:
    with path.open("w") as pipe:
        pipe.write("go\n")


def wait_until(predicate: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def parse_log(text: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        assert match, line
        rows.append((match[1], match[2], match[3]))
    return rows


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            assert event is not None
            yield event, json.loads(line[len("data: ") :])
            event = None


def start(http: httpx.Client, job_id: str) -> int:
    answer = http.post(f"/jobs/{job_id}/run", params={"wait": "false"})
    assert answer.status_code == 202, answer.text
    return int(answer.json()["run_id"])


def wait_finished(http: httpx.Client, run_id: int) -> dict[str, Any]:
    done: dict[str, Any] = {}

    def finished() -> bool:
        done.update(http.get(f"/runs/{run_id}").json()["run"])
        return done["status"] not in ("pending", "running")

    wait_until(finished, f"run {run_id} to finish")
    return done


def test_200000_lines_come_back_in_order_with_stream_and_time(
    live: LiveRunner, http: httpx.Client, tmp_path: Path
) -> None:
    live.add_job(
        "chatty",
        script(
            tmp_path,
            "chatty.py",
            "import sys\n"
            "for i in range(200_000):\n"
            "    print(f'line {i}')\n"
            "    if i % 50_000 == 0:\n"
            "        print(f'err {i}', file=sys.stderr)\n",
        ),
    )
    result = http.post("/jobs/chatty/run").json()["result"]
    assert result["status"] == "ok"
    (run,) = http.get("/jobs/chatty/runs").json()["runs"]
    rows = parse_log(http.get(f"/runs/{run['id']}/log").text)
    stdout = [text for _, stream, text in rows if stream == "stdout"]
    assert stdout == [f"line {i}" for i in range(200_000)]
    assert [text for _, stream, text in rows if stream == "stderr"] == [
        f"err {i}" for i in range(0, 200_000, 50_000)
    ]
    times = [at for at, _, _ in rows]
    assert run["started_at"] <= min(times) and max(times) <= run["finished_at"]
    only_stderr = parse_log(http.get(f"/runs/{run['id']}/log", params={"stream": "stderr"}).text)
    assert [text for _, _, text in only_stderr] == [
        "err 0",
        "err 50000",
        "err 100000",
        "err 150000",
    ]
    last = parse_log(http.get(f"/runs/{run['id']}/log", params={"tail": "3"}).text)
    assert [text for _, _, text in last] == ["line 199997", "line 199998", "line 199999"]
    # The contract's tails are still the last 100 lines.
    assert run["stdout"].split("\n")[-1] == "line 199999"
    assert len(run["stdout"].split("\n")) == 100


def test_past_the_cap_the_head_the_tail_and_the_marker_are_kept(tmp_path: Path) -> None:
    live = LiveRunner(tmp_path, runLogMaxBytes=100_000).start()
    try:
        live.add_job(
            "long",
            script(tmp_path, "long.py", "for i in range(20_000):\n    print(f'{i:09d}')\n"),
        )
        with httpx.Client(base_url=live.url, timeout=30) as http:
            assert http.post("/jobs/long/run").json()["result"]["status"] == "ok"
            (run,) = http.get("/jobs/long/runs").json()["runs"]
            rows = parse_log(http.get(f"/runs/{run['id']}/log").text)
    finally:
        live.join()
    texts = [text for _, _, text in rows]
    (marker_at,) = [i for i, (_, stream, _) in enumerate(rows) if stream == "runner"]
    head, marker, tail = texts[:marker_at], texts[marker_at], texts[marker_at + 1 :]
    # Each line is 10 bytes: the head holds the first 50,000 bytes exactly.
    assert head == [f"{i:09d}" for i in range(5_000)]
    assert tail == [f"{i:09d}" for i in range(20_000 - len(tail), 20_000)]
    assert 40_000 <= len(tail) * 10 <= 50_000
    dropped = 20_000 - len(head) - len(tail)
    assert marker == (
        f"…[{dropped:,} lines ({dropped * 10:,} bytes) dropped here: this run's log passed "
        "runLogMaxBytes (100,000 bytes); its first and last halves are kept]"
    )


def test_follow_gets_lines_while_the_child_runs_then_end(
    live: LiveRunner, http: httpx.Client, tmp_path: Path
) -> None:
    go = fifo(tmp_path)
    live.add_job(
        "waits",
        script(
            tmp_path,
            "waits.py",
            "import sys\n"
            "print('before', flush=True)\n"
            "print('to stderr', file=sys.stderr, flush=True)\n"
            f"open({str(go)!r}).read()\n"
            "print('after')\n"
            "sys.exit(3)\n",
        ),
    )
    run_id = start(http, "waits")
    seen: list[tuple[str, str]] = []
    with http.stream("GET", f"/runs/{run_id}/log", params={"follow": "true"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        for event, data in events:
            assert event == "line"
            assert re.fullmatch(INSTANT, data["at"])
            seen.append((data["stream"], data["line"]))
            if len(seen) == 2:
                break
        # Both lines came while the child is blocked on the test: they are live.
        assert sorted(seen) == [("stderr", "to stderr"), ("stdout", "before")]
        # (Its `running` mark is batched: written a few ms after the child started.)
        assert http.get(f"/runs/{run_id}").json()["run"]["finished_at"] is None
        # A second follower, while it runs, asking for the last line so far of stdout.
        with http.stream(
            "GET",
            f"/runs/{run_id}/log",
            params={"follow": "true", "tail": "1", "stream": "stdout"},
        ) as second:
            first_event = next(sse_events(second))
        assert (first_event[0], first_event[1]["line"]) == ("line", "before")
        release(go)
        rest = list(events)
    assert rest[:-1] == [("line", {"stream": "stdout", "at": rest[0][1]["at"], "line": "after"})]
    end_event, end = rest[-1]
    assert end_event == "end"
    assert {k: end[k] for k in ("id", "status", "exit_code")} == {
        "id": run_id,
        "status": "error",
        "exit_code": 3,
    }
    # A late follower gets everything printed, then the end at once.
    with http.stream("GET", f"/runs/{run_id}/log", params={"follow": "true"}) as response:
        late = list(sse_events(response))
    assert [data.get("line") for event, data in late if event == "line"] == [
        "before",
        "to stderr",
        "after",
    ] or [data.get("line") for event, data in late if event == "line"] == [
        "to stderr",
        "before",
        "after",
    ]
    assert late[-1][0] == "end" and late[-1][1]["status"] == "error"
    with http.stream(
        "GET", f"/runs/{run_id}/log", params={"follow": "true", "tail": "1"}
    ) as response:
        last = list(sse_events(response))
    assert [event for event, _ in last] == ["line", "end"]
    assert last[0][1]["line"] == "after"


def test_tails_show_what_a_run_in_flight_printed_so_far(
    live: LiveRunner, http: httpx.Client, tmp_path: Path
) -> None:
    go = fifo(tmp_path)
    live.add_job(
        "slow",
        script(
            tmp_path,
            "slow.py",
            "import sys, time\n"
            "print('so far', flush=True)\n"
            "time.sleep(0.3)\n"  # a flush of its own for the line
            "sys.stdout.write('50%'); sys.stdout.flush()\n"  # a progress bar: no newline
            f"open({str(go)!r}).read()\n",
        ),
    )
    run_id = start(http, "slow")
    wait_until(
        lambda: http.get(f"/runs/{run_id}").json()["run"]["stdout"] == "so far\n50%",
        "the tail of a run in flight",
    )
    (listed,) = http.get("/jobs/slow/runs").json()["runs"]
    assert (listed["status"], listed["stdout"]) == ("running", "so far\n50%")
    release(go)
    assert wait_finished(http, run_id)["status"] == "ok"


def test_wait_false_answers_before_the_child_finishes(
    live: LiveRunner, http: httpx.Client, tmp_path: Path
) -> None:
    go = fifo(tmp_path)
    live.add_job("held", script(tmp_path, "held.py", f"open({str(go)!r}).read()\n"))
    run_id = start(http, "held")
    run = http.get(f"/runs/{run_id}").json()["run"]
    assert run["status"] in ("pending", "running") and run["finished_at"] is None
    release(go)
    assert wait_finished(http, run_id)["status"] == "ok"


def test_cancel_stops_a_running_child_and_says_who_asked(
    live: LiveRunner, http: httpx.Client, tmp_path: Path
) -> None:
    live.add_job("sleeper", script(tmp_path, "sleeper.sh", "echo started\nexec sleep 300\n"))
    run_id = start(http, "sleeper")
    wait_until(
        lambda: http.get(f"/runs/{run_id}").json()["run"]["stdout"] == "started", "the start"
    )
    answer = http.post(f"/runs/{run_id}/cancel")
    assert answer.status_code == 200
    run = answer.json()["run"]
    assert (run["id"], run["status"], run["error"]) == (
        run_id,
        "cancelled",
        "Cancelled through the API",
    )
    again = http.post(f"/runs/{run_id}/cancel")
    assert (again.status_code, again.json()) == (
        409,
        {"error": f"Run {run_id} has already finished (cancelled)"},
    )


@pytest.mark.slow
def test_cancel_kills_a_group_whose_member_ignores_term(
    live: LiveRunner, http: httpx.Client, tmp_path: Path
) -> None:
    live.add_job(
        "stubborn",
        script(
            tmp_path,
            "stubborn.sh",
            "(trap '' TERM; echo \"member $BASHPID\"; while true; do sleep 0.1; done) &\nwait\n",
        ),
    )
    run_id = start(http, "stubborn")
    member: list[int] = []

    def member_started() -> bool:
        out = http.get(f"/runs/{run_id}").json()["run"]["stdout"]
        member[:] = [int(m) for m in re.findall(r"member (\d+)", out)]
        return bool(member)

    wait_until(member_started, "the group member")
    pgid = os.getpgid(member[0])
    started = time.monotonic()
    run = http.post(f"/runs/{run_id}/cancel").json()["run"]
    assert time.monotonic() - started >= 4.5  # TERM was ignored: KILL came after the grace
    assert (run["status"], run["error"]) == ("cancelled", "Cancelled through the API")
    assert not group_is_alive(pgid)


def test_cancel_of_a_waiting_run_ends_it_without_starting(tmp_path: Path) -> None:
    live = LiveRunner(tmp_path, maxConcurrency=1).start()
    go = fifo(tmp_path)
    try:
        live.add_job("first", script(tmp_path, "first.py", f"open({str(go)!r}).read()\n"))
        marker = tmp_path / "second-ran"
        live.add_job("second", script(tmp_path, "second.sh", f"touch {marker}\n"))
        with httpx.Client(base_url=live.url, timeout=30) as http:
            first = start(http, "first")
            second = start(http, "second")
            assert http.get(f"/runs/{second}").json()["run"]["status"] == "pending"
            run = http.post(f"/runs/{second}/cancel").json()["run"]
            assert (run["status"], run["error"]) == (
                "cancelled",
                "Cancelled through the API before it started",
            )
            release(go)
            assert wait_finished(http, first)["status"] == "ok"
        assert not marker.exists()
    finally:
        live.join()


def test_a_bad_result_line_is_a_warning_in_the_log(
    live: LiveRunner, http: httpx.Client, tmp_path: Path
) -> None:
    live.add_job(
        "bad",
        script(tmp_path, "bad.py", "print('JR_RESULT:{tokens: 5}')\nprint('done')\n"),
    )
    assert http.post("/jobs/bad/run").json()["result"]["status"] == "ok"
    (run,) = http.get("/jobs/bad/runs").json()["runs"]
    rows = [(s, t) for _, s, t in parse_log(http.get(f"/runs/{run['id']}/log").text)]
    warning = (
        "runner",
        "warning: a JR_RESULT: line was ignored: it is not valid JSON "
        "(Expecting property name enclosed in double quotes)",
    )
    # The warning follows the line it is about (in the same read or the next one).
    assert sorted(rows) == sorted(
        [("stdout", "JR_RESULT:{tokens: 5}"), ("stdout", "done"), warning]
    )
    assert rows[0] == ("stdout", "JR_RESULT:{tokens: 5}")
