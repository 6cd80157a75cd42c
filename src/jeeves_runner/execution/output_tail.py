"""Bounded capture of a child's output: the last N lines, each capped in bytes.

Memory stays bounded whatever the child prints (a 1 GiB stream, a 1 MB line). Only the last
N lines of each chunk are split out (found by N backward searches from its end), so the cost
per chunk does not grow with how many short lines it holds, and `JR_RESULT:` lines are found
with one substring search per chunk.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable

RESULT_PREFIX = b"JR_RESULT:"
CUT_MARK = "…[cut]".encode()
# Where the last lines of a chunk are looked for first (100 lines of up to 160 bytes).
SUFFIX_GUESS_BYTES = 16 * 1024


def cut_line(line: bytes, cap: int) -> bytes:
    """`line` cut to at most `cap` bytes, never inside a UTF-8 character, then marked."""
    head = line[:cap]
    # Step back to the start of a character the cut split (a lead byte with too few of its
    # continuation bytes after it).
    for back in range(1, min(4, len(head)) + 1):
        byte = head[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for its lead
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if back < needed:
                head = head[:-back]
        break
    return head + CUT_MARK


class ResultFold:
    """`JR_RESULT:{"tokens": N, "meta": "..."}` lines, folded as they arrive: for each field
    the last valid value wins. Nothing of the lines is kept, so a child printing a million
    of them costs no memory. A line that cannot be used is reported to `on_bad` (the run's
    log gets a warning line), never silently ignored."""

    def __init__(self, on_bad: Callable[[str], None] | None = None) -> None:
        self.tokens: int | None = None
        self.meta: str | None = None
        self.lines = 0
        self.on_bad = on_bad

    def _bad(self, why: str) -> None:
        if self.on_bad is not None:
            self.on_bad(f"warning: a JR_RESULT: line was ignored: {why}")

    def add(self, line: bytes) -> None:
        self.lines += 1
        try:
            data = json.loads(line[len(RESULT_PREFIX) :])
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            self._bad(f"it is not valid JSON ({reason})")
            return
        if not isinstance(data, dict):
            self._bad('it is not a JSON object like {"tokens": 123, "meta": "..."}')
            return
        value = data.get("tokens")
        if isinstance(value, int) and not isinstance(value, bool):
            self.tokens = value
        elif value is not None:
            self._bad(f'"tokens" must be an integer, got {json.dumps(value)[:40]}')
        if "meta" in data and data["meta"] is not None:
            raw = data["meta"]
            self.meta = raw if isinstance(raw, str) else json.dumps(raw)


class OutputTail:
    def __init__(
        self, max_lines: int = 100, max_line_bytes: int = 4096, *, results: bool = True
    ) -> None:
        """`results`: fold the stream's `JR_RESULT:` lines (stdout's; on stderr they are
        plain output, and not searching for them saves a pass over every chunk)."""
        self.max_lines = max_lines
        self._results = results
        self.max_line_bytes = max_line_bytes
        self._lines: deque[bytes] = deque(maxlen=max_lines)
        self._partial = b""
        self._partial_cut = False  # the current line passed the cap; drop until newline
        self.result = ResultFold()
        self.total_bytes = 0

    def feed(self, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        first_nl = chunk.find(b"\n")
        if first_nl < 0:
            self._extend_partial(chunk)
            return
        self._extend_partial(chunk[: min(first_nl, self.max_line_bytes + 1)])
        self._complete(self._partial)
        self._partial = b""
        self._partial_cut = False
        start = first_nl + 1
        if self._results and chunk.find(RESULT_PREFIX, start) >= 0:
            for line in chunk[start:].split(b"\n")[:-1]:
                if line.startswith(RESULT_PREFIX):
                    self.result.add(line[: self.max_line_bytes])
        last_nl = chunk.rfind(b"\n")
        complete = self._last_lines(chunk, start, last_nl)
        if complete:
            cap = self.max_line_bytes
            # One pass in C over the lengths; the per-line loop only for the rare chunk that
            # holds a line to cut.
            if max(map(len, complete)) > cap:
                complete = [line if len(line) <= cap else cut_line(line, cap) for line in complete]
            self._lines.extend(complete)
        self._extend_partial(chunk[last_nl + 1 :])

    def _last_lines(self, chunk: bytes, start: int, last_nl: int) -> list[bytes]:
        """The last max_lines of the whole lines in chunk[start:last_nl + 1], without their
        newlines. Only they can survive in the tail, so the bytes before them are neither
        copied nor split: first a guess at the few kilobytes that hold them, else a step
        back over newlines (max_lines short searches)."""
        if last_nl < start:
            return []
        if last_nl - start <= SUFFIX_GUESS_BYTES:
            return chunk[start:last_nl].split(b"\n")[-self.max_lines :]
        pieces = chunk[last_nl - SUFFIX_GUESS_BYTES : last_nl].rsplit(b"\n", self.max_lines)
        if len(pieces) > self.max_lines:
            return pieces[1:]
        keep_from = start
        pos = last_nl
        for _ in range(self.max_lines):
            pos = chunk.rfind(b"\n", start, pos)
            if pos < 0:
                break
        else:
            keep_from = pos + 1
        return chunk[keep_from:last_nl].split(b"\n")

    def _extend_partial(self, data: bytes) -> None:
        if self._partial_cut or not data:
            return
        room = self.max_line_bytes - len(self._partial)
        if len(data) > room:
            self._partial += data[:room]
            self._partial_cut = True
        else:
            self._partial += data

    def _complete(self, line: bytes) -> None:
        if self._results and line.startswith(RESULT_PREFIX):
            self.result.add(line)
        self._lines.append(cut_line(line, self.max_line_bytes) if self._partial_cut else line)

    def text(self) -> str:
        lines = list(self._lines)
        if self._partial:
            partial = self._partial
            if self._partial_cut:
                partial = cut_line(partial, self.max_line_bytes)
            lines.append(partial)
            lines = lines[-self.max_lines :]
        # What cannot be shown as text becomes U+FFFD: bytes that are not UTF-8, and NUL,
        # which PostgreSQL's text cannot hold (a job printing one must still be recorded).
        return b"\n".join(lines).decode("utf-8", errors="replace").replace("\x00", "\ufffd")
