"""Each service's own MongoDB database and the one way to run a transaction on it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, DeleteMany, ReturnDocument, UpdateMany
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.write_concern import WriteConcern

from services.runtime.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")
Document = dict[str, Any]
Session = AsyncClientSession

DUPLICATE_KEY = 11000

# SecantusDB tests each candidate document against every value of an ``$in`` in turn, so
# one ``$in`` of n ids costs it n² comparisons: 200 ids took 65 ms, in chunks of 25-50 about
# 28 ms. (MongoDB looks values up in a set; chunks cost it nothing measurable.)
IN_CHUNK = 32


def in_chunks(values: Iterable[T], size: int = IN_CHUNK) -> list[list[T]]:
    """``values`` in lists of at most ``size``, in order, for one ``$in`` each."""
    items = list(values)
    return [items[start : start + size] for start in range(0, len(items), size)]


def _in_filters(
    ids: Iterable[Any], criteria: Mapping[str, Any] | None, field: str
) -> list[Document]:
    # The ids first: SecantusDB looks up the first clause it has an index for.
    return [{field: {"$in": chunk}} | dict(criteria or {}) for chunk in in_chunks(ids)]


async def find_in(
    collection: AsyncCollection[Document],
    ids: Iterable[Any],
    criteria: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
    *,
    field: str = "_id",
    session: Session | None = None,
) -> list[Document]:
    """The documents whose ``field`` is one of ``ids`` (and that match ``criteria``): an
    ``$in`` per chunk of ids, one after another (a session runs one operation at a time)."""
    found: list[Document] = []
    for where in _in_filters(ids, criteria, field):
        found += await collection.find(where, projection, session=session).to_list()
    return found


async def update_in(
    collection: AsyncCollection[Document],
    ids: Iterable[Any],
    criteria: Mapping[str, Any] | None,
    update: Mapping[str, Any],
    *,
    field: str = "_id",
    session: Session | None = None,
) -> int:
    """``update`` every document whose ``field`` is one of ``ids`` and that matches
    ``criteria``, one ``$in`` per chunk, all in one round trip; returns how many matched."""
    filters = _in_filters(ids, criteria, field)
    if len(filters) <= 1:
        # One chunk (the usual case): a plain statement, not a bulk write.
        if not filters:
            return 0
        result = await collection.update_many(filters[0], dict(update), session=session)
        return result.matched_count
    ops = [UpdateMany(where, dict(update)) for where in filters]
    return (await collection.bulk_write(ops, ordered=False, session=session)).matched_count


async def delete_in(
    collection: AsyncCollection[Document],
    ids: Iterable[Any],
    criteria: Mapping[str, Any] | None = None,
    *,
    field: str = "_id",
    session: Session | None = None,
) -> int:
    """Delete every document whose ``field`` is one of ``ids`` and that matches
    ``criteria``, one ``$in`` per chunk, all in one round trip; returns how many went."""
    filters = _in_filters(ids, criteria, field)
    if len(filters) <= 1:
        if not filters:
            return 0
        return (await collection.delete_many(filters[0], session=session)).deleted_count
    ops = [DeleteMany(where) for where in filters]
    return (await collection.bulk_write(ops, ordered=False, session=session)).deleted_count


async def insert_new(collection: AsyncCollection[Document], docs: list[Document]) -> set[int]:
    """Insert ``docs`` (unordered, outside any transaction); returns the positions of those
    whose ``_id`` (or other unique key) existed already. Any other write error is raised."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        details = dict(exc.details)
        errors = details.get("writeErrors", [])
        if details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return {int(e["index"]) for e in errors}
    return set()


async def drop_indexes(collection: AsyncCollection[Document], names: Iterable[str]) -> set[str]:
    """Drop those of ``names`` the collection has (an older release's indexes); returns
    which it had. One listing, rather than a failing drop per name on every start."""
    present = set(names) & set(await collection.index_information())
    for name in present:
        await collection.drop_index(name)
    return present


class DatabaseOwnedByAnother(RuntimeError):
    """The configured database already belongs to another service."""


async def claim_database(db: AsyncDatabase[Document], service: str) -> None:
    """Make ``db`` this service's, or refuse to run if another service's data is in it.

    Every service has an ``outbox``, an ``inbox`` and dead letters: two services on one
    database (a shared ``SAMSKAB_MONGO_DATABASE``) would publish and skip each other's
    events, so a misconfiguration stops the start instead of mixing their data.
    """
    try:
        owner = await db.service_owner.find_one_and_update(
            {"_id": "owner"},
            {"$setOnInsert": {"service": service}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:  # another service's upsert came first: read its claim
        owner = await db.service_owner.find_one({"_id": "owner"})
    if owner is not None and owner.get("service") != service:
        raise DatabaseOwnedByAnother(
            f"database {db.name!r} belongs to the {owner.get('service')} service, not to "
            f"{service}: give each service its own database (leave SAMSKAB_MONGO_DATABASE "
            "empty for samskab_<service>)"
        )


def connect(url: str, app_name: str) -> AsyncMongoClient[Document]:
    # tz_aware: every datetime we store and read is UTC and must stay comparable.
    return AsyncMongoClient(url, appname=app_name, tz_aware=True, serverSelectionTimeoutMS=10_000)


async def in_transaction(
    client: AsyncMongoClient[Document],
    work: Callable[[Session], Awaitable[T]],
) -> T:
    """Run ``work`` in one transaction; pymongo reruns it on transient errors.

    The one primitive under ``services.runtime.transactions`` (where a unit of work is run:
    services never call this). Majority write concern: an acknowledged command survives a
    primary failover. The read concern stays the default: a transaction reads one
    consistent snapshot either way, and "snapshot" (majority-committed reads) cost about
    half again per transaction here while unique indexes and write conflicts already guard
    what our handlers check.
    """
    runs = 0
    started = time.monotonic()

    async def logged(session: Session) -> T:
        # pymongo retries a transaction that hit a write conflict silently, for up to two
        # minutes: after a kill -9 mid-transaction the server holds its locks until the
        # transaction expires (60 s), and without this line a stall shows nothing at all.
        nonlocal runs
        runs += 1
        if runs in (2, 5) or runs % 20 == 0:
            log.warning(
                "transaction retried",
                attempt=runs,
                seconds=round(time.monotonic() - started, 1),
                work=getattr(work, "__qualname__", repr(work)),
            )
        return await work(session)

    async with client.start_session() as session:
        result: T = await session.with_transaction(logged, write_concern=WriteConcern("majority"))
        return result


DatabaseT = AsyncDatabase[Document]
