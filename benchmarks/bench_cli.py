"""How fast the CLI verbs that job scripts call in loops answer.

Prints one JSON object:
- `python_start_ms`: median wall time of `python -c pass` (the floor for any CLI call);
- `<verb>_ms`: median wall time of one `jeeves-runner …` call (the installed console script,
  a fresh process each, on a real SQLite file), for `state get`, `state set`,
  `queue enqueue`, `queue dequeue` and `queue done`;
- `import_data_verbs_ms`: median time to import the module behind `state`/`queue`, and
  `heavy_modules_loaded`: which of httpx, pydantic, jsonpath a `state get` loaded (none);
- `batch_ops_per_s`: state operations per second through one `jeeves-runner batch` process,
  asked one line at a time and waiting for each answer (a shell coprocess does this), and
  `batch_pipelined_ops_per_s` with all lines written at once.

Targets (issue 15): `state_get_ms` ≤ 80, `batch_ops_per_s` ≥ 2,000.

    .venv/bin/python benchmarks/bench_cli.py [--calls 30] [--ops 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "jeeves-runner"


def wall_ms(argv: list[str], env: dict[str, str], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def import_ms(calls: int) -> float:
    code = (
        "import time; t = time.perf_counter(); import jeeves_runner.cli.data_commands; "
        "print((time.perf_counter() - t) * 1000)"
    )
    times = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
        for _ in range(calls)
    ]
    return round(statistics.median(times), 1)


def heavy_modules(env: dict[str, str]) -> list[str]:
    code = (
        "import sys\n"
        "from jeeves_runner.cli import main\n"
        "try:\n    main(['state', 'get', 'ns', 'k'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'pydantic', 'jsonpath'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"')))


def batch_rate(env: dict[str, str], ops: int, pipelined: bool) -> float:
    lines = []
    for i in range(ops):
        if i % 2 == 0:
            cmd = {"cmd": "state set", "namespace": "bench", "key": f"k{i % 100}", "value": str(i)}
        else:
            cmd = {"cmd": "state get", "namespace": "bench", "key": f"k{(i - 1) % 100}"}
        lines.append(json.dumps(cmd) + "\n")
    proc = subprocess.Popen(
        [str(BIN), "batch"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(lines[0])  # the first answer also pays for the process start
    proc.stdin.flush()
    proc.stdout.readline()
    start = time.perf_counter()
    if pipelined:
        # Written from a thread: answers fill the stdout pipe while input is still going in.
        writer = threading.Thread(target=proc.stdin.writelines, args=(lines[1:],))
        writer.start()
        for _ in lines[1:]:
            proc.stdout.readline()
    else:
        for line in lines[1:]:
            proc.stdin.write(line)
            proc.stdin.flush()
            proc.stdout.readline()
    elapsed = time.perf_counter() - start
    if pipelined:
        writer.join()
    proc.stdin.close()
    proc.wait()
    return round((len(lines) - 1) / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--ops", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "runner.sqlite")
        env = {**os.environ, "JR_DB_PATH": db}
        subprocess.run([str(BIN), "add-queue", "--id", "q"], env=env, capture_output=True)
        jr = [str(BIN)]
        n = args.calls
        figures: dict[str, object] = {
            "python_start_ms": wall_ms([sys.executable, "-c", "pass"], env, n),
            "state_get_ms": wall_ms([*jr, "state", "get", "ns", "k"], env, n),
            "state_set_ms": wall_ms([*jr, "state", "set", "ns", "k", "v"], env, n),
            "queue_enqueue_ms": wall_ms([*jr, "queue", "enqueue", "q", '{"a": 1}'], env, n),
            "queue_dequeue_ms": wall_ms([*jr, "queue", "dequeue", "q"], env, n),
        }
        done_times = []
        for item_id in range(1, n + 1):
            start = time.perf_counter()
            subprocess.run([*jr, "queue", "done", str(item_id)], env=env, capture_output=True)
            done_times.append((time.perf_counter() - start) * 1000)
        figures["queue_done_ms"] = round(statistics.median(done_times), 1)
        figures["import_data_verbs_ms"] = import_ms(n)
        figures["heavy_modules_loaded"] = heavy_modules(env)
        figures["batch_ops_per_s"] = batch_rate(env, args.ops, pipelined=False)
        figures["batch_pipelined_ops_per_s"] = batch_rate(env, args.ops, pipelined=True)
        figures["targets"] = {"state_get_ms": 80, "batch_ops_per_s": 2000}
        figures["meets_targets"] = (
            float(str(figures["state_get_ms"])) <= 80
            and float(str(figures["batch_ops_per_s"])) >= 2000
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
