from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jeeves_runner.execution.output_tail import OutputTail


def feed_in_chunks(tail: OutputTail, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        tail.feed(data[start : start + size])


@given(
    lines=st.lists(st.text(alphabet="abc xyz", max_size=30), max_size=300),
    chunk=st.integers(min_value=1, max_value=500),
    trailing_newline=st.booleans(),
)
def test_keeps_exactly_the_last_lines_whatever_the_chunking(
    lines: list[str], chunk: int, trailing_newline: bool
) -> None:
    data = "\n".join(lines).encode()
    if trailing_newline and lines:
        data += b"\n"
    tail = OutputTail(max_lines=100, max_line_bytes=4096)
    feed_in_chunks(tail, data, chunk)
    expected = data.decode().split("\n")
    if expected and expected[-1] == "":
        expected.pop()
    assert tail.text() == "\n".join(expected[-100:])


def test_long_lines_are_capped_and_memory_stays_bounded() -> None:
    tail = OutputTail(max_lines=100, max_line_bytes=1000)
    one_mb = b"x" * 1_000_000
    for _ in range(20):
        tail.feed(one_mb[:300_000])
        tail.feed(one_mb[300_000:] + b"\n")
    kept = tail.text().split("\n")
    assert len(kept) == 20
    assert all(line == "x" * 1000 + "…[cut]" for line in kept)
    assert tail.total_bytes == 20 * 1_000_001


def test_a_cut_line_is_marked_whichever_way_it_arrives() -> None:
    tail = OutputTail(max_lines=10, max_line_bytes=8)
    tail.feed(b"short\n" + b"y" * 20 + b"\nz")  # whole in one chunk
    tail.feed(b"z" * 20)  # built across chunks, still open
    assert tail.text() == "short\n" + "y" * 8 + "…[cut]\n" + "z" * 8 + "…[cut]"
    tail.feed(b"\n")
    assert tail.text().split("\n")[-1] == "z" * 8 + "…[cut]"


def test_a_cut_never_splits_a_character() -> None:
    tail = OutputTail(max_lines=10, max_line_bytes=8)
    tail.feed("abcdeé€x\n".encode())  # é is bytes 5-6, € bytes 7-9: the cap of 8 falls inside €
    assert tail.text() == "abcdeé…[cut]"


def test_bad_result_lines_are_reported_with_the_reason() -> None:
    said: list[str] = []
    tail = OutputTail()
    tail.result.on_bad = said.append
    tail.feed(b'JR_RESULT:{"tokens": 5\nJR_RESULT:[1]\nJR_RESULT:{"tokens": "7"}\nok\n')
    assert said == [
        "warning: a JR_RESULT: line was ignored: it is not valid JSON (Expecting ',' delimiter)",
        "warning: a JR_RESULT: line was ignored: it is not a JSON object like "
        '{"tokens": 123, "meta": "..."}',
        'warning: a JR_RESULT: line was ignored: "tokens" must be an integer, got "7"',
    ]


def test_result_lines_found_even_outside_the_tail() -> None:
    tail = OutputTail(max_lines=2)
    tail.feed(b'JR_RESULT:{"tokens": 5}\n')
    tail.feed(b"a\nb\nc\nJR_RES")
    tail.feed(b'ULT:{"meta": "m"}\nd\n')
    assert (tail.result.tokens, tail.result.meta, tail.result.lines) == (5, "m", 2)
    assert tail.text() == 'JR_RESULT:{"meta": "m"}\nd'


@pytest.mark.slow
def test_a_million_result_lines_keep_only_their_folded_values() -> None:
    tail = OutputTail(max_lines=3)
    chunk = b"".join(b'JR_RESULT:{"tokens": %d}\n' % n for n in range(10_000))
    for _ in range(100):
        tail.feed(chunk)
    tail.feed(b'JR_RESULT:{"tokens": "not a number", "meta": {"k": 1}}\nJR_RESULT:nope\n')
    assert (tail.result.tokens, tail.result.meta) == (9_999, '{"k": 1}')
    assert tail.result.lines == 1_000_002
    assert not hasattr(tail, "result_lines")


def test_nul_and_bytes_that_are_not_utf8_read_as_the_replacement_character() -> None:
    tail = OutputTail(max_lines=10, max_line_bytes=4096)
    tail.feed(b"a\x00b\nc\xffd\n")
    assert tail.text() == "a\ufffdb\nc\ufffdd"


def cut_model(line: bytes, cap: int) -> bytes:
    return line if len(line) <= cap else line[:cap] + "…[cut]".encode()


@pytest.mark.parametrize("seed", range(40))
def test_big_chunks_keep_the_last_lines_and_cut_the_long_ones(seed: int) -> None:
    # Chunks far larger than the few kilobytes where the last lines are looked for first,
    # lines short and long (past the cap), so every way of finding them is taken.
    rng = random.Random(seed)
    short = rng.choice([5, 40, 200])
    lengths = [
        rng.randint(0, short) if rng.random() < 0.97 else rng.randint(0, 5000)
        for _ in range(rng.randint(1, 5000))
    ]
    lines = [b"%d:" % i + b"x" * n for i, n in enumerate(lengths)]
    data = b"\n".join(lines) + b"\n"
    max_lines = rng.choice([1, 7, 100, 400])
    tail = OutputTail(max_lines=max_lines, max_line_bytes=2000)
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 100, 5000, 70_000, 300_000])
        tail.feed(data[pos : pos + size])
        pos += size
    expected = [cut_model(line, 2000) for line in lines][-max_lines:]
    assert tail.text() == b"\n".join(expected).decode()


def test_a_tail_that_does_not_fold_results_keeps_result_lines_as_plain_output() -> None:
    tail = OutputTail(results=False)
    tail.feed(b'JR_RESULT:{"tokens": 5}\nok\nJR_RESULT:{"tokens": 6}\n')
    assert tail.result.tokens is None and tail.result.lines == 0
    assert tail.text() == 'JR_RESULT:{"tokens": 5}\nok\nJR_RESULT:{"tokens": 6}'
