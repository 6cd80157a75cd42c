"""The README's shell commands, run as written in an empty folder with the installed CLI.

`console` blocks are transcripts: each `$ command` runs (stdout and stderr together) and must
print the lines under it; `...` in an expected line stands for any text. Commands in `bash`
blocks run too, except the few listed in NOT_RUN_HERE with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent

NOT_RUN_HERE = {
    "bash scripts/start.sh      # venv + install + example jobs + start the runner on defaults": (
        "makes a venv and runs the runner until stopped (tests/acceptance/test_runner_lifecycle)"
    ),
    "curl -s localhost:1937/jobs            # every job with its last status and run": (
        "needs the runner of start.sh on port 1937 (tests/api cover every route)"
    ),
    "curl -s localhost:1937/jobs/hello-python/runs?limit=3": "same",
    "bash scripts/test.sh       # venv + install with test extras + ruff + mypy + pytest": (
        "is this test suite"
    ),
    "jeeves-runner token create prometheus --scope read -c /etc/jeeves/config.json  # secret "
    "on stdout": "a config in /etc (tests/acceptance/test_access_cli covers token create)",
    "jeeves-runner token create deploy --scope admin -c /etc/jeeves/config.json": "same",
    "export JEEVES_RUNNER_TOKEN=jr_...   # for status / trigger": (
        "a placeholder secret (test_access_cli sends a real one)"
    ),
    'curl -H "Authorization: Bearer $JEEVES_RUNNER_TOKEN" http://127.0.0.1:1937/audit?limit=5': (
        "needs a runner on port 1937 (tests/api/test_access_api covers /audit)"
    ),
}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [
        m.group(2) for m in _FENCE.finditer(README.read_text("utf-8")) if m.group(1) == language
    ]


def transcript_steps() -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for block in blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return steps


def matches(expected: str, got: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got) is not None


def shell(command: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JR_DB_PATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONIOENCODING"] = "utf-8"
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    return done.stdout


def test_every_console_transcript_prints_what_it_shows(tmp_path: Path) -> None:
    steps = transcript_steps()
    assert len(steps) >= 15
    for command, expected in steps:
        got = shell(command, tmp_path).splitlines()
        assert len(got) == len(expected), (command, got)
        for want, line in zip(expected, got, strict=True):
            assert matches(want, line), (command, want, line)


def test_the_bash_coprocess_example_answers(tmp_path: Path) -> None:
    shell("jeeves-runner init", tmp_path)
    (coproc,) = [b for b in blocks("bash") if "coproc" in b]
    out = shell(coproc + 'echo "$answer"\n', tmp_path)
    assert json.loads(out) == {
        "namespace": "mail",
        "key": "seen",
        "item_key": "msg-1042",
        "exists": False,
    }


def test_every_other_shell_command_is_accounted_for() -> None:
    """A command added to a bash/sh block must be run by a test above, or listed here."""
    commands = [
        line.strip()
        for language in ("bash", "sh", "shell")
        for block in blocks(language)
        if "coproc" not in block
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert sorted(commands) == sorted(NOT_RUN_HERE)


@pytest.mark.parametrize("name", ["docs/api.md", "docs/api-reference.md"])
def test_the_documents_the_readme_links_exist(name: str) -> None:
    assert f"]({name})" in README.read_text("utf-8")
    assert (README.parent / name).is_file()
