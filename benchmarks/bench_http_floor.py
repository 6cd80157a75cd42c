"""What one keep-alive connection can carry on this machine before any runner work: the
floor under bench_api's figures; prints its figures as JSON.

The same 17 KB answer (a page of 50 runs) from four servers, one after the other, each
driven by bench_api's client (another process, one connection, requests back to back):

- `raw_asyncio`: an asyncio Protocol writing the bytes back (no HTTP parsing at all);
- `uvicorn_bare_asgi`: the runner's own server (uvicorn, h11, its header timer and
  connection cap) around a bare ASGI function that sends the bytes;
- `uvicorn_fastapi_route`: the same server and a FastAPI app with one route returning
  the bytes (FastAPI's and Starlette's middleware and router, no runner code);
- `runner_runs_warm`: the runner's app answering GET /jobs/:id/runs?limit=50 from its
  cached body (bench_api's `runs_limit50_warm`).

Rounds alternate the four so that a busy moment of a shared host falls on all of them;
each figure is the median over rounds. A target above `uvicorn_fastapi_route` cannot be
met by any code behind the chosen stack (FastAPI on uvicorn).

    .venv/bin/python benchmarks/bench_http_floor.py [--seconds N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Receive, Scope, Send

import bench_api
from jeeves_runner.api.server import ApiServer

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


def _fastapi() -> FastAPI:
    app = FastAPI()

    @app.get("/jobs/{job_id}/runs")
    async def runs(job_id: str) -> Response:
        return Response(content=BODY, media_type="application/json")

    return app


async def _client(port: int, seconds: float, paths: list[str]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        bench_api.__file__,
        "--client",
        str(port),
        str(seconds),
        "-",
        *paths,
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit("the client failed")
    figures: dict[str, Any] = json.loads(out)
    return figures


async def _served(app: ASGIApp, seconds: float, paths: list[str]) -> dict[str, Any]:
    server = ApiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        return await _client(server.port, seconds, paths)
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
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        db = str(Path(tmp) / "runs.sqlite")
        bench_api.build_dataset(db, 1_000, 50_000)
        for _ in range(args.rounds):
            rounds: dict[str, dict[str, Any]] = {
                "raw_asyncio": asyncio.run(_raw(args.seconds, paths)),
                "uvicorn_bare_asgi": asyncio.run(_served(_bare, args.seconds, paths)),
                "uvicorn_fastapi_route": asyncio.run(_served(_fastapi(), args.seconds, paths)),
                "runner_runs_warm": bench_api.measure(db, paths, args.seconds, cold=False),
            }
            for name, figures in rounds.items():
                rates.setdefault(name, []).append(figures["requests_per_s"])
                medians.setdefault(name, []).append(figures["median_ms"])
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "servers": {
            name: {
                "requests_per_s": round(statistics.median(rates[name]), 1),
                "median_ms": round(statistics.median(medians[name]), 3),
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
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
