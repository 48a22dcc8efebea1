"""Fixtures every chaos test uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.smtp_sink import SmtpSink
from tests.support.stack import start_mongo, start_nats, start_smtp_sink


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server for this test alone: its streams hold only its events, and it may be
    killed."""
    server = start_nats(tmp_path / "own-nats")
    yield server
    server.stop()


@pytest.fixture
def own_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    """An SMTP sink for this test alone: it holds only this test's mail."""
    sink = start_smtp_sink(tmp_path / "own-sink")
    yield sink
    sink.stop()


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[MongoServer]:
    """A SecantusDB for this test alone. A process killed mid-transaction leaves the
    transaction open on the server until it expires (60 s), holding its locks and slowing
    the server: on the session's shared server that would reach into the next tests."""
    server = start_mongo(tmp_path / "own-mongo")
    yield server
    server.stop()
