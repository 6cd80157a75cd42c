"""Browser tests: a real headless Chromium (Debian's `chromium`, driven by Playwright for
Python through `executable_path`; no browser download) against the real runner in-process.

Where Chromium or Playwright is missing these tests skip with one line saying which; under
CI (`CI=true`) that is a failure instead, so a CI machine cannot pass without them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("JR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the Playwright Python package (pip install -e '.[test]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        message = f"browser tests need {missing}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def shots_dir() -> Path | None:
    """Where screenshots go: $JR_SCREENSHOTS (the README's come from there), else None: none
    is taken. Nothing checks them (they are pictures for the README), and the 27 full-page
    shots of a run (light, dark, phone) were about 9 s of the suite, written to a temp folder
    no one read."""
    wanted = os.environ.get("JR_SCREENSHOTS")
    if not wanted:
        return None
    folder = Path(wanted)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
