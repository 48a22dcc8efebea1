"""Each service's own MongoDB database and the one way to run a transaction on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

T = TypeVar("T")
Document = dict[str, Any]
Session = AsyncClientSession


def connect(url: str, app_name: str) -> AsyncMongoClient[Document]:
    # tz_aware: every datetime we store and read is UTC and must stay comparable.
    return AsyncMongoClient(url, appname=app_name, tz_aware=True, serverSelectionTimeoutMS=10_000)


async def in_transaction(
    client: AsyncMongoClient[Document],
    work: Callable[[Session], Awaitable[T]],
) -> T:
    """Run ``work`` in one transaction; pymongo retries it on transient errors.

    Majority write concern: an acknowledged command survives a primary failover.
    """
    async with client.start_session() as session:
        result: T = await session.with_transaction(
            work,
            read_concern=ReadConcern("snapshot"),
            write_concern=WriteConcern("majority"),
        )
        return result


DatabaseT = AsyncDatabase[Document]
