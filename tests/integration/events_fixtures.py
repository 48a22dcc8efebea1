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
from tests.integration.events_harness import Document, Events


@pytest.fixture
async def events(
    start_ambassadors: AmbassadorsFactory,
    service_process: ServiceProcessFactory,
    mongo_server: MongoServer,
    tmp_path: Path,
) -> AsyncIterator[Events]:
    """The events service on a fresh database, next to the ambassadors service."""
    ambassadors = await start_ambassadors()
    database = f"ev_{uuid.uuid4().hex[:8]}"
    clock_file = tmp_path / "clock"
    js = ambassadors.js
    try:
        first_seq = int((await js.stream_info(STREAM)).state.last_seq) + 1
    except NotFoundError:
        first_seq = 1
    process = service_process(
        "events",
        {
            "SAMSKAB_MONGO_DATABASE": database,
            "SAMSKAB_LOG_LEVEL": "INFO",
            "SAMSKAB_CLOCK_FILE": str(clock_file),
            "SAMSKAB_EVENTS_POLL_SECONDS": "0.3",
            "SAMSKAB_EVENTS_FANOUT_BATCH": "7",
        },
    )
    wait_for_log(process, "service ready")
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)
    try:
        yield Events(process, ambassadors, database, mongo[database], clock_file, first_seq)
    finally:
        await mongo.close()
