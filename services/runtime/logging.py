"""Structured logging: JSON lines in containers, readable key=value locally.

structlog renders our own log calls; the standard library's records (faststream, pymongo)
go through the same renderer, so a service writes one log in one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(log_format: str = "console", level: str = "INFO", service: str = "") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Library chatter stays out unless something is wrong.
    for noisy in ("pymongo", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def app_logger() -> logging.Logger:
    """The standard-library logger handed to faststream, rendered like the rest."""
    # Not "faststream": that logger comes with its own coloured handler.
    return logging.getLogger("samskab.broker")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
