"""Domain values: jobs, runs, statuses and policies. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

# The config default, here so the CLI's fast verbs know it without loading the config model.
DEFAULT_DB_PATH = "./data/runner.sqlite"


class JobType(StrEnum):
    SCRIPT = "script"
    SESSION = "session"


class OverlapPolicy(StrEnum):
    SKIP = "skip"
    QUEUE = "queue"
    ALLOW = "allow"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    # Stopped on someone's request (the API's cancel); `error` says who asked.
    CANCELLED = "cancelled"
    # Scheduled instants nothing ran (the runner was down, no node led): one row per job and
    # gap, with `missed_count` and the first and last instants.
    MISSED = "missed"


# A run in one of these has ended; nothing changes it any more.
FINISHED_STATUSES = frozenset(
    {
        RunStatus.OK,
        RunStatus.ERROR,
        RunStatus.TIMEOUT,
        RunStatus.SKIPPED,
        RunStatus.CANCELLED,
        RunStatus.MISSED,
    }
)


class LogStream(StrEnum):
    """Where a line of a run's log came from: the child's two pipes, or the runner itself
    (a warning about the run's output, the line saying how much of a long log was dropped)."""

    STDOUT = "stdout"
    STDERR = "stderr"
    RUNNER = "runner"


class JobState(StrEnum):
    """What the dashboard's badge says about a job. `late` needs the schedule and the clock;
    the others follow from the job row and its last run."""

    OK = "ok"
    NEW = "new"  # never ran
    FAILING = "failing"
    RUNNING = "running"
    LATE = "late"
    DISABLED = "disabled"


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"


# Why a run ended without an outcome of its own: the runner stopped under it.
STOPPED_DURING_RUN = "The runner stopped during this run"
STOPPED_BEFORE_RUN = "The runner stopped before this run started"


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    name: str
    schedule: str
    script: str
    type: JobType = JobType.SCRIPT
    description: str | None = None
    enabled: bool = True
    timeout_ms: int | None = None
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    on_failure: str | None = None
    on_success: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    # An argv run without a shell, instead of `script` (which is then "").
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timezone: str | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    source_digest: str | None = None
    retries: int = 0
    retry_delay_ms: int = 10_000
    retry_backoff: float = 2.0
    retry_max_delay_ms: int = 600_000
    # Items: "error", "timeout", or exit codes as decimal strings.
    retry_on: tuple[str, ...] = ("error", "timeout")
    catchup: str = "skip"  # "skip" | "once" | "all"
    catchup_max: int = 10
    catchup_window_ms: int = 86_400_000
    notify: str = "change"  # "always" | "change"
    notify_repeat: int = 10
    late_after_ms: int = 60_000
    max_duration_ms: int | None = None
    # Cluster mode: labels a node must all carry to run this job (empty: any node).
    run_on: tuple[str, ...] = ()


# Issue 13's job fields, in the order above: each backend stores them in columns of these
# names, and the API and job files take them under these names.
JOB_POLICY_FIELDS = (
    "retries",
    "retry_delay_ms",
    "retry_backoff",
    "retry_max_delay_ms",
    "retry_on",
    "catchup",
    "catchup_max",
    "catchup_window_ms",
    "notify",
    "notify_repeat",
    "late_after_ms",
    "max_duration_ms",
)


@dataclass(frozen=True, slots=True)
class PendingRetry:
    """A retry waiting for its time: a `pending` row with trigger `retry`, due at
    `scheduled_for`. Durable, so a restart neither loses nor doubles it."""

    run_id: int
    job_id: str
    scheduled_for: str
    attempt: int
    retry_of: int


@dataclass(frozen=True, slots=True)
class MissedFires:
    """Scheduled instants of one job that nothing ran on time (one gap): recorded as one
    `missed` row."""

    job_id: str
    count: int
    first: str
    last: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one execution produced; the executor and the session runner both return this."""

    status: RunStatus
    duration_ms: int
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    tokens: int | None = None
    result_meta: str | None = None


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Consecutive lines of one stream of a run's log, read at one instant. `seq` orders the
    chunks of a run; `data` holds whole lines, each ending with a newline, as the child wrote
    them (bytes: whatever the child printed is kept, valid UTF-8 or not)."""

    seq: int
    stream: LogStream
    at: str
    data: bytes

    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")[:-1]


@dataclass(frozen=True, slots=True)
class RunLogWrite:
    """What one flush writes for one run: new chunks (a chunk with a `seq` already stored
    replaces it), stored chunks to delete (`seq` in `drop`, a half-open range: the middle
    of a log past its cap, or tail chunks held back; deleted before the chunks are written,
    so a chunk of the write inside the range stays), and the run's output tails so far
    (None: unchanged)."""

    run_id: int
    chunks: tuple[LogChunk, ...] = ()
    drop: tuple[int, int] | None = None
    tails: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class OpenRun:
    """A run still `pending` or `running` in the store, with the process it started (None
    until one was recorded): what a start needs to find a group a dead runner left behind.
    `process_started` is the process's start time in clock ticks since boot."""

    id: int
    job_id: str
    status: RunStatus
    pid: int | None
    pgid: int | None
    process_started: int | None


class JobExistsError(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job '{job_id}' already exists")
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """What the scheduler needs of an enabled job to place it on its heap."""

    id: str
    schedule: str
    updated_at: str
    timezone: str | None = None  # None: the runner's zone


def format_instant(moment: datetime) -> str:
    """The one stored and served form of an instant: ISO 8601 UTC, milliseconds, `Z`.

    Fixed width, so text order is time order and range comparisons in SQL are correct.
    """
    if moment.tzinfo is None:
        raise ValueError("format_instant needs an aware datetime")
    u = moment.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
