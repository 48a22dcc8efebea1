"""The kit's in-memory unit of work, for handler unit tests (tests only: it needs mongomock,
a development dependency).

:class:`ServiceHarness` runs a service's real handlers the way the runtime runs them: a
request goes through the same endpoint adapter (validation, actor, audit, structured
errors, the reply encoded and decoded), an event through the same inbox and guards, each
in a unit of work. Only the database is in memory (mongomock behind pymongo's async API),
and a unit that fails leaves it as it was. What the units emitted is in ``emitted``, in
commit order; what they would have published waits in no outbox.

Integration tests run the same services against real servers; this is for the many cases
a handler decides, fast.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import mongomock
import mongomock.collection
from nats.js import JetStreamContext
from nats.js.errors import ObjectNotFoundError
from pydantic import BaseModel
from pymongo import DeleteMany, UpdateMany, UpdateOne
from pymongo.errors import DuplicateKeyError

from contracts.endpoints import ACTOR_HEADER, Endpoint
from contracts.envelope import Event
from contracts.errors import ServiceError
from contracts.jobs import JobEndpoint, JobState, JobView
from services.runtime import audit, jobs
from services.runtime.mongo import DatabaseT
from services.runtime.rpc import decode_reply
from services.runtime.service import Bucket, Service
from services.runtime.settings import ServiceSettings
from services.runtime.transactions import DUPLICATE_KEY_ATTEMPTS, Transactions, Work
from services.runtime.unit_of_work import (
    Applied,
    CommandContext,
    Reading,
    UnitOfWork,
    current_command,
    run_callbacks,
)

T = TypeVar("T")
C = TypeVar("C")
E = TypeVar("E", bound=Event)
Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
Report = TypeVar("Report", bound=BaseModel)


# ---------------------------------------------------------------- pymongo's async API, in memory


def _max_with_null_first(doc: Any, field: str, value: Any) -> None:
    if isinstance(doc, dict) and (doc.get(field) is None or value > doc[field]):
        doc[field] = value


# mongomock's ``$max`` compares with Python's ``max``, which fails on a stored None, where
# MongoDB orders null before anything (the fan-out moves its cursor with ``$max`` from the
# None a new issue has): it answers as MongoDB does.
mongomock.collection._updaters["$max"] = _max_with_null_first


class _Cursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, key: Any, direction: Any = None) -> _Cursor:
        self._cursor = (
            self._cursor.sort(key, direction) if direction is not None else self._cursor.sort(key)
        )
        return self

    def skip(self, count: int) -> _Cursor:
        self._cursor = self._cursor.skip(count)
        return self

    def limit(self, count: int) -> _Cursor:
        self._cursor = self._cursor.limit(count)
        return self

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for doc in self._cursor:
            yield doc

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        found = list(self._cursor)
        return found if length is None else found[:length]


def _without_session(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.pop("session", None)
    return kwargs


class _Collection:
    """The subset of AsyncCollection the services use, on a mongomock collection."""

    def __init__(self, collection: Any) -> None:
        self._c = collection
        self.name: str = collection.name

    def find(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(self._c.find(*args, **_without_session(kwargs)))

    async def aggregate(self, pipeline: Sequence[Any], **kwargs: Any) -> _Cursor:
        return _Cursor(self._c.aggregate(list(pipeline), **_without_session(kwargs)))

    async def bulk_write(self, requests: Sequence[Any], **kwargs: Any) -> Any:
        # mongomock's bulk_write does not take what pymongo's request objects hand it
        # (their ``sort``): each request is applied on its own, as the server would.
        matched = modified = deleted = 0
        for request in requests:
            if isinstance(request, DeleteMany):
                deleted += self._c.delete_many(request._filter).deleted_count
                continue
            many = isinstance(request, UpdateMany)
            update = self._c.update_many if many else self._c.update_one
            if not isinstance(request, UpdateOne | UpdateMany):
                raise NotImplementedError(type(request).__name__)
            result = update(request._filter, request._doc, upsert=bool(request._upsert))
            matched += result.matched_count
            modified += result.modified_count
        return SimpleNamespace(
            matched_count=matched, modified_count=modified, deleted_count=deleted
        )

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        # mongomock has no partial indexes: the services' are "unique among documents that
        # have the field", which a sparse index is too.
        if kwargs.pop("partialFilterExpression", None) is not None:
            kwargs["sparse"] = True
        name: str = self._c.create_index(keys, **kwargs)
        return name

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._c, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **_without_session(kwargs))

        return call


class MemoryDatabase:
    """A database in memory, answering pymongo's async API as far as the services use it."""

    def __init__(self, name: str = "test") -> None:
        self._client: Any = mongomock.MongoClient(tz_aware=True)
        self._db: Any = self._client[name]
        self.name = name

    def __getitem__(self, name: str) -> _Collection:
        return _Collection(self._db[name])

    def __getattr__(self, name: str) -> _Collection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    async def command(self, name: str, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
        if name != "ping":
            raise NotImplementedError(name)
        return {"ok": 1}

    def _collections(self) -> dict[str, Any]:
        # mongomock has no public way to copy a database's contents: its store's are used.
        collections: dict[str, Any] = self._client._store[self.name]._collections
        return collections

    def snapshot(self) -> dict[str, Any]:
        return {name: copy.deepcopy(c._documents) for name, c in self._collections().items()}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        for name, collection in self._collections().items():
            kept = snapshot.get(name)
            empty = type(collection._documents)()
            collection._documents = copy.deepcopy(kept) if kept is not None else empty

    async def list_collection_names(self) -> list[str]:
        names: list[str] = self._db.list_collection_names()
        return names

    def add(self, collection: str, *documents: dict[str, Any]) -> None:
        """Store ``documents`` as they are (a test's starting state)."""
        self._db[collection].insert_many([dict(d) for d in documents])

    def documents(self, collection: str) -> list[dict[str, Any]]:
        """Everything in ``collection``, for assertions."""
        found: list[dict[str, Any]] = list(self._db[collection].find({}))
        return found


# ---------------------------------------------------------------- the clock


class TestClock:
    """A clock a test sets and moves; starts at ``start``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or datetime(2027, 1, 15, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def now(self) -> datetime:
        return self.at

    def travel(self, by: timedelta | None = None, *, to: datetime | None = None) -> None:
        self.at = to if to is not None else self.at + (by or timedelta())


# ---------------------------------------------------------------- units of work, in memory


class MemoryTransactions:
    """What ``services.runtime.transactions.Transactions`` does, on a MemoryDatabase: a unit
    that raises leaves no trace; a unique key clash reruns it; its events are kept."""

    def __init__(self, service: str, db: MemoryDatabase, clock: Callable[[], datetime]) -> None:
        self.service = service
        self._db = db
        self._clock = clock
        self.emitted: list[Event] = []

    @property
    def database(self) -> DatabaseT:
        return cast(DatabaseT, self._db)

    def reading(self) -> Reading:
        return Reading(self.database, self._clock())

    async def run(
        self,
        work: Work[T],
        *,
        name: str,
        cause: Event | None = None,
        audited: BaseModel | None = None,
    ) -> T:
        command = current_command.get()
        for attempt in range(1, DUPLICATE_KEY_ATTEMPTS + 1):
            before = self._db.snapshot()
            uow = UnitOfWork(
                self.database,
                None,
                now=self._clock(),
                attempt=attempt,
                cause=cause,
                command=command,
            )
            try:
                result = await work(uow)
                if audited is not None and command is not None:
                    doc = audit.committed(self.service, command, audited, result, uow.now)
                    await audit.write(self.database, doc)
            except DuplicateKeyError:
                self._db.restore(before)
                if attempt == DUPLICATE_KEY_ATTEMPTS:
                    raise
                continue
            except BaseException:
                self._db.restore(before)
                raise
            self.emitted.extend(uow.events)
            await run_callbacks(uow.callbacks, _raise)
            return result
        raise AssertionError("unreachable")

    async def record_outcome(
        self, command: CommandContext, request: BaseModel, reply: BaseModel | None, outcome: str
    ) -> None:
        doc = audit.record(
            self.service,
            command,
            at=self._clock(),
            outcome=outcome,
            targets=audit.targets_of(request, reply),
        )
        await audit.write_outside(self.database, doc)


def _raise(message: str, **_fields: Any) -> None:
    # An after-commit callback that fails in a unit test is a failed test, not a log line.
    raise AssertionError(message)


# ---------------------------------------------------------------- a service, in memory


class ServiceHarness:
    """A service built by its own ``build``, its handlers run in memory."""

    def __init__(self, service: Service, clock: TestClock) -> None:
        self.service = service
        self.transactions = cast(MemoryTransactions, service.transactions)
        self.clock = clock

    @classmethod
    async def start(
        cls,
        build: Callable[..., tuple[Service, C]],
        settings: ServiceSettings,
        clock: TestClock | None = None,
    ) -> tuple[ServiceHarness, C]:
        """The service ``build(settings, service_factory)`` makes, on a database and object
        stores in memory; its start-up hooks (indexes, migrations) have run."""
        test_clock = clock or TestClock()

        def in_memory(
            name: str,
            settings: ServiceSettings,
            *,
            produces: Sequence[type[Event]] = (),
            buckets: Sequence[str | Bucket] = (),
        ) -> Service:
            db = MemoryDatabase(f"test_{name}_{uuid.uuid4().hex[:6]}")
            transactions = MemoryTransactions(name, db, test_clock)
            service = Service(
                name,
                settings,
                produces=produces,
                buckets=buckets,
                transactions=cast(Transactions, transactions),
                database=transactions.database,
                jetstream=cast(JetStreamContext, MemoryObjectStores()),
            )
            service.clock = test_clock
            return service

        service, ctx = build(settings, in_memory)
        for hook in service.startup_hooks:
            await hook()
        return cls(service, test_clock), ctx

    @property
    def db(self) -> MemoryDatabase:
        return cast(MemoryDatabase, self.service.db)

    @property
    def buckets(self) -> MemoryObjectStores:
        return cast(MemoryObjectStores, self.service.js)

    @property
    def emitted(self) -> list[Event]:
        return self.transactions.emitted

    def emitted_of(self, kind: type[E]) -> list[E]:
        return [e for e in self.emitted if isinstance(e, kind)]

    async def call(
        self,
        endpoint: Endpoint[Req, Rep],
        request: Req | Mapping[str, Any],
        *,
        actor: str | None = "operator:tests",
    ) -> Rep:
        """What a client gets for ``request``: the reply model, or the ServiceError."""
        if isinstance(request, BaseModel):
            body = request.model_dump_json(exclude_unset=True).encode()
        else:
            body = json.dumps(request, default=str).encode()
        headers = {ACTOR_HEADER: actor} if actor else {}
        data = await self.service.answer(endpoint, None, body, headers)
        return endpoint.reply.model_validate(decode_reply(data))

    async def fails(
        self,
        endpoint: Endpoint[Req, Rep],
        request: Req | Mapping[str, Any],
        *,
        actor: str | None = "operator:tests",
    ) -> ServiceError:
        """The structured error ``request`` is answered with (the test fails if it works)."""
        try:
            await self.call(endpoint, request, actor=actor)
        except ServiceError as exc:
            return exc
        raise AssertionError(f"{endpoint.subject} did not fail")

    async def deliver(self, *events: Event) -> list[Applied]:
        """Hand events to the service's consumer, as JetStream would; what became of each."""
        return [await self.service.deliver(event) for event in events]

    async def report(self, endpoint: JobEndpoint[Any, Report], job: JobView) -> Report:
        """The report ``job`` ended with (a runner job is run to its end here first; a
        driven one must have been driven by the test); the test fails if it has not."""
        await self.service.run_jobs_now()
        done = await jobs.load(self.service.reading(), job.id)
        if done.state == JobState.FAILED:
            assert done.error is not None
            raise ServiceError.from_error(done.error)
        assert done.state == JobState.DONE, f"{job.id} is still {done.state.value}"
        return endpoint.report.model_validate(done.report)

    def audit_trail(self) -> list[dict[str, Any]]:
        """The audit records, oldest first."""
        return sorted(self.db.documents(audit.COLLECTION), key=lambda d: d["at"])


# ---------------------------------------------------------------- Object Store buckets, in memory


@dataclass
class _Info:
    name: str
    size: int
    digest: str


@dataclass
class _Object:
    info: _Info
    data: bytes


class MemoryBucket:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, name: str, data: bytes) -> _Info:
        self.objects[name] = bytes(data)
        return self._info(name)

    async def get(self, name: str) -> _Object:
        return _Object(self._info(name), self.objects[self._known(name)])

    async def get_info(self, name: str) -> _Info:
        return self._info(name)

    async def delete(self, name: str) -> None:
        del self.objects[self._known(name)]

    def _known(self, name: str) -> str:
        if name not in self.objects:
            raise ObjectNotFoundError
        return name

    def _info(self, name: str) -> _Info:
        data = self.objects[self._known(name)]
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        return _Info(name, len(data), f"SHA-256={digest}")


class MemoryObjectStores:
    """Stands in for the JetStream context where a handler only uses Object Store buckets."""

    def __init__(self) -> None:
        self.buckets: dict[str, MemoryBucket] = {}

    async def object_store(self, bucket: str) -> MemoryBucket:
        return self.buckets.setdefault(bucket, MemoryBucket())
