"""scheduling/cluster.py's pure part: what the leader plans, and what becomes of fires due
while no node led (`catch_up`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jeeves_runner.cluster_model import JobPlan, MissedGap, PlanOutcome
from jeeves_runner.models import Job, ScheduleEntry, format_instant
from jeeves_runner.scheduling.cluster import (
    RUN_LATE_WITHIN_S,
    ClusterPlanner,
    NodeIdentity,
    catch_up,
)

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
EVERY_SECOND = ScheduleEntry("tick", "* * * * * *", "2026-03-01T00:00:00.000Z")
EVERY_MINUTE = ScheduleEntry("minute", "* * * * *", "2026-03-01T00:00:00.000Z")


def at(seconds: float) -> str:
    return format_instant(NOW + timedelta(seconds=seconds))


def test_a_new_job_is_planned_ahead_and_not_twice() -> None:
    planner = ClusterPlanner(UTC)
    assert planner.take_over([EVERY_SECOND], {}, NOW) == []
    plans = planner.due(NOW, 2.0)
    assert plans == [JobPlan("tick", None, at(2), (at(1), at(2)))]
    planner.written(plans, PlanOutcome(inserted=2), {})
    assert planner.due(NOW, 2.0) == []
    assert planner.due(NOW + timedelta(seconds=1), 2.0) == [JobPlan("tick", at(2), at(3), (at(3),))]


def test_a_new_leader_starts_from_the_last_planned_instant() -> None:
    planner = ClusterPlanner(UTC)
    # The old leader planned up to 3 s ago: the 3 instants since run late, nothing is lost.
    plans = planner.take_over([EVERY_SECOND], {"tick": at(-3)}, NOW)
    assert plans == [JobPlan("tick", at(-3), at(0), (at(-2), at(-1), at(0)))]
    planner.written(plans, PlanOutcome(inserted=3), {})
    assert planner.due(NOW, 1.0) == [JobPlan("tick", at(0), at(1), (at(1),))]


def test_instants_planned_ahead_by_the_old_leader_are_not_planned_again() -> None:
    planner = ClusterPlanner(UTC)
    assert planner.take_over([EVERY_SECOND], {"tick": at(1)}, NOW) == []
    assert planner.due(NOW, 2.0) == [JobPlan("tick", at(1), at(2), (at(2),))]


def test_a_long_gap_is_recorded_as_missed_and_only_recent_fires_run_late() -> None:
    planner = ClusterPlanner(UTC)
    plans = planner.take_over([EVERY_MINUTE], {"minute": at(-600)}, NOW)
    (plan,) = plans
    # Minutes -9 .. 0: those older than RUN_LATE_WITHIN_S are one missed row.
    assert plan.run_at == (at(0),)
    assert plan.missed == MissedGap(at(-540), at(-60), 9)
    assert plan.through == at(0)


def test_catch_up_splits_on_the_late_window() -> None:
    instants = [NOW - timedelta(seconds=s) for s in (100, 50, RUN_LATE_WITHIN_S, 1)]
    late, gap = catch_up("j", instants, NOW)
    assert late == instants[2:]
    assert gap == MissedGap(at(-100), at(-50), 2)
    assert catch_up("j", instants[2:], NOW) == (instants[2:], None)


def test_a_refused_plan_takes_the_databases_word() -> None:
    planner = ClusterPlanner(UTC)
    planner.take_over([EVERY_SECOND], {}, NOW)
    plans = planner.due(NOW, 1.0)
    planner.written(plans, PlanOutcome(refused=["tick"]), {"tick": at(5)})
    assert planner.planned == {"tick": at(5)}
    assert planner.due(NOW + timedelta(seconds=3), 1.0) == []


def test_a_removed_job_is_forgotten() -> None:
    planner = ClusterPlanner(UTC)
    planner.take_over([EVERY_SECOND], {"tick": at(0)}, NOW)
    planner.apply_entries([], NOW)
    assert planner.planned == {} and planner.due(NOW, 5.0) == []


def test_a_node_may_run_a_job_when_it_carries_every_run_on_label() -> None:
    node = NodeIdentity("a", "host", ("a", "gpu"), 2.0)
    job = Job(id="j", name="j", schedule="@daily", script="/s.sh")
    assert node.may_run(job)
    assert node.may_run(Job(id="j", name="j", schedule="@daily", script="/s", run_on=("gpu", "a")))
    assert not node.may_run(Job(id="j", name="j", schedule="@daily", script="/s", run_on=("b",)))
