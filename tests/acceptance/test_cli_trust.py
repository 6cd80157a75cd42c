"""Issue 15's surprises, each answered as it should be, through the real CLI in a child
process: no silent database, `--replace` that keeps what it is not told, negative numbers and
options after `--`, `list-queues` as a table, `batch`, and verbs that import only what they
use."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.cli.common import arrange_args
from jeeves_runner.cli.data_commands import state_set
from jeeves_runner.store import SqliteStore

RunCli = Callable[..., Any]  # tests/conftest.py: (*args, cwd=, env=, input=) -> (code, out, err)

NO_DB = "no database at {} (create it with 'jeeves-runner init' or start the runner)"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runner.sqlite"
    SqliteStore(path).close()
    return path


def one_json(result: Any) -> Any:
    code, out, err = result
    assert (code, err) == (0, ""), err
    (line,) = out.splitlines()
    return json.loads(line)


# -- no silent database ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["state", "get", "ns", "k"],
        ["state", "set", "ns", "k", "v"],
        ["queue", "enqueue", "q", "{}"],
        ["queue", "dequeue", "q"],
        ["list-queues"],
        ["list-jobs"],
        ["batch"],
    ],
)
def test_a_missing_default_database_is_refused_and_not_made(
    run_cli: RunCli, tmp_path: Path, command: list[str]
) -> None:
    code, out, err = run_cli(*command, cwd=tmp_path, env={"JR_DB_PATH": ""})
    assert (code, out) == (1, "")
    assert err == f"error: {NO_DB.format(tmp_path / 'data' / 'runner.sqlite')}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_db_path_is_refused_and_not_made(run_cli: RunCli, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "x.sqlite"
    code, out, err = run_cli("state", "get", "ns", "k", "--db", str(missing))
    assert (code, out, err) == (1, "", f"error: {NO_DB.format(missing)}\n")
    assert not missing.parent.exists()


def test_add_queue_creates_the_database_and_says_so_once(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "new" / "runner.sqlite"
    code, out, err = run_cli("add-queue", "--id", "q", "--db", str(path))
    assert (code, err) == (0, f"Created database {path}\n")
    assert json.loads(out)["name"] == "q"  # the name defaults to the id
    code, _, err = run_cli("add-queue", "--id", "r", "--db", str(path))
    assert (code, err) == (0, "")


@pytest.mark.slow
def test_start_says_it_creates_the_database(tmp_path: Path) -> None:
    from acceptance.runner_process import RunnerProcess

    runner = RunnerProcess(tmp_path).start()
    try:
        assert runner.log().startswith(f"Created database {runner.db_path}\n")
    finally:
        runner.stop()


# -- add-queue --replace ---------------------------------------------------------------------


def test_replace_changes_only_what_it_is_told(run_cli: RunCli, db: Path) -> None:
    flags = ["--db", str(db)]
    one_json(
        run_cli(
            "add-queue", "--id", "urls", "--name", "URLs", "--dedup-expr", "$.url",
            "--max-attempts", "2", "--dedup-scope", "all", "--retention-days", "3", *flags,
        )
    )  # fmt: skip
    replaced = one_json(
        run_cli(
            "add-queue", "--replace", "--id", "urls", "--name", "URLs v2", "--lease", "3000",
            *flags,
        )
    )  # fmt: skip
    replaced.pop("created_at")
    assert replaced == {
        "id": "urls",
        "name": "URLs v2",
        "description": None,
        "dedup_expr": "$.url",
        "dedup_scope": "all",
        "max_attempts": 2,
        "retention_days": 3,
        "lease_ms": 3000,
    }
    payload = '{"url": "https://a"}'
    assert one_json(run_cli("queue", "enqueue", "urls", payload, *flags))["id"] == 1
    assert one_json(run_cli("queue", "enqueue", "urls", payload, *flags)) == {
        "queue": "urls",
        "id": -1,
        "duplicate": True,
    }
    # An empty expression is how to say "no dedup" any more.
    cleared = one_json(
        run_cli("add-queue", "--replace", "--id", "urls", "--dedup-expr", "", *flags)
    )
    assert (cleared["dedup_expr"], cleared["max_attempts"]) == (None, 2)


def test_replace_of_a_missing_queue_defines_it_with_the_defaults(run_cli: RunCli, db: Path) -> None:
    made = one_json(run_cli("add-queue", "--replace", "--id", "fresh", "--db", str(db)))
    made.pop("created_at")
    assert made == {
        "id": "fresh",
        "name": "fresh",
        "description": None,
        "dedup_expr": None,
        "dedup_scope": "pending",
        "max_attempts": 1,
        "retention_days": 7,
        "lease_ms": 300000,
    }


# -- arguments -------------------------------------------------------------------------------


def test_options_after_double_dash_and_negative_values(
    run_cli: RunCli, db: Path, tmp_path: Path
) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"dbPath": str(db)}), "utf-8")
    assert one_json(run_cli("state", "set", "ns", "delta", "--", "-5", "-c", str(config))) == {
        "namespace": "ns",
        "key": "delta",
        "value": "-5",
        "expires_at": None,
    }
    flags = ["--db", str(db)]
    assert one_json(run_cli("state", "set", "ns", "delta", "-6", *flags))["value"] == "-6"
    assert one_json(run_cli("state", "set", "ns", "f", "-0.5e3", *flags))["value"] == "-0.5e3"
    assert one_json(run_cli("queue", "enqueue", "urls", "-1", *flags))["id"] == 1
    [item] = one_json(run_cli("queue", "dequeue", "urls", *flags))["items"]
    assert item["payload"] == -1
    # After `--`, a word that looks like an option fills an open argument.
    assert one_json(run_cli("state", "set", "ns", "k", "--", "--ttl", *flags))["value"] == "--ttl"
    # An unknown option is still named.
    code, out, err = run_cli("state", "get", "ns", "k", "--bogus", *flags)
    assert (code, out, err) == (2, "", "error: No such option '--bogus'.\n")


def test_arrange_args_orders_words_as_click_reads_them() -> None:
    import click

    ctx = click.Context(state_set)
    arrange = lambda *words: arrange_args(state_set, ctx, list(words))  # noqa: E731
    assert arrange("ns", "k", "-5", "--ttl", "1h") == ["--ttl", "1h", "--", "ns", "k", "-5"]
    assert arrange("ns", "k", "--", "-5", "-c", "x") == ["-c", "x", "--", "ns", "k", "-5"]
    assert arrange("--ttl=1h", "ns", "k", "v") == ["--ttl=1h", "--", "ns", "k", "v"]
    assert arrange("--db", "-x.sqlite", "ns") == ["--db", "-x.sqlite", "--", "ns"]


# -- list-queues -----------------------------------------------------------------------------


def test_list_queues_is_a_table_and_json_on_request(run_cli: RunCli, db: Path) -> None:
    flags = ["--db", str(db)]
    assert run_cli("list-queues", *flags) == (0, "No queues.\n", "")
    one_json(run_cli("add-queue", "--id", "mail", "--name", "Mail to sort", *flags))
    one_json(
        run_cli("add-queue", "--id", "u", "--dedup-expr", "$.url", "--max-attempts", "3", *flags)
    )
    one_json(run_cli("queue", "enqueue", "u", '{"url": "x"}', *flags))
    assert run_cli("list-queues", *flags) == (
        0,
        "id    name          pending  processing  failed  max_attempts  dedup_expr\n"
        "mail  Mail to sort  0        0           0       1             -\n"
        "u     u             1        0           0       3             $.url\n",
        "",
    )
    queues = one_json(run_cli("list-queues", "--json", *flags))["queues"]
    assert [(q["id"], q["pending"], q["max_attempts"]) for q in queues] == [
        ("mail", 0, 1),
        ("u", 1, 3),
    ]


# -- batch -----------------------------------------------------------------------------------


def test_batch_answers_each_line_and_goes_on_after_errors(run_cli: RunCli, db: Path) -> None:
    lines = [
        {"cmd": "state set", "namespace": "ns", "key": "k", "value": "v"},
        {"cmd": "state get", "namespace": "ns", "key": "k"},
        {"cmd": "state items set", "namespace": "ns", "key": "seen", "item_key": "a"},
        {"cmd": "state items has", "namespace": "ns", "key": "seen", "item_key": "a"},
        {"cmd": "queue enqueue", "name": "q", "payload": {"n": 1}, "priority": -2},
        {"cmd": "queue dequeue", "name": "q", "count": 5},
        {"cmd": "queue done", "id": 1},
        {"cmd": "state set", "namespace": "ns", "key": "k", "value": "v", "ttl": "1y"},
        {"cmd": "state get", "namespace": "ns"},
        {"cmd": "state get", "namespace": "ns", "key": 3},
        {"cmd": "state get", "namespace": "ns", "key": "k", "raw": True},
        {"cmd": "queue done", "id": True},
        {"cmd": "drop tables"},
        ["state", "get"],
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n\n{not json\n"
    code, out, err = run_cli("batch", "--db", str(db), input=text)
    assert (code, err) == (0, "")
    answers = [json.loads(line) for line in out.splitlines()]
    assert answers[:4] == [
        {"namespace": "ns", "key": "k", "value": "v", "expires_at": None},
        {"namespace": "ns", "key": "k", "value": "v", "expires_at": None},
        {"namespace": "ns", "key": "seen", "item_key": "a", "value": None},
        {"namespace": "ns", "key": "seen", "item_key": "a", "exists": True},
    ]
    assert answers[4] == {"queue": "q", "id": 1, "duplicate": False}
    assert [(i["id"], i["payload"], i["priority"]) for i in answers[5]["items"]] == [
        (1, {"n": 1}, -2)
    ]
    assert answers[6] == {"id": 1, "status": "done"}
    assert answers[7:] == [
        {
            "error": "ttl '1y' is not valid: use a whole number above 0 followed by s, m, h or d "
            "(e.g. 90s, 60m, 24h, 30d)"
        },
        {"error": "state get: missing field 'key'"},
        {"error": "state get: key must be a string"},
        {"error": "state get: unknown field 'raw'; fields: namespace, key"},
        {"error": "queue done: id must be an integer"},
        {
            "error": 'unknown cmd "drop tables"; one of: state get, state set, state delete, '
            "state items list, state items get, state items has, state items set, "
            "state items delete, state items count, state items prune, queue enqueue, "
            "queue dequeue, queue done, queue fail"
        },
        {"error": 'a command must be a JSON object such as {"cmd": "state get", ...}'},
        {"error": "not valid JSON: Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1)"},
    ]  # fmt: skip


def test_batch_answers_before_its_input_ends(db: Path) -> None:
    """A coprocess: each answer arrives while stdin is still open."""
    child = subprocess.Popen(
        [sys.executable, "-m", "jeeves_runner", "batch", "--db", str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        for n in range(3):
            request = {"cmd": "state set", "namespace": "ns", "key": "n", "value": str(n)}
            child.stdin.write(json.dumps(request) + "\n")
            child.stdin.flush()
            assert json.loads(child.stdout.readline())["value"] == str(n)
    finally:
        child.stdin.close()
        code = child.wait(timeout=30)
        child.stdout.close()
    assert code == 0


# -- imports ---------------------------------------------------------------------------------

_LOADED = """
import sys
from jeeves_runner.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = {"httpx", "pydantic", "jsonpath", "fastapi", "uvicorn", "starlette"}
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)), file=sys.stderr)
"""


def heavy_modules(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + _LOADED, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    loaded: list[str] = json.loads(done.stderr.splitlines()[-1])
    return loaded


def test_state_and_queue_verbs_import_no_http_or_validation_libraries(db: Path) -> None:
    flags = ["--db", str(db)]
    assert heavy_modules("state", "get", "ns", "k", *flags) == []
    assert heavy_modules("state", "set", "ns", "k", "v", "--ttl", "1h", *flags) == []
    assert heavy_modules("state", "items", "set", "ns", "k", "i", *flags) == []
    assert heavy_modules("queue", "enqueue", "plain", "{}", *flags) == []
    assert heavy_modules("queue", "dequeue", "plain", *flags) == []
    assert heavy_modules("add-queue", "--id", "d", "--dedup-expr", "$.url", *flags) == ["jsonpath"]
    assert heavy_modules("queue", "enqueue", "d", '{"url": "x"}', *flags) == ["jsonpath"]


@pytest.mark.slow
def test_a_missing_shebang_interpreter_is_named_in_the_run(run_cli: RunCli, tmp_path: Path) -> None:
    from acceptance.runner_process import RunnerProcess

    script = tmp_path / "badshebang"
    script.write_text("#!/nonexistent/interp\necho never\n")
    script.chmod(0o755)
    runner = RunnerProcess(tmp_path, reconcileIntervalMs=0)
    runner.add_job("bad", "0 0 1 1 *", str(script))
    runner.start()
    try:
        code, out, err = run_cli("trigger", "-i", "bad", "-c", str(runner.config_path))
    finally:
        runner.stop()
    missing = f"Interpreter /nonexistent/interp of {script} not found"
    # Followed live: the runner's own line about the run comes first, on stderr.
    assert (code, err) == (1, f"{missing}\nerror: the run of 'bad' ended with status error\n")
    assert out.splitlines()[1] == f"Error: {missing}"
