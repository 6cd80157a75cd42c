"""GET /jobs's body kept piece by piece: one JSON fragment per job, re-read only when that job
changed (`JobStore.refresh_jobs_list`).

Each backend keeps a change feed in the database itself, moved by triggers, so changes made
by any process (the runner, the CLI, a job script, another node, a restore writing rows) are
seen: SQLite a counter (`jobs_feed`, `jobs.list_seq`), PostgreSQL each job's last writing
transaction compared with the snapshot of the previous read. A read that finds nothing
changed reuses the body as it is; otherwise it reads the changed jobs only and joins the
fragments again (a join of 1,000 fragments costs tens of microseconds, building them
milliseconds).

One view belongs to one reader at a time (the API keeps one and uses it from the store's
probe thread only): it is not locked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

_OPEN = b'{"jobs":['
_CLOSE = b"]}"


@dataclass
class JobsListView:
    # The backend's position in its change feed when the view was last brought up to date;
    # None: never read.
    mark: object = None
    # Job ids in the order the body lists them (the database's ORDER BY id).
    order: list[str] = field(default_factory=list)
    # Job id -> (the job's version in the feed, its JSON object as the body holds it).
    fragments: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    body: bytes | None = None
    # How many times a refresh had to read every job again (the first read included); for
    # tests and benchmarks.
    full_reads: int = 0

    def reset(self) -> None:
        self.mark, self.order, self.fragments, self.body = None, [], {}, None

    def load(self, mark: object, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Every job, in body order: (id, version, fragment)."""
        self.fragments = {job_id: (version, text) for job_id, version, text in rows}
        self.order = list(self.fragments)
        self.mark = mark
        self.full_reads += 1
        self.body = None

    def update(self, rows: Iterable[tuple[str, int, bytes]]) -> bool:
        """Jobs changed since the mark; True when one of them is new to the view (so the
        order must be read again)."""
        added = False
        for job_id, version, text in rows:
            if job_id not in self.fragments:
                added = True
            self.fragments[job_id] = (version, text)
        self.body = None
        return added

    def remove(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.fragments.pop(job_id, None)
        self.body = None

    def assemble(self) -> bytes:
        if self.body is None:
            fragments = self.fragments
            self.body = (
                _OPEN + b",".join([fragments[i][1] for i in self.order if i in fragments]) + _CLOSE
            )
        return self.body
