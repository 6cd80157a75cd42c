"""Run logs (PostgreSQL): each run's output as chunks of lines, in `seq` order, deleted with
the run (migration 0004). `data` is BYTEA: whatever the child printed, NUL included."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import psycopg

from jeeves_runner.models import LogChunk, LogStream, RunLogWrite
from jeeves_runner.store.postgres.database import Database, output_text

_PUT_CHUNK = """
INSERT INTO run_logs (run_id, seq, stream, at, data) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (run_id, seq) DO UPDATE
SET stream = excluded.stream, at = excluded.at, data = excluded.data
"""
_DROP_CHUNKS = "DELETE FROM run_logs WHERE run_id = %s AND seq >= %s AND seq < %s"
# Tails of a run in flight: what it has printed so far. Never over a finished run's result.
_SET_TAILS = "UPDATE runs SET stdout = %s, stderr = %s WHERE id = %s AND status = 'running'"
# `after` and `before` bound the seq range (half-open); streams are chosen with an array.
_READ = """
SELECT seq, stream, at, data FROM run_logs
WHERE run_id = %s AND seq > %s AND seq < %s AND stream = ANY(%s::text[])
ORDER BY seq
"""
# The tail is read backwards a page at a time (`seq < %s`), pages growing: most tails need
# one short page, and a log of long chunks is not read whole.
_READ_NEWEST_FIRST = """
SELECT seq, stream, at, data FROM run_logs
WHERE run_id = %s AND seq < %s AND stream = ANY(%s::text[])
ORDER BY seq DESC LIMIT %s
"""
_FIRST_PAGE = 16
_LAST_PAGE = 1024
_ALL_STREAMS = [s.value for s in LogStream]
SEQ_END = (1 << 63) - 1


def write_log(conn: psycopg.Connection[Any], write: RunLogWrite) -> None:
    """One run's part of a flush, inside the caller's transaction."""
    if write.drop is not None:
        conn.execute(_DROP_CHUNKS, (write.run_id, write.drop[0], write.drop[1]))
    if write.chunks:
        with conn.cursor() as cur:
            # One pipeline for every chunk, not a round trip each.
            cur.executemany(
                _PUT_CHUNK,
                [(write.run_id, c.seq, c.stream.value, c.at, c.data) for c in write.chunks],
            )
    if write.tails is not None:
        stdout, stderr = write.tails
        conn.execute(_SET_TAILS, (output_text(stdout), output_text(stderr), write.run_id))


def _streams(streams: Collection[LogStream] | None) -> list[str]:
    return _ALL_STREAMS if streams is None else [s.value for s in streams]


def _chunks(rows: Iterable[tuple[Any, ...]]) -> list[LogChunk]:
    return [
        LogChunk(seq=int(r[0]), stream=LogStream(r[1]), at=str(r[2]), data=bytes(r[3]))
        for r in rows
    ]


class PostgresRunLogStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def write_logs(self, writes: Sequence[RunLogWrite]) -> None:
        """Every run's new chunks, deletions and tails of one flush: one commit."""
        if not writes:
            return
        with self._db.transaction() as conn:
            for write in writes:
                write_log(conn, write)

    def read_log(
        self,
        run_id: int,
        *,
        streams: Collection[LogStream] | None = None,
        after_seq: int = -1,
        before_seq: int | None = None,
    ) -> list[LogChunk]:
        """A run's chunks in order, of the given streams (all when None), with
        after_seq < seq < before_seq."""
        before = SEQ_END if before_seq is None else before_seq
        with self._db.connection() as conn:
            rows = conn.execute(_READ, (run_id, after_seq, before, _streams(streams)))
            return _chunks(rows)

    def read_log_tail(
        self, run_id: int, lines: int, *, streams: Collection[LogStream] | None = None
    ) -> list[LogChunk]:
        """The newest chunks that hold at least `lines` lines (every chunk when the log has
        fewer), in order. The caller keeps the last `lines` of them."""
        chosen = _streams(streams)
        newest: list[LogChunk] = []
        counted = 0
        below = SEQ_END
        page = _FIRST_PAGE
        with self._db.connection() as conn:
            while counted < lines:
                rows = conn.execute(_READ_NEWEST_FIRST, (run_id, below, chosen, page)).fetchall()
                for chunk in _chunks(rows):
                    newest.append(chunk)
                    counted += chunk.data.count(b"\n")
                    if counted >= lines:
                        break
                if len(rows) < page:
                    break
                below = int(rows[-1][0])
                page = min(page * 2, _LAST_PAGE)
        newest.reverse()
        return newest
