"""Prints 1 GiB: 512 lines of 1 MB, then 512 MiB of short lines."""

import sys

out = sys.stdout.buffer
big = b"x" * (1024 * 1024 - 1) + b"\n"
for _ in range(512):
    out.write(big)
short = b"short line\n" * 100_000  # 1.1 MB a write
written = 0
while written < 512 * 1024 * 1024:
    out.write(short)
    written += len(short)
out.write(b"the end\n")
