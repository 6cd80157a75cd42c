from __future__ import annotations

import pytest

from jeeves_runner.models import OverlapPolicy
from jeeves_runner.scheduling.overlap import FireDecision, JobActivity, decide


@pytest.mark.parametrize(
    ("policy", "in_flight", "queued", "expected"),
    [
        (OverlapPolicy.SKIP, 0, False, FireDecision.RUN),
        (OverlapPolicy.SKIP, 1, False, FireDecision.SKIP),
        (OverlapPolicy.QUEUE, 0, False, FireDecision.RUN),
        (OverlapPolicy.QUEUE, 1, False, FireDecision.QUEUE),
        (OverlapPolicy.QUEUE, 2, True, FireDecision.SKIP),
        (OverlapPolicy.ALLOW, 0, False, FireDecision.RUN),
        (OverlapPolicy.ALLOW, 5, False, FireDecision.RUN),
    ],
)
def test_decisions(
    policy: OverlapPolicy, in_flight: int, queued: bool, expected: FireDecision
) -> None:
    decision, reason = decide(policy, JobActivity(in_flight=in_flight, queued=queued))
    assert decision is expected
    assert (reason is not None) == (expected is FireDecision.SKIP)


def test_skip_reason_says_why() -> None:
    _, reason = decide(OverlapPolicy.SKIP, JobActivity(in_flight=1))
    assert reason == "the previous run was still in flight (overlap policy skip)"
