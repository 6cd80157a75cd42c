"""The heap of next fires: registration, reconcile, clock steps. Pure, no sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from jeeves_runner.scheduling.fire_schedule import FireSchedule, utc_from_timestamp
from jeeves_runner.store import ScheduleEntry

T0 = datetime(2026, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)


def entry(job_id: str, schedule: str, updated: str = "u1") -> ScheduleEntry:
    return ScheduleEntry(job_id, schedule, updated)


def test_registers_and_orders_by_next_fire() -> None:
    fires = FireSchedule(UTC)
    report = fires.reconcile([entry("hourly", "0 * * * *"), entry("sec", "* * * * * *")], T0)
    assert sorted(report.added) == ["hourly", "sec"]
    assert utc_from_timestamp(fires.next_due() or 0) == datetime(2026, 6, 1, 12, 0, 1, tzinfo=UTC)
    assert fires.pop_due(fires.next_due() or 0) == ["sec"]


def test_invalid_and_never_firing_schedules_are_failed_registrations() -> None:
    fires = FireSchedule(UTC)
    report = fires.reconcile([entry("bad", "61 * * * *"), entry("feb30", "0 0 30 2 *")], T0)
    assert sorted(report.failed) == ["bad", "feb30"]
    assert "minute" in fires.failed["bad"].reason
    assert fires.failed["feb30"].reason == "the schedule never fires"
    assert fires.next_due() is None
    # Retried only when the schedule changes.
    again = fires.reconcile([entry("bad", "61 * * * *", "u2"), entry("feb30", "0 0 30 2 *")], T0)
    assert again.failed == []
    fixed = fires.reconcile([entry("bad", "5 * * * *"), entry("feb30", "0 0 30 2 *")], T0)
    assert fixed.added == ["bad"]
    assert "bad" not in fires.failed


def test_removed_and_changed_jobs() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([entry("a", "* * * * * *"), entry("b", "0 * * * *")], T0)
    report = fires.reconcile([entry("b", "30 * * * *")], T0)
    assert report.removed == ["a"]
    assert report.changed == ["b"]
    assert utc_from_timestamp(fires.next_due() or 0) == datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
    # The stale heap entry of "a" and the old entry of "b" never come out.
    assert fires.pop_due(T0.timestamp() + 7200) == ["b"]


def test_unchanged_schedule_keeps_its_next_fire_when_the_clock_steps_back() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([entry("m", "* * * * *")], T0)
    due = fires.next_due() or 0
    assert fires.pop_due(due) == ["m"]
    fires.reschedule("m", utc_from_timestamp(due))
    next_fire = fires.next_due()
    # Wall clock goes back ten minutes; a reconcile must not re-add earlier slots.
    fires.reconcile([entry("m", "* * * * *", "u2")], T0 - timedelta(minutes=10))
    assert fires.next_due() == next_fire


def test_reschedule_from_now_after_forward_step_fires_once() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([entry("m", "* * * * *")], T0)
    due = fires.next_due() or 0
    fires.pop_due(due)
    jumped = utc_from_timestamp(due) + timedelta(hours=3)
    fires.reschedule("m", jumped)
    assert (
        fires.next_due()
        == (jumped.replace(second=0, microsecond=0) + timedelta(minutes=1)).timestamp()
    )


def test_zone_is_used_for_wall_times() -> None:
    fires = FireSchedule(ZoneInfo("America/New_York"))
    fires.reconcile([entry("nine", "0 9 * * *")], T0)
    assert utc_from_timestamp(fires.next_due() or 0) == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)


def test_many_jobs_pop_in_order_and_compaction_keeps_current_entries() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([entry(f"j{i}", f"{i % 60} * * * *") for i in range(600)], T0)
    for _ in range(3):  # churn: change every schedule, leaving stale entries behind
        fires.reconcile([entry(f"j{i}", f"{(i + 7) % 60} * * * *") for i in range(600)], T0)
    assert len(fires) == 600
    popped = fires.pop_due(T0.timestamp() + 3600)
    assert sorted(popped) == sorted(f"j{i}" for i in range(600))


def test_update_one_adds_changes_and_removes_a_single_job() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([entry("a", "0 * * * *"), entry("b", "30 * * * *")], T0)
    fires.update_one("a", None, T0)
    assert "a" not in fires
    assert fires.pop_due(T0.timestamp() + 3600) == ["b"]
    fires.update_one("a", entry("a", "* * * * * *"), T0)
    assert utc_from_timestamp(fires.next_due() or 0) == datetime(2026, 6, 1, 12, 0, 1, tzinfo=UTC)
    fires.update_one("c", entry("c", "99 * * * *"), T0)
    assert "minute" in fires.failed["c"].reason


def test_next_fires_lists_every_job_even_while_it_is_being_fired() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([entry("hourly", "0 * * * *"), entry("sec", "* * * * * *")], T0)
    sec = datetime(2026, 6, 1, 12, 0, 1, tzinfo=UTC).timestamp()
    hourly = datetime(2026, 6, 1, 13, 0, tzinfo=UTC).timestamp()
    assert fires.next_fires() == {"hourly": hourly, "sec": sec}
    assert fires.pop_due(sec) == ["sec"]
    assert fires.next_fires() == {"hourly": hourly, "sec": sec}  # the fire under way
    # Put back on the heap at once, but its fire is still to happen: still the next one.
    fires.reschedule("sec", utc_from_timestamp(sec))
    assert fires.next_fires() == {"hourly": hourly, "sec": sec}
    fires.fired(["sec"], sec)
    assert fires.next_fires() == {"hourly": hourly, "sec": sec + 1}
    fires.update_one("hourly", None, T0)  # disabled
    assert fires.next_fires() == {"sec": sec + 1}


def test_the_plan_is_built_once_per_version_and_moves_with_every_change() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([entry("hourly", "0 * * * *"), entry("sec", "* * * * * *")], T0)
    sec = datetime(2026, 6, 1, 12, 0, 1, tzinfo=UTC).timestamp()
    first = fires.plan()
    assert fires.plan() is first  # nothing moved: the same plan, not a new walk
    assert fires.next_fire("sec") == sec
    versions = [first.version]
    fires.pop_due(sec)
    versions.append(fires.plan().version)
    fires.reschedule("sec", utc_from_timestamp(sec))
    versions.append(fires.plan().version)
    fires.fired(["sec"], sec)
    versions.append(fires.plan().version)
    assert fires.plan().next["sec"] == sec + 1
    fires.update_one("sec", None, T0)
    versions.append(fires.plan().version)
    assert len(set(versions)) == len(versions)
    assert dict(fires.plan().next) == {"hourly": datetime(2026, 6, 1, 13, tzinfo=UTC).timestamp()}
    assert fires.next_fire("sec") is None


def test_a_jobs_own_zone_holds_after_a_recompute_and_for_the_next_fire() -> None:
    fires = FireSchedule(UTC)
    fires.reconcile([ScheduleEntry("ny", "0 9 * * *", "", "America/New_York")], T0)
    first = fires.next_due()
    fires.recompute_all(T0)
    assert fires.next_due() == first  # 09:00 in New York, not 09:00 UTC
    assert fires.fire_after("ny", T0) == first
