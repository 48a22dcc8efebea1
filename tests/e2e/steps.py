"""Helpers the end-to-end journeys share: ordered steps, waiting, and reading CLI errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.e2e.conftest import CliResult, StackRun

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


def received_line(email: str) -> str:
    """What the CLI says to every self sign-up and subscription, known address or not."""
    return f"received: if {email} can be used, a mail is on its way to it"


def ambassador_by_email(stack: StackRun, email: str) -> dict[str, Any]:
    """The ambassador with this address, as staff find them: in the list."""
    page = stack.cli("ambassadors", "list", "--limit", "1000", "--json").ok().json()
    [found] = [a for a in page["items"] if a["email"].casefold() == email.casefold()]
    return dict(found)


def subscriber_by_email(stack: StackRun, email: str) -> dict[str, Any]:
    """The subscriber with this address, as staff find them: in the list."""
    page = stack.cli("newsletter", "subscribers", "--limit", "1000", "--json").ok().json()
    [found] = [s for s in page["items"] if (s["email"] or "").casefold() == email.casefold()]
    return dict(found)


def schedule_when_known(stack: StackRun, *args: str) -> dict[str, Any]:
    """``events schedule ARGS --json``, again while the events service has not yet taken in
    a just activated invitee (it learns of them from the ambassadors' events)."""

    def scheduled() -> dict[str, Any] | None:
        result = stack.cli("events", "schedule", *args, "--json")
        if result.returncode != 0 and "not active ambassadors" in result.stdout + result.stderr:
            return None
        meeting: dict[str, Any] = result.ok().json()
        return meeting

    return poll(scheduled, timeout=30, interval=0.5, what="the invitees known to events")
