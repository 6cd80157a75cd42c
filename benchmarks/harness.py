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
