"""jeeves-runner: a job runner with cron schedules, run history, state and queues in SQLite."""

__version__ = "0.1.0"
