"""The real runner in-process: `Runner.start()` builds the whole graph and serves the API on
127.0.0.1 exactly as `jeeves-runner start` does, on its own loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from jeeves_runner.config import Config
from jeeves_runner.execution import event_loop
from jeeves_runner.models import Job, format_instant
from jeeves_runner.runner import Runner

SCRIPTS = Path(__file__).resolve().parent / "scripts"
NEVER_DURING_TESTS = "0 0 1 1 *"


class LiveRunner:
    """A Runner on its own loop in a thread; the test talks to it over HTTP."""

    def __init__(self, folder: Path, **settings: Any) -> None:
        # SQLite in the folder unless the settings name a PostgreSQL dbUrl.
        database = {} if "dbUrl" in settings else {"dbPath": str(folder / "r.sqlite")}
        config = Config.model_validate({**database, **settings}).model_copy(
            update={"port": 0}
        )  # an ephemeral port: the config file can't ask for 0
        self.runner = Runner(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.runner.start()
            self._ready.set()
            await self._stop.wait()
            await self.runner.stop()

        try:
            event_loop.run(main())
        except BaseException as exc:  # surfaced to the test by start()
            self._error = exc
            self._ready.set()

    def start(self) -> LiveRunner:
        self._thread.start()
        assert self._ready.wait(30), "runner did not start"
        if self._error is not None:
            raise self._error
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runner.port}"

    def add_job(self, job_id: str, script: str, **fields: Any) -> None:
        """A job whose script is `script` in tests/scripts (or an absolute path, or prompt
        text for a session job). Added behind the runner's back, as `add-job` would."""
        job = Job(
            id=job_id,
            name=fields.pop("name", job_id.title()),
            schedule=fields.pop("schedule", NEVER_DURING_TESTS),
            script=script if "/" in script or " " in script else str(SCRIPTS / script),
            **fields,
        )
        self.runner.sync_store.jobs.add_job(job, format_instant(self.runner.clock.now()))

    def begin_stop(self) -> None:
        assert self.loop is not None and self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)

    def join(self) -> None:
        self.begin_stop()
        self._thread.join(60)
        assert not self._thread.is_alive()
