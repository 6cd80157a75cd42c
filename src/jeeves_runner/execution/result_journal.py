"""Results the database would not take before the runner exited, kept in a file beside it.

The last resort of "a result the client saw is the result stored": when shutdown's final
moment comes and the database still refuses writes (locked by another process, disk full),
each unrecorded result is appended here as one JSON line (and fsynced); the next start writes
them to their runs (those still open) before it closes orphans, then removes the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jeeves_runner.models import RunResult, RunStatus
from jeeves_runner.store.protocols import Store


class ResultJournal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(
        self, run_id: int, result: RunResult, finished_at: str, started: tuple[str, str] | None
    ) -> None:
        line = {
            "run_id": run_id,
            "finished_at": finished_at,
            "started": list(started) if started is not None else None,
            "status": result.status.value,
            "duration_ms": result.duration_ms,
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "error": result.error,
            "tokens": result.tokens,
            "result_meta": result.result_meta,
        }
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def replay(self, store: Store) -> int:
        """Write every kept result whose run is still open; then remove the file. Lines that
        cannot be read are skipped (a crash mid-append leaves at most the last one torn)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        written = 0
        for raw in text.splitlines():
            try:
                entry: dict[str, Any] = json.loads(raw)
                run_id = int(entry["run_id"])
                result = RunResult(
                    status=RunStatus(entry["status"]),
                    duration_ms=int(entry["duration_ms"]),
                    exit_code=entry.get("exit_code"),
                    stdout=entry.get("stdout") or "",
                    stderr=entry.get("stderr") or "",
                    error=entry.get("error"),
                    tokens=entry.get("tokens"),
                    result_meta=entry.get("result_meta"),
                )
            except (ValueError, KeyError, TypeError):
                continue
            run = store.runs.get_run(run_id)
            if run is None or run["status"] not in ("pending", "running"):
                continue  # its write went through after all, or the run is gone
            started = entry.get("started")
            mark = (str(started[0]), str(started[1])) if started else None
            store.runs.finish_run(run_id, result, str(entry["finished_at"]), started=mark)
            written += 1
        self.path.unlink(missing_ok=True)
        return written
