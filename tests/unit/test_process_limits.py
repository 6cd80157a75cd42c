"""The runner raises its open-file soft limit to the hard limit at start."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, resource
from jeeves_runner.process_limits import raise_fd_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
new = raise_fd_limit()
print(json.dumps([hard, new, resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))
"""


def test_soft_limit_goes_up_to_the_hard_limit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=30
    )
    hard, returned, soft_now = json.loads(done.stdout)
    assert soft_now == returned
    assert soft_now > 256
    assert soft_now == hard or soft_now == 1 << 20  # an unlimited hard limit is capped
