"""Run logs: each run's output as chunks of lines, in `seq` order, deleted with the run."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Sequence

from jeeves_runner.models import LogChunk, LogStream, RunLogWrite
from jeeves_runner.store.sqlite.database import Database

_PUT_CHUNK = """
INSERT OR REPLACE INTO run_logs (run_id, seq, stream, at, data) VALUES (?, ?, ?, ?, ?)
"""
_DROP_CHUNKS = "DELETE FROM run_logs WHERE run_id = ? AND seq >= ? AND seq < ?"
# Tails of a run in flight: what it has printed so far. Never over a finished run's result.
_SET_TAILS = "UPDATE runs SET stdout = ?, stderr = ? WHERE id = ? AND status = 'running'"
# Streams are chosen with a JSON array (`["stdout", "runner"]`), so there is one statement
# whatever the choice; `after` and `before` bound the seq range (half-open).
_READ = """
SELECT seq, stream, at, data FROM run_logs
WHERE run_id = ? AND seq > ? AND seq < ? AND stream IN (SELECT value FROM json_each(?))
ORDER BY seq
"""
_READ_NEWEST_FIRST = """
SELECT seq, stream, at, data FROM run_logs
WHERE run_id = ? AND stream IN (SELECT value FROM json_each(?))
ORDER BY seq DESC
"""
_ALL_STREAMS = '["stdout", "stderr", "runner"]'
SEQ_END = (1 << 63) - 1


def write_log(conn: sqlite3.Connection, write: RunLogWrite) -> None:
    """One run's part of a flush, inside the caller's transaction."""
    if write.drop is not None:
        conn.execute(_DROP_CHUNKS, (write.run_id, write.drop[0], write.drop[1]))
    if write.chunks:
        conn.executemany(
            _PUT_CHUNK,
            ((write.run_id, c.seq, c.stream.value, c.at, c.data) for c in write.chunks),
        )
    if write.tails is not None:
        conn.execute(_SET_TAILS, (write.tails[0], write.tails[1], write.run_id))


def _streams_json(streams: Collection[LogStream] | None) -> str:
    if streams is None:
        return _ALL_STREAMS
    return "[" + ", ".join(f'"{s.value}"' for s in streams) + "]"


def _chunks(rows: Iterable[sqlite3.Row]) -> list[LogChunk]:
    return [
        LogChunk(seq=int(r[0]), stream=LogStream(r[1]), at=str(r[2]), data=bytes(r[3]))
        for r in rows
    ]


class SqliteRunLogStore:
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
        params = (run_id, after_seq, before, _streams_json(streams))
        return _chunks(self._db.connection().execute(_READ, params))

    def read_log_tail(
        self, run_id: int, lines: int, *, streams: Collection[LogStream] | None = None
    ) -> list[LogChunk]:
        """The newest chunks that hold at least `lines` lines (every chunk when the log has
        fewer), in order. The caller keeps the last `lines` of them."""
        cur = self._db.connection().execute(_READ_NEWEST_FIRST, (run_id, _streams_json(streams)))
        newest: list[LogChunk] = []
        counted = 0
        while counted < lines:
            row = cur.fetchone()
            if row is None:
                break
            chunk = _chunks([row])[0]
            newest.append(chunk)
            counted += chunk.data.count(b"\n")
        cur.close()
        newest.reverse()
        return newest
