"""One service process: its broker, database, outbox relay, consumers and endpoints.

A service module creates a :class:`Service`, registers its commands, queries and event
handlers with decorators, and exposes ``service.app``. Everything below is the same for
every service, so a service reads as its own domain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream import AckPolicy, FastStream
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.security import SASLPlaintext
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ValidationError
from pymongo import AsyncMongoClient

from contracts.envelope import Event
from contracts.errors import Error, ErrorCode
from services.runtime import dead_letters
from services.runtime.client import inbox_prefix
from services.runtime.inbox import already_processed, ensure_inbox_indexes, mark_processed
from services.runtime.logging import app_logger, configure_logging, get_logger
from services.runtime.mongo import (
    DatabaseT,
    Document,
    Session,
    claim_database,
    connect,
    in_transaction,
)
from services.runtime.outbox import OutboxRelay, add_to_outbox, ensure_outbox_indexes
from services.runtime.rpc import RequestHandler, answer, encode_error, encode_result
from services.runtime.settings import Settings, get_settings

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Event)
T = TypeVar("T")

EventHandler = Callable[[Any, Session], Awaitable[Sequence[Event] | None]]
Hook = Callable[[], Awaitable[None]]

# How long a MAX_DELIVERIES advisory waits before it is stored again after a failure.
DEAD_LETTER_RETRY_SECONDS = 5.0


def nats_security(settings: Settings) -> SASLPlaintext | None:
    if settings.nats_user is None:
        return None
    return SASLPlaintext(username=settings.nats_user, password=settings.nats_password or "")


def stream_of(subject: str) -> str:
    """Events of service ``x`` live on stream ``X``: ``ambassadors.v1.activated`` -> AMBASSADORS."""
    return subject.split(".", 1)[0].upper()


def document_payload(spec: Any, subject: str, model: type[BaseModel]) -> None:
    """Show ``model`` as the payload of an endpoint that itself takes raw bytes."""
    payload = model.model_json_schema()
    payload["title"] = f"{subject}:Message:Payload"
    base = type(spec)

    class Documented(base):  # type: ignore[valid-type,misc]
        __slots__ = ()

        def get_payloads(self) -> list[tuple[dict[str, Any], str]]:
            return [(payload, model.__name__)]

    spec.__class__ = Documented


@dataclass(frozen=True)
class Route:
    model: type[Event]
    handler: EventHandler


class Service:
    def __init__(
        self,
        name: str,
        *,
        produces: Sequence[type[Event]] = (),
        buckets: Sequence[str] = (),
        settings: Settings | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or get_settings()
        self.produces = tuple(produces)
        self.buckets = tuple(buckets)
        self.broker = NatsBroker(
            self.settings.nats_url,
            security=nats_security(self.settings),
            name=f"samskab-{name}",
            # NACK_ON_ERROR: faststream's NATS default (REJECT_ON_ERROR) terminates a message
            # whose handler raised, and it is lost.
            ack_policy=AckPolicy.NACK_ON_ERROR,
            inbox_prefix=inbox_prefix(name),
            logger=app_logger(),
            # Per-message "Received/Processed" lines only when debugging.
            log_level=logging.DEBUG,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
        )
        self.app = FastStream(
            self.broker,
            logger=app_logger(),
            on_startup=[self._on_startup],
            after_startup=[self._after_startup],
            on_shutdown=[self._on_shutdown],
            # After the broker stopped its subscribers: no handler runs on a closed client.
            after_shutdown=[self._after_shutdown],
        )
        self._mongo: AsyncMongoClient[Document] | None = None
        self._relay: OutboxRelay | None = None
        self.routes: dict[str, Route] = {}
        self._startup_hooks: list[Hook] = []
        self._shutdown_hooks: list[Hook] = []
        self._background: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started_at = time.time()
        self._answering = 0
        self._last_answered = 0.0
        self._subscribers_wired = False
        self._register_health()
        self._register_dead_letter_endpoints()
        for event_type in self.produces:
            # Declared for the AsyncAPI document only: events leave through the outbox.
            self.broker.publisher(
                event_type.subject,
                schema=event_type,
                title=event_type.subject,
                description=(event_type.__doc__ or "").strip() or None,
            )

    # ------------------------------------------------------------------ wiring

    @property
    def db(self) -> DatabaseT:
        if self._mongo is None:
            raise RuntimeError("the service has not started")
        return self._mongo[self.settings.database_for(self.name)]

    @property
    def mongo(self) -> AsyncMongoClient[Document]:
        if self._mongo is None:
            raise RuntimeError("the service has not started")
        return self._mongo

    @property
    def js(self) -> JetStreamContext:
        return self.broker.connection.jetstream()

    def endpoint(
        self, subject: str, model: type[M], description: str | None = None
    ) -> Callable[[RequestHandler[M]], RequestHandler[M]]:
        """Answer commands or queries on ``subject``; replicas share them (queue group)."""

        def register(handler: RequestHandler[M]) -> RequestHandler[M]:
            async def reply(msg: NatsMessage) -> bytes:
                self._answering += 1
                try:
                    return await answer(model, handler, msg.body)
                finally:
                    self._answering -= 1
                    self._last_answered = time.monotonic()

            reply.__name__ = handler.__name__
            subscriber = self.broker.subscriber(
                subject,
                queue=self.name,
                # Requests are independent: one slow transaction must not queue the rest.
                max_workers=self.settings.endpoint_concurrency,
                title=subject,
                description=description or (handler.__doc__ or "").strip() or None,
            )
            subscriber(reply)
            # The endpoint takes raw bytes so that a bad request gets a structured error
            # reply; the AsyncAPI document should still show the request's real schema.
            document_payload(subscriber.specification, subject, model)
            return handler

        return register

    def on_event(self, event_type: type[E]) -> Callable[[EventHandler], EventHandler]:
        """Apply ``event_type`` exactly once: inbox-guarded, in one transaction with the outbox."""

        def register(handler: EventHandler) -> EventHandler:
            self.routes[event_type.subject] = Route(event_type, handler)
            return handler

        return register

    def quiet_for(self, seconds: float) -> bool:
        """No request answered now nor in the last ``seconds``: background work that can
        wait (rendering, sweeps) yields to people waiting for an answer."""
        return self._answering == 0 and time.monotonic() - self._last_answered >= seconds

    def on_startup(self, hook: Hook) -> Hook:
        """Runs after the database and NATS are ready, before any message is taken."""
        self._startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Runs when the service stops, after its background tasks were cancelled."""
        self._shutdown_hooks.append(hook)
        return hook

    def background(self, task: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """A long-running task started with the service and cancelled at shutdown."""
        self._background.append(task)
        return task

    # ------------------------------------------------------------------ writing

    async def transaction(
        self, work: Callable[[Session], Awaitable[tuple[T, Sequence[Event]]]]
    ) -> T:
        """Run ``work``; its state change and the events it returns commit together."""

        relay = self._relay
        written: list[dict[str, Any]] = []

        async def unit(session: Session) -> T:
            result, events = await work(session)
            # A retried transaction writes its entries again: keep the last attempt's.
            written[:] = await add_to_outbox(
                self.db, session, events, relay.claim() if relay is not None else None
            )
            return result

        # What a stalled transaction is, in the log (see in_transaction).
        unit.__qualname__ = getattr(work, "__qualname__", unit.__qualname__)
        result = await in_transaction(self.mongo, unit)
        if relay is not None and written:
            relay.hand_over(written)
        return result

    # ------------------------------------------------------------------ consuming

    async def apply_event(self, subject: str, data: bytes) -> bool:
        """Apply one event through its handler unless this consumer already did; True if applied."""
        route = self.routes[subject]
        return await self._apply(route, route.model.model_validate_json(data))

    async def _apply(self, route: Route, event: Event) -> bool:
        consumer = self.name
        event_id = str(event.event_id)

        async def unit(session: Session) -> tuple[bool, Sequence[Event]]:
            if await already_processed(self.db, session, consumer, event_id):
                return False, ()
            produced = await route.handler(event, session) or ()
            await mark_processed(self.db, session, consumer, event_id)
            return True, produced

        unit.__qualname__ = f"applying {route.model.subject}"
        return await self.transaction(unit)

    async def _consume(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        stream, seq = meta.stream, meta.sequence.stream
        route = self.routes.get(raw.subject)
        if route is None:
            await msg.ack()
            return
        try:
            event = route.model.model_validate_json(raw.data)
        except ValidationError as exc:
            # It will never parse: store it as a dead letter now instead of retrying.
            await dead_letters.store_poison(
                self.db,
                stream=stream,
                seq=seq,
                consumer=self.name,
                subject=raw.subject,
                payload=raw.data,
                reason=f"invalid event: {exc}",
            )
            log.warning("invalid event dead-lettered", subject=raw.subject, seq=seq)
            await msg.reject()
            return
        try:
            # A ValidationError raised in here is the handler's, not a bad event: retried.
            await self._apply(route, event)
        except Exception as exc:
            log.exception("event handler failed", subject=raw.subject, seq=seq)
            try:
                await dead_letters.record_failure(
                    self.db, self.name, stream, seq, f"{type(exc).__name__}: {exc}"
                )
            finally:
                await msg.nack(delay=self._backoff(meta.num_delivered))
            return
        await msg.ack()

    def _backoff(self, delivered: int) -> float:
        if delivered >= self.settings.consumer_max_deliver:
            # The last delivery: JetStream sends MAX_DELIVERIES only when it would redeliver,
            # so a delay here would only hold the dead letter back.
            return 0.0
        delays = self.settings.consumer_backoff_seconds or [1.0]
        return delays[min(delivered, len(delays)) - 1]

    async def _dead_letter(self, msg: NatsMessage) -> None:
        try:
            advisory = json.loads(msg.body)
            stream, seq = str(advisory["stream"]), int(advisory["stream_seq"])
        except (ValueError, TypeError, KeyError):
            log.error("unreadable MAX_DELIVERIES advisory dropped", body=msg.body[:500])
            await msg.reject()
            return
        try:
            key = await dead_letters.store_dead_letter(self.db, self.js, advisory)
        except Exception:
            # Without a delay a lasting failure would redeliver the advisory in a hot loop.
            log.exception("storing a dead letter failed, retrying", stream=stream, seq=seq)
            await msg.nack(delay=DEAD_LETTER_RETRY_SECONDS)
            return
        log.error("event dead-lettered", id=key, stream=stream, seq=seq)
        await msg.ack()

    def _consumer_config(self, stream: str | None = None) -> ConsumerConfig:
        config = ConsumerConfig(
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=self.settings.consumer_max_deliver,
            ack_wait=self.settings.consumer_ack_wait_seconds,
            max_ack_pending=1000,
        )
        if stream is not None:
            config.name = config.durable_name = self.name
            config.filter_subject = f"{stream.lower()}.v1.>"
        return config

    def _consumed_streams(self) -> list[str]:
        return sorted({stream_of(subject) for subject in self.routes})

    def _wire_consumers(self) -> None:
        if self._subscribers_wired or not self.routes:
            return
        self._subscribers_wired = True
        for stream in self._consumed_streams():
            # One durable pull consumer per service per stream; replicas share it. One message
            # per fetch: faststream handles a fetched batch concurrently, and two events about
            # the same person must not race each other's transactions. (A failed event is
            # redelivered later, so order holds only while deliveries succeed.)
            self.broker.subscriber(
                f"{stream.lower()}.v1.>",
                stream=JStream(stream, declare=False),
                durable=self.name,
                inbox_prefix=f"{inbox_prefix(self.name)}.".encode(),
                pull_sub=PullSub(batch_size=1, timeout=5.0),
                config=self._consumer_config(),
                title=f"{self.name} consumes {stream}",
            )(self._consume)
        self.broker.subscriber(
            dead_letters.advisory_subject(self.name),
            stream=JStream(dead_letters.advisory_stream_name(self.name), declare=False),
            durable=self.name,
            inbox_prefix=f"{inbox_prefix(self.name)}.".encode(),
            pull_sub=PullSub(batch_size=10, timeout=1.0),
            config=ConsumerConfig(ack_policy=JsAckPolicy.EXPLICIT, max_deliver=-1),
            include_in_schema=False,
        )(self._dead_letter)

    # ------------------------------------------------------------------ lifecycle

    async def _on_startup(self) -> None:
        s = self.settings
        configure_logging(s.log_format, s.log_level, service=self.name)
        self._wire_consumers()
        self._mongo = connect(s.mongo_url, f"samskab-{self.name}")
        await claim_database(self.db, self.name)
        await ensure_outbox_indexes(self.db)
        await ensure_inbox_indexes(self.db)
        await dead_letters.ensure_dead_letter_indexes(self.db)
        await self.broker.connect()
        if self.produces:
            await self._ensure_own_stream()
        for bucket in self.buckets:
            await self._ensure_bucket(bucket)
        if self.routes:
            await dead_letters.ensure_advisory_stream(
                self.js, self.name, self.name, s.stream_replicas
            )
            for stream in self._consumed_streams():
                await self._wait_for_stream(stream)
                # Create or update: binding to an existing durable (what the subscriber does)
                # would keep the max_deliver and ack_wait it was first created with.
                await self.js.add_consumer(stream, self._consumer_config(stream))
        for hook in self._startup_hooks:
            await hook()
        self._relay = OutboxRelay(
            self.db,
            self.js,
            batch_size=s.outbox_batch_size,
            poll_seconds=s.outbox_poll_seconds,
            claim_timeout_seconds=s.outbox_claim_timeout_seconds,
        )
        log.info("service starting", nats=s.nats_url, database=s.database_for(self.name))

    async def _after_startup(self) -> None:
        assert self._relay is not None
        self._relay.start()
        for task in self._background:
            self._tasks.append(asyncio.create_task(self._keep_running(task)))
        log.info("service ready")

    async def _keep_running(self, task: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await task()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # The backoff grows with failures in a row, not over the whole uptime.
                failures = 1 if time.monotonic() - started > 300 else failures + 1
                log.exception("background task failed, restarting", task=task.__name__)
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))

    async def _on_shutdown(self) -> None:
        for running in self._tasks:
            running.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for hook in self._shutdown_hooks:
            await hook()
        # The relay stops while NATS is still connected, so its last publish can finish.
        if self._relay is not None:
            await self._relay.stop()

    async def _after_shutdown(self) -> None:
        if self._mongo is not None:
            await self._mongo.close()
        log.info("service stopped")

    async def _ensure_own_stream(self) -> None:
        s = self.settings
        name = stream_of(self.produces[0].subject)
        config = StreamConfig(
            name=name,
            subjects=[f"{self.name}.v1.>"],
            storage=StorageType.FILE,
            num_replicas=s.stream_replicas,
            max_age=s.stream_max_age_days * 24 * 3600,
            duplicate_window=s.stream_duplicate_window_hours * 3600,
        )
        try:
            await self.js.stream_info(name)
            await self.js.update_stream(config)
        except NotFoundError:
            await self.js.add_stream(config)

    async def _ensure_bucket(self, bucket: str) -> None:
        from nats.js.api import ObjectStoreConfig

        try:
            await self.js.object_store(bucket)
        except NotFoundError:
            await self.js.create_object_store(
                bucket,
                config=ObjectStoreConfig(
                    storage=StorageType.FILE, replicas=self.settings.stream_replicas
                ),
            )

    async def _wait_for_stream(self, stream: str) -> None:
        """A consumer cannot be created before the producing service declared its stream."""
        delay = 0.5
        while True:
            try:
                await self.js.stream_info(stream)
                return
            except NotFoundError:
                log.info("waiting for stream", stream=stream)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # ------------------------------------------------------------------ operator endpoints

    def _register_health(self) -> None:
        async def health(msg: NatsMessage) -> bytes:
            try:
                await self.mongo.admin.command("ping")
                pending = await self._relay.pending_count() if self._relay else None
            except Exception as exc:
                return encode_error(
                    Error(code=ErrorCode.SERVICE_UNAVAILABLE, message=f"database: {exc}")
                )
            return encode_result(
                {
                    "service": self.name,
                    "status": "ok",
                    "uptime_seconds": round(time.time() - self._started_at, 1),
                    "outbox_pending": pending,
                }
            )

        self.broker.subscriber(f"{self.name}.health", include_in_schema=False)(health)

    def _register_dead_letter_endpoints(self) -> None:
        from services.runtime import dead_letter_endpoints

        dead_letter_endpoints.register(self)
