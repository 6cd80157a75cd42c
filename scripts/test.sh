#!/usr/bin/env bash
# Install everything into ./.venv and run the whole suite: format, lint, types, tests.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# The suite starts hundreds of Python processes (the CLI, runners, job scripts). Where
# PYTHONDONTWRITEBYTECODE is set (as on these machines) none of them writes bytecode, so each
# would compile the package again (a quarter of a CLI call's CPU): compile it once here.
.venv/bin/python -m compileall -q src
# The browser tests drive Debian's Chromium (Playwright never downloads a browser here).
# Without it they skip, or fail under CI=true; as root with apt, it is installed.
if [ ! -x "${JR_CHROMIUM:-/usr/bin/chromium}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== apt-get install chromium (browser tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "== ruff format"; .venv/bin/ruff format --check src tests benchmarks
echo "== ruff check";  .venv/bin/ruff check src tests benchmarks
echo "== mypy";        .venv/bin/mypy
echo "== pytest"
set +e
# Two workers (pytest-xdist), a test file to each in turn: the suite's 5-minute budget on
# 2 cores. JR_TEST_WORKERS=0 runs it in this one process.
# pytest keeps the modules it rewrites for its asserts (the 125 test modules, and every module
# of the plugins' packages: schemathesis, hypothesis, anyio; 480 in all) only where bytecode
# may be written: with PYTHONDONTWRITEBYTECODE set, the controller and each worker rewrote
# them all at every run (collection 6-9 s a process instead of 2-3 s). So it is unset here;
# src is compiled above, and the children the tests start find their bytecode as before.
PYTHONDONTWRITEBYTECODE= .venv/bin/python -m pytest -n "${JR_TEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
