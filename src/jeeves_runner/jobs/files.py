"""Jobs as files: a folder of TOML files (JSON accepted too), one job per file, the file name
(without its extension) is the job's id. Paths inside a file (`script`, `cwd`) are read
relative to the file's folder. Every file passes the same rules as `add-job` and the API.

Reading is pure apart from the file reads and the checks the rules make (a script exists, a
folder is one): time comes in as `now`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from jeeves_runner.jobs.rules import JobRuleError, build_job, check_job_id
from jeeves_runner.models import JOB_POLICY_FIELDS, Job

SUFFIXES = (".toml", ".json")

# What a file may hold, with the API's field names.
FILE_KEYS = (
    "name",
    "schedule",
    "script",
    "command",
    "type",
    "description",
    "enabled",
    "timeout_ms",
    "overlap_policy",
    "on_failure",
    "on_success",
    "args",
    "env",
    "cwd",
    "timezone",
    "tags",
    "run_on",
    *JOB_POLICY_FIELDS,
)
_TEXT_KEYS = ("name", "schedule", "script", "type", "description", "overlap_policy",
              "on_failure", "on_success", "cwd", "timezone")  # fmt: skip
_OPTION_TO_KEY = {"timeout": "timeout_ms", "overlap": "overlap_policy"}
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True, slots=True)
class FileProblem:
    path: str
    line: int | None
    message: str
    job_id: str | None  # the id the file names, when its name is a valid one

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass(slots=True)
class FolderRead:
    jobs: dict[str, Job] = field(default_factory=dict)  # parsed: new or changed files
    unchanged: set[str] = field(default_factory=set)  # files as they were when applied
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def ids(self) -> set[str]:
        """Every job some file defines (parsed or unchanged)."""
        return set(self.jobs) | self.unchanged

    @property
    def broken_ids(self) -> set[str]:
        """Jobs whose file has an error: they stay as they are."""
        return {p.job_id for p in self.problems if p.job_id is not None}


def read_folder(
    folder: Path,
    now: datetime,
    known: dict[str, tuple[str | None, str | None]] | None = None,
) -> FolderRead:
    """Every job file of `folder`. `known` maps stored ids to (source, digest): a file whose
    text is what it was when its job was applied is not parsed again, only listed as
    unchanged (10,000 unchanged files are re-read in a fraction of the time)."""
    result = FolderRead()
    if not folder.is_dir():
        result.problems.append(FileProblem(str(folder), None, "is not a folder", None))
        return result
    known = known or {}
    folder = folder.resolve()  # once, not once per file
    # scandir: the entry's type comes with the listing, no stat per file; names sorted as
    # strings (sorting Path objects costs more than the rest of an unchanged folder).
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.name.lower().endswith(SUFFIXES) and e.is_file())
    seen: dict[str, Path] = {}
    for name in names:
        path = folder / name
        job_id = path.stem
        try:
            check_job_id(job_id)
        except JobRuleError as exc:
            result.problems.append(FileProblem(str(path), None, f"file name: {exc}", None))
            continue
        if job_id in seen:
            message = f"id: '{job_id}' is also defined by {seen[job_id].name}"
            result.problems.append(FileProblem(str(path), None, message, job_id))
            result.jobs.pop(job_id, None)
            result.unchanged.discard(job_id)
            continue
        seen[job_id] = path
        try:
            text = _read(path)
            digest = hashlib.sha256(text.encode()).hexdigest()
            if known.get(job_id) == (str(path), digest):
                result.unchanged.add(job_id)
                continue
            result.jobs[job_id] = replace(job_from_text(path, text, now), source_digest=digest)
        except JobFileError as exc:
            result.problems.append(FileProblem(str(path), exc.line, exc.message, job_id))
    return result


class JobFileError(Exception):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise JobFileError(f"cannot be read ({reason})") from None


def job_from_text(path: Path, text: str, now: datetime) -> Job:
    """The job `text` (the content of `path`, in a resolved folder) defines."""
    data = _parse(path, text)
    unknown = [key for key in data if key not in FILE_KEYS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, FILE_KEYS, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise JobFileError(f"{key}: unknown key{hint}", _line_of(text, key))
    for key in _TEXT_KEYS:
        if key in data and not isinstance(data[key], str):
            got = json.dumps(data[key], default=str)
            raise JobFileError(f"{key}: must be a string, got {got}", _line_of(text, key))
    if "schedule" not in data:
        raise JobFileError("schedule: is required")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise JobFileError("enabled: must be true or false", _line_of(text, "enabled"))
    timeout = data.get("timeout_ms")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)):
        raise JobFileError("timeout_ms: must be an integer", _line_of(text, "timeout_ms"))
    try:
        job = build_job(
            job_id=path.stem,
            name=data.get("name", path.stem),
            schedule=data["schedule"],
            script=data.get("script"),
            job_type=data.get("type", "script"),
            description=data.get("description"),
            timeout_ms=timeout,
            overlap=data.get("overlap_policy", "skip"),
            on_failure=data.get("on_failure"),
            on_success=data.get("on_success"),
            enabled=enabled,
            cwd=path.parent,
            now=now,
            command=data.get("command"),
            args=data.get("args", ()),
            env=data.get("env", {}),
            work_dir=data.get("cwd"),
            timezone=data.get("timezone"),
            tags=data.get("tags", ()),
            run_on=data.get("run_on", ()),
            policies={name: data[name] for name in JOB_POLICY_FIELDS if name in data},
        )
    except JobRuleError as exc:
        message = str(exc)
        key = message.split(":", 1)[0]
        key = _OPTION_TO_KEY.get(key, key)
        if key != message.split(":", 1)[0]:
            message = key + message[message.index(":") :]
        raise JobFileError(message, _line_of(text, key)) from None
    return replace(job, source=str(path))


def _parse(path: Path, text: str) -> dict[str, Any]:
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JobFileError(f"not valid JSON: {exc.msg}", exc.lineno) from None
        if not isinstance(data, dict):
            raise JobFileError("the file must hold a JSON object")
        return data
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POSITION.search(str(exc))
        message = _TOML_POSITION.sub("", str(exc)).strip()
        line = int(found.group(1)) if found else None
        raise JobFileError(f"not valid TOML: {message}", line) from None


def _line_of(text: str, key: str) -> int | None:
    """The line a key is set on (TOML `key =` or JSON `"key":`), for messages."""
    pattern = re.compile(rf'^\s*(?:"{re.escape(key)}"\s*:|{re.escape(key)}\s*=)')
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None
