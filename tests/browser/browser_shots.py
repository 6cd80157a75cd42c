"""Screenshots of a dashboard page for the README (see conftest.py's `shots_dir`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def screenshots(
    browser: Any,
    base_url: str,
    shots: Path | None,
    path: str,
    name: str,
    session: str | None = None,
) -> None:
    """Light, dark and phone-width screenshots of one page, in one context (logged in with
    `session`, a token's secret, when given); none when `shots` is None ($JR_SCREENSHOTS
    unset)."""
    if shots is None:
        return
    context = browser.new_context(base_url=base_url)
    if session is not None:
        context.add_cookies([{"name": "jr_session", "value": session, "url": base_url}])
    shot_page = context.new_page()
    try:
        for scheme, width, suffix in (
            ("light", 1280, ""),
            ("dark", 1280, "-dark"),
            ("light", 390, "-phone"),
        ):
            shot_page.emulate_media(color_scheme=scheme)
            shot_page.set_viewport_size({"width": width, "height": 800})
            shot_page.goto(path, wait_until="load")
            shot_page.screenshot(path=str(shots / f"{name}{suffix}.png"), full_page=True)
    finally:
        context.close()
