"""Fixtures of the ambassadors integration tests; test modules load them with
``pytest_plugins = ["tests.integration.ambassadors_fixtures"]``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping

import nats
import pytest
from nats.aio.client import Client as NatsClient
from pymongo import AsyncMongoClient

from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from stack.mongo import MongoServer
from stack.nats import NatsServer
from tests.conftest import ServiceProcessFactory
from tests.integration.ambassadors_harness import (
    REQUEST_TIMEOUT,
    Ambassadors,
    AmbassadorsFactory,
    Document,
    service_env,
    stream_last_seq,
    wait_for_log,
)


@pytest.fixture
async def start_ambassadors(
    service_process: ServiceProcessFactory,
    nats_server: NatsServer,
    mongo_server: MongoServer,
) -> AsyncIterator[AmbassadorsFactory]:
    """Start the ambassadors service on a fresh database; returns the harness."""

    async def start(
        extra_env: Mapping[str, str] | None = None,
        *,
        database: str | None = None,
        replicas: int = 1,
    ) -> Ambassadors:
        name = database or f"amb_{uuid.uuid4().hex[:8]}"
        nc = await nats.connect(nats_server.url)
        connections.append(nc)
        # Read before the service starts: the demo import publishes during start-up.
        first_seq = await stream_last_seq(nc.jetstream()) + 1
        processes = []
        for _ in range(replicas):
            process = service_process("ambassadors", service_env(name, extra_env))
            # The health probe is answered by any replica: wait for this one's own word.
            wait_for_log(process, "service ready")
            processes.append(process)
        settings = ClientSettings(
            _env_file=None, nats_url=nats_server.url, request_timeout_seconds=REQUEST_TIMEOUT
        )
        client = ServiceClient(settings, user="tests")
        await client.connect()
        clients.append(client)
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)
        mongos.append(mongo)
        return Ambassadors(
            processes=processes,
            database=name,
            client=client,
            nc=nc,
            mongo=mongo,
            first_seq=first_seq,
        )

    connections: list[NatsClient] = []
    clients: list[ServiceClient] = []
    mongos: list[AsyncMongoClient[Document]] = []
    yield start
    for client in clients:
        await client.close()
    for nc in connections:
        await nc.close()
    for mongo in mongos:
        await mongo.close()


@pytest.fixture
async def ambassadors(start_ambassadors: AmbassadorsFactory) -> Ambassadors:
    """The ambassadors service on its own fresh database, demo import off."""
    return await start_ambassadors()
