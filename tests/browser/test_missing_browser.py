"""Without Chromium the browser tests skip with one line naming it, and under CI they fail:
a CI machine cannot pass without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def run_browser_test(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["JR_CHROMIUM"] = "/nonexistent/chromium"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            str(HERE / "test_dashboard.py"),
            "-k",
            "zone",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE.parent.parent,
    )


@pytest.mark.slow
@pytest.mark.parametrize("ci", [False, True])
def test_a_missing_chromium_skips_or_fails_under_ci(ci: bool) -> None:
    done = run_browser_test(ci)
    line = "browser tests need Chromium at /nonexistent/chromium (apt-get install chromium)"
    assert line in done.stdout
    if ci:
        assert done.returncode == 1
        assert "1 error" in done.stdout
    else:
        assert done.returncode == 0
        assert "1 skipped" in done.stdout
