"""`next-runs` and `start`'s error exits, as real subprocesses."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path

from conftest import RunCli
from jeeves_runner.store import SqliteStore


def test_next_runs_in_a_zone(run_cli: RunCli) -> None:
    code, out, err = run_cli("next-runs", "30 2 * * *", "-n", "3", "--tz", "America/New_York")
    assert (code, err) == (0, "")
    fires = [datetime.fromisoformat(line) for line in out.splitlines()]
    assert len(fires) == 3
    assert all((f.hour, f.minute) in ((2, 30), (3, 30)) for f in fires)
    assert fires == sorted(fires)


def test_next_runs_after_an_instant_shows_the_dst_shift(run_cli: RunCli) -> None:
    code, out, err = run_cli(
        "next-runs",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2027-03-13T00:00:00Z",
        "-n",
        "3",
    )
    assert (code, err) == (0, "")
    # 2027-03-14 02:30 does not exist in New York (02:00 -> 03:00): it fires at 03:30.
    assert out.splitlines() == [
        "2027-03-13T02:30:00-05:00",
        "2027-03-14T03:30:00-04:00",
        "2027-03-15T02:30:00-04:00",
    ]


def test_next_runs_after_must_be_an_instant(run_cli: RunCli) -> None:
    code, out, err = run_cli("next-runs", "@daily", "--after", "2027-03-13T00:00")
    assert (code, out) == (1, "")
    assert err == (
        "error: --after '2027-03-13T00:00' is not an instant: use ISO 8601 with a zone, "
        "e.g. 2027-03-13T00:00:00Z or 2027-03-13T00:00:00-05:00\n"
    )


def test_next_runs_default_count_and_never_firing(run_cli: RunCli) -> None:
    code, out, _ = run_cli("next-runs", "@hourly")
    assert code == 0 and len(out.splitlines()) == 5
    code, out, _ = run_cli("next-runs", "0 0 30 2 *")
    assert (code, out.strip()) == (0, "This schedule never fires.")


def test_next_runs_bad_schedule_and_zone_are_one_line_errors(run_cli: RunCli) -> None:
    code, out, err = run_cli("next-runs", "* * * * 8")
    assert code == 1 and out == ""
    assert err == "error: day-of-week: 8 is out of range 0-7\n"
    code, _, err = run_cli("next-runs", "* * * * *", "--tz", "Mars/Olympus")
    assert code == 1 and err.startswith("error: ") and "Mars/Olympus" in err
    assert len(err.splitlines()) == 1


def test_start_with_a_bad_config_exits_1_naming_the_key(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"maxConcurrency": 0}))
    code, _, err = run_cli("start", "-c", str(config))
    assert code == 1
    assert err == f"error: {config}: maxConcurrency: must be an integer ≥ 1, got 0\n"


def test_start_on_a_busy_port_exits_1_with_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"port": port, "dbPath": str(tmp_path / "r.sqlite")}))
        SqliteStore(tmp_path / "r.sqlite").close()  # else start says first that it made it
        code, _, err = run_cli("start", "-c", str(config))
    assert code == 1
    assert err == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_start_on_a_file_that_is_not_a_database(run_cli: RunCli, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    db.write_text("this is not sqlite\n" * 100)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"dbPath": str(db)}))
    code, _, err = run_cli("start", "-c", str(config))
    assert code == 1
    assert err.startswith(f"error: {db} is not a usable SQLite database")
    assert db.read_text() == "this is not sqlite\n" * 100  # left untouched


def test_start_with_a_log_file_it_cannot_open(run_cli: RunCli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"log": {"file": str(blocker / "runner.log")}}))
    code, _, err = run_cli("start", "-c", str(config))
    assert code == 1
    assert err.startswith(f"error: cannot open log file {blocker / 'runner.log'}: ")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
