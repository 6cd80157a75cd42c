"""The newest runs of recently read jobs, kept as JSON fragments, so GET /jobs/:id/runs after a
write re-reads the runs that changed rather than the job's whole page
(`RunStore.refresh_runs_list`).

The backend keeps a change log in the database itself, moved by triggers (SQLite:
`runs_changes`), so runs written by any process are seen. A read that finds the log where it
left it answers from the fragments; otherwise it reads the log past its mark, re-reads the
changed runs of the jobs it holds (one statement) and puts them in place. Reading a page
afresh after another process's write costs some 50 page reads (the runs of one job lie
scattered through the table, and SQLite empties a connection's page cache when another one
commits); the log and one changed run, a handful.

One view belongs to one reader at a time (the API keeps one and uses it from the store's
probe thread only): it is not locked.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_OPEN = b'{"runs":['
_CLOSE = b"]}"


@dataclass
class _JobRuns:
    # The job's newest runs, newest first: ids negated (ascending, for bisect) and fragments.
    keys: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    # The job has no runs older than those held.
    complete: bool = False
    size: int = 0

    def upsert(self, run_id: int, piece: bytes, depth: int) -> None:
        key = -run_id
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            self.size += len(piece) - len(self.pieces[at])
            self.pieces[at] = piece
            return
        if at == len(self.keys) and not self.complete:
            return  # older than every run held, and older ones exist: not on these pages
        self.keys.insert(at, key)
        self.pieces.insert(at, piece)
        self.size += len(piece)
        if len(self.keys) > depth:
            self.keys.pop()
            self.size -= len(self.pieces.pop())
            self.complete = False

    def remove(self, run_id: int) -> None:
        key = -run_id
        at = bisect.bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            del self.keys[at]
            self.size -= len(self.pieces.pop(at))


@dataclass
class RunsListView:
    # The backend's position in its change log when the view was last brought up to date
    # (None: never read), and a cheaper token it may check first (SQLite: the reading
    # connection's data_version): while it is unchanged, so is everything.
    mark: object = None
    seen: object = None
    # The most runs kept per job (a page of up to this many is answered from the view) and
    # the bytes kept in all; the least recently read jobs go first.
    depth: int = 50
    max_bytes: int = 16 << 20
    jobs: OrderedDict[str, _JobRuns] = field(default_factory=OrderedDict)
    size: int = 0
    # How many times every job was dropped (the first read included); for tests and
    # benchmarks.
    resets: int = 0

    def reset(self, mark: object) -> None:
        self.jobs.clear()
        self.size = 0
        self.mark = mark
        self.resets += 1

    def body(self, job_id: str, limit: int) -> bytes | None:
        """`{"runs": [...]}` of the job's newest `limit` runs, or None when the view does not
        hold them (the caller reads them and calls `put`)."""
        entry = self.jobs.get(job_id)
        if entry is None or (len(entry.pieces) < limit and not entry.complete):
            return None
        self.jobs.move_to_end(job_id)
        return runs_body(entry.pieces[:limit])

    def put(self, job_id: str, rows: Iterable[tuple[int, bytes]]) -> None:
        """The job's newest runs, newest first, as read (at most `depth`: fewer means the job
        has no more)."""
        entry = _JobRuns()
        for run_id, piece in rows:
            entry.keys.append(-run_id)
            entry.pieces.append(piece)
            entry.size += len(piece)
        entry.complete = len(entry.keys) < self.depth
        self._drop(job_id)
        if entry.size > self.max_bytes // 4:
            return  # a few huge outputs: read each time rather than crowd out every other job
        self.jobs[job_id] = entry
        self.size += entry.size
        while self.size > self.max_bytes:
            self._drop(next(iter(self.jobs)))

    def held_runs(self, changes: Iterable[tuple[str, int]]) -> dict[str, set[int]]:
        """Of the changes (job id, run id) past the mark, those of jobs the view holds."""
        touched: dict[str, set[int]] = {}
        for job_id, run_id in changes:
            if job_id in self.jobs:
                touched.setdefault(job_id, set()).add(run_id)
        return touched

    def apply(
        self, touched: Mapping[str, set[int]], current: Mapping[int, tuple[str, bytes]]
    ) -> None:
        """Puts the changed runs in place: `current` holds each one that still exists, with
        its job and fragment as they are now; one missing (or now another job's) leaves."""
        for job_id, run_ids in touched.items():
            entry = self.jobs[job_id]
            before = entry.size
            for run_id in run_ids:
                now = current.get(run_id)
                if now is not None and now[0] == job_id:
                    entry.upsert(run_id, now[1], self.depth)
                else:
                    entry.remove(run_id)
            self.size += entry.size - before
        while self.size > self.max_bytes:
            self._drop(next(iter(self.jobs)))

    def _drop(self, job_id: str) -> None:
        entry = self.jobs.pop(job_id, None)
        if entry is not None:
            self.size -= entry.size


def runs_body(pieces: list[bytes]) -> bytes:
    """`{"runs": [...]}` of these fragments, as `RunStore.list_runs_json` writes it."""
    return _OPEN + b",".join(pieces) + _CLOSE
