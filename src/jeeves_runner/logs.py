"""structlog set-up: JSON lines to a file or stdout; readable lines on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}


# The level in force; SIGHUP may change it while loggers are cached, so it is checked by a
# processor rather than baked into the bound logger class.
_threshold = {"level": logging.INFO}


def set_log_level(level: str) -> None:
    _threshold["level"] = _LEVELS[level]


def _level_gate(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    if _METHOD_LEVELS.get(method, logging.INFO) < _threshold["level"]:
        raise structlog.DropEvent
    return event


_METHOD_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def configure_logging(level: str = "info", file: str | None = None) -> TextIO:
    """Configure structlog once for the process; returns the stream written to."""
    set_log_level(level)
    stream: TextIO
    if file:
        from pathlib import Path

        from jeeves_runner.files import private_folder

        private_folder(Path(file).parent)
        stream = open(file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the process
    else:
        stream = sys.stdout
    pretty = not file and stream.isatty()
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if pretty
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            _level_gate,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    return stream
