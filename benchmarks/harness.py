"""What the benchmarks that drive a real runner process share: a free port, the health
probe, and starting `python -m jeeves_runner start` the same way each time."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health_ok(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/health")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def start_runner(config_path: Path, folder: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    """The real runner on `config_path`, stdout discarded, stderr to `stderr_path`."""
    with open(stderr_path, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "jeeves_runner", "start", "-c", str(config_path)],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def stop_runner(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as an operator would; SIGKILL only if it is still there after 40 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class PostgresSchema:
    """A fresh schema in the PostgreSQL database of `url` for one benchmark, dropped after:
    `with PostgresSchema(url) as schema_url: ...` (connections of schema_url create and find
    everything there)."""

    def __init__(self, url: str) -> None:
        import secrets

        self.url = url
        self.name = f"bench_{secrets.token_hex(4)}"

    def __enter__(self) -> str:
        from urllib.parse import quote, urlsplit, urlunsplit

        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        parts = urlsplit(self.url)
        option = f"options={quote(f'-csearch_path={self.name}')}"
        query = f"{parts.query}&{option}" if parts.query else option
        return urlunsplit(parts._replace(query=query))

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{self.name}" CASCADE')
