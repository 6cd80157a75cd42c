"""What one keep-alive connection can carry on this machine before any runner work: the
floor under bench_api's figures; prints its figures as JSON.

The same 17 KB answer (a page of 50 runs) from eight servers, one after the other, each
driven by bench_api's client (another process, one connection, requests back to back):

- `raw_asyncio`: an asyncio Protocol writing the bytes back (no HTTP parsing at all);
- `uvicorn_bare_asgi`: the runner's own server (uvicorn's httptools protocol with the
  runner's bounds: header timer, connection cap, head size, pipelining) around a bare ASGI
  function that sends the bytes;
- `uvicorn_bare_asgi_httptools_unbounded`: the same with uvicorn's httptools protocol as it
  comes (what the runner's bounds cost);
- `uvicorn_bare_asgi_h11`: the same with uvicorn's h11 protocol (pure Python), which the
  runner used before httptools;
- `uvicorn_fastapi_route`: the runner's server and a FastAPI app with one route returning
  the bytes (FastAPI's and Starlette's middleware and router, no runner code);
- `runner_runs_warm`: the runner's app answering GET /jobs/:id/runs?limit=50 from its
  cached body (bench_api's `runs_limit50_warm`);
- `bare_asgi_store_trip_after_write`: the client writes a run into the database before
  every request (as in bench_api's `runs_limit50_write`), and the bare ASGI function first
  makes one trip to a store thread (the runner's `Lane`) that asks SQLite whether the file
  changed and reads one row: the least any answer costs that reads the database off the
  event loop after another process wrote it (the runner's rule: no SQLite call on the loop);
- `runner_runs_after_write`: bench_api's `runs_limit50_write`, the runner's app in that
  same situation (`runner_write_over_its_floor`: its rate over the row above).

Rounds alternate the servers so that a busy moment of a shared host falls on all of them;
each figure is the median over rounds, with the server's CPU time a request (this process
serves, the client is another: steadier than the rates on a shared host). A target above
`uvicorn_fastapi_route` cannot be met by any code behind the chosen stack (FastAPI on
uvicorn); one above `bare_asgi_store_trip_after_write`, by no read of the database after a
write that keeps SQLite off the event loop.

    .venv/bin/python benchmarks/bench_http_floor.py [--seconds N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

import bench_api
from jeeves_runner.api.server import ApiServer
from jeeves_runner.store.gateway import Lane

BODY = b'{"runs":[' + b"x" * 17_000 + b"]}"
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"


class _Raw(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if data.endswith(b"\r\n\r\n"):
            self.transport.write(HEAD % len(BODY) + BODY)


async def _bare(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def _bare_after_write(db: str) -> tuple[ASGIApp, Lane]:
    """The bare ASGI answer behind the least any read of the database off the event loop
    costs after another process's write: one trip to a store thread (the runner's Lane)
    that asks SQLite whether the file changed (`PRAGMA data_version`, which must read the
    WAL index) and reads the newest change (one indexed row)."""
    lane = Lane("floor-probe")
    conn: list[sqlite3.Connection] = []

    def probe() -> int:
        if not conn:  # opened on the lane's thread, which alone uses it
            conn.append(sqlite3.connect(db, isolation_level=None))
        version = int(conn[0].execute("PRAGMA data_version").fetchone()[0])
        conn[0].execute("SELECT id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return version

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await lane.call(probe)
        await _bare(scope, receive, send)

    return app, lane


async def _served_after_write(db: str, seconds: float, paths: list[str]) -> dict[str, Any]:
    app, lane = _bare_after_write(db)
    try:
        return await _served(app, seconds, paths, write_db=db)
    finally:
        lane.shutdown()


def _fastapi() -> FastAPI:
    app = FastAPI()

    @app.get("/jobs/{job_id}/runs")
    async def runs(job_id: str) -> Response:
        return Response(content=BODY, media_type="application/json")

    return app


async def _client(
    port: int, seconds: float, paths: list[str], write_db: str = "-"
) -> dict[str, Any]:
    cpu_before = time.process_time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        bench_api.__file__,
        "--client",
        str(port),
        str(seconds),
        write_db,
        *paths,
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit("the client failed")
    cpu = time.process_time() - cpu_before
    figures: dict[str, Any] = json.loads(out)
    figures["server_cpu_ms_per_request"] = round(cpu * 1000 / max(figures["requests"], 1), 3)
    return figures


async def _served(
    app: ASGIApp,
    seconds: float,
    paths: list[str],
    protocol: type | None = None,
    write_db: str = "-",
) -> dict[str, Any]:
    server = ApiServer(app, "127.0.0.1", 0)
    if protocol is not None:
        server._config.http = protocol  # the runner's server, with another HTTP protocol
    await server.start()
    try:
        return await _client(server.port, seconds, paths, write_db)
    finally:
        await server.stop()


async def _raw(seconds: float, paths: list[str]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Raw, "127.0.0.1", 0)
    try:
        return await _client(server.sockets[0].getsockname()[1], seconds, paths)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per server and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths = [f"/jobs/job-{i:05d}/runs?limit=50" for i in range(0, 1000, 7)]
    rates: dict[str, list[float]] = {}
    medians: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        db = str(Path(tmp) / "runs.sqlite")
        bench_api.build_dataset(db, 1_000, 50_000)
        for _ in range(args.rounds):
            rounds: dict[str, dict[str, Any]] = {
                "raw_asyncio": asyncio.run(_raw(args.seconds, paths)),
                "uvicorn_bare_asgi": asyncio.run(_served(_bare, args.seconds, paths)),
                "uvicorn_bare_asgi_httptools_unbounded": asyncio.run(
                    _served(_bare, args.seconds, paths, HttpToolsProtocol)
                ),
                "uvicorn_bare_asgi_h11": asyncio.run(
                    _served(_bare, args.seconds, paths, H11Protocol)
                ),
                "uvicorn_fastapi_route": asyncio.run(_served(_fastapi(), args.seconds, paths)),
                "runner_runs_warm": bench_api.measure(db, paths, args.seconds, cold=False),
                # With a write by the client before every request (bench_api's
                # `runs_limit50_write`), and the floor under it.
                "bare_asgi_store_trip_after_write": asyncio.run(
                    _served_after_write(db, args.seconds, paths)
                ),
                "runner_runs_after_write": bench_api.measure(
                    db, paths, args.seconds, cold=False, write=True
                ),
            }
            for name, figures in rounds.items():
                rates.setdefault(name, []).append(figures["requests_per_s"])
                medians.setdefault(name, []).append(figures["median_ms"])
                if "server_cpu_ms_per_request" in figures:
                    cpus.setdefault(name, []).append(figures["server_cpu_ms_per_request"])
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "servers": {
            name: {
                "requests_per_s": round(statistics.median(rates[name]), 1),
                "median_ms": round(statistics.median(medians[name]), 3),
                "server_cpu_ms_per_request": (
                    round(statistics.median(cpus[name]), 3) if name in cpus else None
                ),
                "rounds": rates[name],
            }
            for name in rates
        },
    }
    servers = report["servers"]
    route = servers["uvicorn_fastapi_route"]["requests_per_s"]
    report["runner_over_fastapi_route"] = round(
        servers["runner_runs_warm"]["requests_per_s"] / route, 2
    )
    report["fastapi_route_over_raw"] = round(route / servers["raw_asyncio"]["requests_per_s"], 3)
    report["runner_write_over_its_floor"] = round(
        servers["runner_runs_after_write"]["requests_per_s"]
        / servers["bare_asgi_store_trip_after_write"]["requests_per_s"],
        2,
    )
    report["bare_httptools_over_h11"] = round(
        servers["uvicorn_bare_asgi"]["requests_per_s"]
        / servers["uvicorn_bare_asgi_h11"]["requests_per_s"],
        2,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
