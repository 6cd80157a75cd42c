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
    # Job ids in the order the body lists them (the database's ORDER BY id), and each one's
    # version in the feed and JSON object, side by side; `index` finds a job's place.
    order: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    # The sum of `versions`, kept as they change (what SQLite checks its view against).
    total: int = 0
    body: bytes | None = None
    # The body before this one, released only once its successor is built: freed after
    # the new one was allocated, its memory is not at the top of the heap and is reused by
    # the next body instead of going back to the kernel; freed before, the allocator trims
    # it and every new body page-faults its ~400 KB in again (measured: 0.73 ms against
    # 0.14 ms to join 1,000 jobs).
    _released: bytes | None = field(default=None, repr=False)
    # Positions updated in place since the lists were last set (by `update`), in order; a
    # reader of the pieces that keeps something per job reads the new ones past its own
    # count. `epoch` moves whenever the lists are set again (every position may have moved).
    edited: list[int] = field(default_factory=list)
    epoch: int = 0
    # PostgreSQL: when the feed last made its full pass (`time.monotonic()`; None: never),
    # which also finds rows written with triggers disabled; between passes a refresh reads
    # only the jobs its index names. At most this long between passes.
    swept_at: float | None = None
    sweep_every_s: float = 1.0
    # The feed's position at that pass: the next pass reads every job changed since it (the
    # refreshes between moved `mark` past rows that only a pass can see).
    swept_mark: object = None
    # How many times a refresh had to read every job again (the first read included); for
    # tests and benchmarks.
    full_reads: int = 0
    # A list whose body is larger is not kept (pieces and body would hold about three times
    # its size): each refresh then reads every job, as before there was a view. 32 MiB is
    # some 80,000 jobs.
    max_bytes: int = 32 << 20

    def load(self, mark: object, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Every job, in body order: (id, version, fragment)."""
        self._set(list(rows))
        self.mark = mark
        self.full_reads += 1

    def update(self, rows: Iterable[tuple[str, int, bytes]]) -> list[tuple[str, int, bytes]]:
        """Jobs changed since the mark, put in their places; returns those new to the view
        (the caller reads the order again and passes them to `reorder`)."""
        added = []
        index, versions, pieces = self.index, self.versions, self.pieces
        for row in rows:
            at = index.get(row[0])
            if at is None:
                added.append(row)
                continue
            self.total += row[1] - versions[at]
            versions[at], pieces[at] = row[1], row[2]
            self.edited.append(at)
            self._drop_body()
        if len(self.edited) > 2 * len(pieces) + 64:  # bounded: readers start over instead
            self.edited = []
            self.epoch += 1
        return added

    def reorder(self, order: list[str], rows: Iterable[tuple[str, int, bytes]]) -> None:
        """The jobs now listed, in order: those the view holds keep their pieces, `rows` are
        the ones it does not (a job in `order` found in neither is left out)."""
        known = {row[0]: row for row in rows}
        for job_id, at in self.index.items():
            known.setdefault(job_id, (job_id, self.versions[at], self.pieces[at]))
        self._set([known[job_id] for job_id in order if job_id in known])

    def remove(self, job_ids: Iterable[str]) -> None:
        gone = set(job_ids) & self.index.keys()
        if gone:
            self.reorder([job_id for job_id in self.order if job_id not in gone], ())

    def held(self) -> int:
        return len(self.order)

    def assemble(self) -> bytes:
        body = self._assemble()
        if len(body) > self.max_bytes:
            self._set([])
            self.mark, self.body, self._released = None, None, None
        return body

    def _assemble(self) -> bytes:
        if self.body is None:
            # One join, so one large allocation: the brackets go on the end pieces.
            parts = self.pieces.copy()
            if parts:
                parts[0] = _OPEN + parts[0]
                parts[-1] += _CLOSE
                self.body = b",".join(parts)
            else:
                self.body = _OPEN + _CLOSE
            self._released = None
        return self.body

    def _drop_body(self) -> None:
        if self.body is not None:
            self._released = self.body
            self.body = None

    def _set(self, rows: list[tuple[str, int, bytes]]) -> None:
        self.order = [row[0] for row in rows]
        self.versions = [row[1] for row in rows]
        self.pieces = [row[2] for row in rows]
        self.index = {job_id: at for at, job_id in enumerate(self.order)}
        self.total = sum(self.versions)
        self.edited = []
        self.epoch += 1
        self._drop_body()
