"""Helpers the end-to-end journeys share: ordered steps, waiting, and reading CLI errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.e2e.conftest import CliResult

T = TypeVar("T")


def need(value: T | None, what: str) -> T:
    if value is None:
        pytest.skip(f"an earlier step did not provide {what}")
    return value


def poll(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25) -> T:
    """``probe()`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not so after {timeout:g} s")
        time.sleep(interval)


def one_line_error(result: CliResult) -> str:
    """A failing command's human error: non-zero, one ``error: ...`` line, no traceback."""
    assert result.returncode != 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.describe()
    return lines[0]


def whitespace_free(text: str) -> str:
    return re.sub(r"\s+", "", text)
