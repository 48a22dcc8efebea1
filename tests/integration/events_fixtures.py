"""Fixtures of the events integration tests; test modules load them (and the ambassadors
fixtures they build on) with ``pytest_plugins``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError
from pymongo import AsyncMongoClient

from contracts.events import STREAM
from stack.mongo import MongoServer
from tests.conftest import ServiceProcessFactory
from tests.integration.ambassadors_harness import AmbassadorsFactory, wait_for_log
from tests.integration.events_harness import Document, Events, EventsFactory


@pytest.fixture
async def start_events(
    start_ambassadors: AmbassadorsFactory,
    service_process: ServiceProcessFactory,
    mongo_server: MongoServer,
    tmp_path: Path,
) -> AsyncIterator[EventsFactory]:
    """Start the events service next to the ambassadors service, on a fresh database or on
    ``database`` (which a test may have filled as an older release left it)."""
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)

    async def start(*, database: str | None = None) -> Events:
        ambassadors = await start_ambassadors()
        name = database or f"ev_{uuid.uuid4().hex[:8]}"
        clock_file = tmp_path / "clock"
        js = ambassadors.js
        try:
            first_seq = int((await js.stream_info(STREAM)).state.last_seq) + 1
        except NotFoundError:
            first_seq = 1
        process = service_process(
            "events",
            {
                "SAMSKAB_MONGO_DATABASE": name,
                "SAMSKAB_LOG_LEVEL": "INFO",
                "SAMSKAB_CLOCK_FILE": str(clock_file),
                "SAMSKAB_EVENTS_POLL_SECONDS": "0.3",
                "SAMSKAB_EVENTS_FANOUT_BATCH": "7",
            },
        )
        wait_for_log(process, "service ready")
        return Events(process, ambassadors, name, mongo[name], clock_file, first_seq)

    try:
        yield start
    finally:
        await mongo.close()


@pytest.fixture
async def events(start_events: EventsFactory) -> Events:
    """The events service on a fresh database, next to the ambassadors service."""
    return await start_events()
