"""Structured logging: JSON lines in containers, readable key=value locally."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(log_format: str = "console", level: str = "INFO", service: str = "") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    # Libraries (faststream, pymongo) log through the standard library; keep them quiet and
    # on the same stream so one service has one log.
    logging.basicConfig(level=max(logging.WARNING, logging.getLevelName(level.upper())))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
