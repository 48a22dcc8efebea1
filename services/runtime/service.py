"""One service process: its broker, database, outbox relay, consumers and endpoints.

A service's ``app.py`` builds a :class:`Service` in its ``create_app(settings)`` factory and
registers its handlers against the declarations in ``contracts/``: ``command`` and
``query`` for each endpoint, ``react`` for each event it consumes, ``loop`` for background
work. Everything below is the same for every service, so a service reads as its own
domain: it never opens a transaction, writes an outbox or inbox entry, or retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from faststream import AckPolicy, FastStream
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.security import SASLPlaintext
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy, ObjectStoreConfig, StorageType
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ValidationError
from pymongo import AsyncMongoClient

from contracts.ambassadors import Erased
from contracts.endpoints import ACTOR_HEADER, Endpoint, Endpoints, valid_actor
from contracts.envelope import Event
from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.jobs import JobEndpoint, JobView, ShowJob, show_job
from services.runtime import dead_letters, erasure, jobs, retention
from services.runtime.audit import ensure_audit_indexes
from services.runtime.background import Loop, retry
from services.runtime.client import inbox_prefix
from services.runtime.clock import Clock
from services.runtime.inbox import (
    INBOX_RETENTION,
    already_processed,
    ensure_inbox_indexes,
    mark_processed,
)
from services.runtime.known_ambassadors import EVENTS as AMBASSADOR_EVENTS
from services.runtime.known_ambassadors import KnownAmbassadors
from services.runtime.logging import app_logger, configure_logging, get_logger
from services.runtime.metrics import ServiceMetrics
from services.runtime.mongo import DatabaseT, Document, claim_database, connect
from services.runtime.outbox import OutboxRelay, ensure_outbox_indexes
from services.runtime.rpc import answer, error_code, refusal, undecoded
from services.runtime.settings import ServiceSettings
from services.runtime.streams import stream_config
from services.runtime.tracing import middlewares as tracing_middlewares
from services.runtime.tracing import shutdown as shutdown_tracing
from services.runtime.tracing import tag_emitted, tag_event
from services.runtime.transactions import Transactions, Work
from services.runtime.unit_of_work import (
    Applied,
    CommandContext,
    NotYet,
    Reading,
    UnitOfWork,
    current_command,
)

log = get_logger(__name__)

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)
Report = TypeVar("Report", bound=BaseModel)
E = TypeVar("E", bound=Event)
T = TypeVar("T")

CommandHandler = Callable[[UnitOfWork, Req], Awaitable[Rep]]
OrchestratingHandler = Callable[[Req], Awaitable[Rep]]
QueryHandler = Callable[[Reading, Req], Awaitable[Rep]]
Reaction = Callable[[UnitOfWork, E], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
# Asked by the health endpoint: what staff must act on (empty: nothing).
HealthCheck = Callable[[Reading], Awaitable[list[str]]]
# Asked before an event's reactions run: a reason to apply nothing (e.g. it is about an
# erased ambassador), or None.
Guard = Callable[[UnitOfWork, Event], Awaitable[str | None]]

# How long a MAX_DELIVERIES advisory waits before it is stored again after a failure.
DEAD_LETTER_RETRY_SECONDS = 5.0


def nats_security(settings: ServiceSettings) -> SASLPlaintext | None:
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
class Bucket:
    """An Object Store bucket a service owns; ``ttl_seconds``: objects expire after it."""

    name: str
    ttl_seconds: float | None = None


@dataclass
class Route:
    model: type[Event]
    reactions: list[Reaction[Any]] = field(default_factory=list)


class ServiceFactory(Protocol):
    """How a service's ``build`` makes its Service: the class itself, or (unit tests) one
    that runs in memory."""

    def __call__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        produces: Sequence[type[Event]] = (),
        buckets: Sequence[str | Bucket] = (),
    ) -> Service: ...


class Service:
    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        produces: Sequence[type[Event]] = (),
        buckets: Sequence[str | Bucket] = (),
        transactions: Transactions | None = None,
        database: DatabaseT | None = None,
        jetstream: JetStreamContext | None = None,
    ) -> None:
        """``transactions``, ``database`` and ``jetstream`` replace the real ones in unit
        tests (see services/runtime/testing.py)."""
        self.name = name
        self.settings = settings
        self.produces = tuple(produces)
        self.buckets = tuple(b if isinstance(b, Bucket) else Bucket(b) for b in buckets)
        self.clock: Callable[[], datetime] = Clock(settings.clock_file)
        self._database = database
        self._jetstream = jetstream
        self.metrics = ServiceMetrics(name)
        self.broker = NatsBroker(
            settings.nats_servers,
            security=nats_security(settings),
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
            middlewares=(
                *tracing_middlewares(name, settings.otel_exporter, settings.otel_endpoint),
                # Only when served: nobody would read the counts, and each message pays them.
                *((self.metrics.middleware,) if settings.metrics_port else ()),
            ),
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
        self.transactions = transactions or Transactions(
            name, lambda: self.mongo, lambda: self.db, lambda: self.clock(), lambda: self._relay
        )
        self.routes: dict[str, Route] = {}
        self.guards: list[Guard] = []
        self.endpoints: dict[str, Endpoint[Any, Any]] = {}
        self._handles: dict[str, Callable[[Any], Awaitable[Any]]] = {}
        self._startup_hooks: list[Hook] = []
        self.health_checks: list[HealthCheck] = []
        self._shutdown_hooks: list[Hook] = []
        self._loops: list[Loop] = []
        self._started_at = time.time()
        self._answering = 0
        self._last_answered = 0.0
        self._subscribers_wired = False
        for event_type in self.produces:
            # Declared for the AsyncAPI document only: events leave through the outbox.
            self.broker.publisher(
                event_type.subject,
                schema=event_type,
                title=event_type.subject,
                description=(event_type.__doc__ or "").strip() or None,
            )
        # Erased people's events leave the service's own stream once published.
        self.erasures = self.loop("erasure sweep", self._sweep_erasures, every=5.0)
        self.retention_rules: list[retention.Rule] = self._kept_by_every_service()
        self.loop("retention purge", self._purge_expired, every=settings.retention_purge_seconds)
        self.known_ambassadors: KnownAmbassadors | None = None
        self.job_runners = jobs.JobRunners(owner=f"{name}-{uuid.uuid4().hex[:8]}")
        self._jobs_loop: Loop | None = None
        self._serving_jobs = False
        from services.runtime import operator_endpoints

        operator_endpoints.register(self)
        if settings.metrics_port:
            self.loop(
                "metrics sampling",
                lambda: self.metrics.sample(self),
                every=settings.metrics_sample_seconds,
            )

    # ------------------------------------------------------------------ what it runs on

    @property
    def db(self) -> DatabaseT:
        if self._database is not None:
            return self._database
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
        if self._jetstream is not None:
            return self._jetstream
        return self.broker.connection.jetstream()

    @property
    def relay(self) -> OutboxRelay | None:
        return self._relay

    def reading(self) -> Reading:
        """A scope for reads outside a transaction, at the service's time."""
        return self.transactions.reading()

    async def run(self, work: Work[T], *, name: str) -> T:
        """Run one unit of work (a background job's step): one transaction."""
        return await self.transactions.run(work, name=name)

    # ------------------------------------------------------------------ registering handlers

    def command(self, endpoint: Endpoint[Req, Rep], handler: CommandHandler[Req, Rep]) -> None:
        """Answer ``endpoint`` with ``handler`` in one unit of work: what it saves, emits and
        the command's audit record commit together."""

        async def work(uow: UnitOfWork, request: Req) -> Rep:
            reply = await handler(uow, request)
            tag_emitted(uow.events)
            return reply

        async def handle(request: Req) -> Rep:
            return await self.transactions.run(
                lambda uow: work(uow, request), name=endpoint.subject, audited=request
            )

        self._register(endpoint, handle, handler)

    def orchestrate(
        self, endpoint: Endpoint[Req, Rep], handler: OrchestratingHandler[Req, Rep]
    ) -> None:
        """Answer ``endpoint`` with a handler that runs several units of work itself
        (``service.run``), or work outside any (an upload, a wait): an import, a send.
        Its audit record is written once it answered."""

        async def handle(request: Req) -> Rep:
            reply = await handler(request)
            command = current_command.get()
            if command is not None:
                await self.transactions.record_outcome(command, request, reply, "ok")
            return reply

        self._register(endpoint, handle, handler)

    def query(self, endpoint: Endpoint[Req, Rep], handler: QueryHandler[Req, Rep]) -> None:
        """Answer ``endpoint`` (a query: it changes nothing) with ``handler``."""

        async def handle(request: Req) -> Rep:
            return await handler(self.reading(), request)

        self._register(endpoint, handle, handler)

    def job(self, endpoint: JobEndpoint[Req, Report], start: CommandHandler[Req, JobView]) -> None:
        """Answer ``endpoint`` (declared with ``contracts.jobs.job``) at once with the job
        ``start`` creates (``start_job``) in the command's unit of work; the service's own
        background work moves it on and finishes it (``jobs.progress`` / ``jobs.finish``)."""
        self.command(endpoint, start)
        self._serve_jobs()

    def job_runner(self, endpoint: JobEndpoint[Req, Report], run: jobs.Runner[Req, Report]) -> None:
        """Answer ``endpoint`` at once with a job the runtime runs: the request is stored
        as the job's input, and ``run(job, request)`` is called in the background (again
        after a crash, from the last step it committed) until it returns the report. The
        same request sent again while its job runs is answered with that job."""

        async def start(uow: UnitOfWork, request: Req) -> JobView:
            started = await jobs.start(
                uow, self.name, endpoint, runner_input=request, key=jobs.request_key(request)
            )
            if self._jobs_loop is not None:
                uow.after_commit(self._jobs_loop.wake)
            return started

        self.job(endpoint, start)
        self.job_runners.register(endpoint, run)
        if self._jobs_loop is None:
            self._jobs_loop = self.loop(
                "jobs", lambda: self.job_runners.step(self.reading), every=5.0
            )

    async def start_job(
        self, uow: UnitOfWork, endpoint: JobEndpoint[Any, Any], *, total: int | None = None
    ) -> JobView:
        """A job for ``endpoint``, created in ``uow`` (a driven job: see ``job``)."""
        return await jobs.start(uow, self.name, endpoint, total=total)

    async def run_jobs_now(self) -> None:
        """Run the runner jobs waiting now, here (start-up work such as the demo import)."""
        while await self.job_runners.step(self.reading):
            pass

    def _serve_jobs(self) -> None:
        if self._serving_jobs:
            return
        self._serving_jobs = True

        async def show(scope: Reading, query: ShowJob) -> JobView:
            return await jobs.load(scope, query.job_id)

        self.query(show_job(self.name), show)

        async def prepare() -> None:
            retention = timedelta(days=self.settings.job_retention_days)
            await jobs.ensure_job_indexes(self.db, retention)

        self._startup_hooks.insert(0, prepare)

    def keep(self, collection: str, field: str, days: Callable[[], int], why: str) -> None:
        """Purge ``collection``'s records ``days()`` after their ``field`` date."""
        self.retention_rules.append(retention.Rule(collection, field, days, why))

    def _kept_by_every_service(self) -> list[retention.Rule]:
        s = self.settings
        return [
            retention.Rule("audit", "at", lambda: s.audit_retention_days, "who did what"),
            retention.Rule(
                "dead_letters", "dead_at", lambda: s.dead_letter_retention_days, "dead letters"
            ),
            retention.Rule(
                "failures", "updated_at", lambda: s.dead_letter_retention_days, "failed tries"
            ),
            # As long as the events are on the stream: an erasure finds a person's events
            # there through these records.
            retention.Rule(
                "outbox_published", "published_at", lambda: s.stream_max_age_days, "events"
            ),
            retention.Rule("jobs", "finished_at", lambda: s.job_retention_days, "job reports"),
            retention.Rule("inbox", "processed_at", lambda: INBOX_RETENTION.days, "events applied"),
        ]

    async def _purge_expired(self) -> bool:
        await retention.purge(self.db, self.retention_rules, self.clock())
        return False

    def health_check(self, check: HealthCheck) -> None:
        """Report what ``check`` finds in the health endpoint's answer (status "degraded")."""
        self.health_checks.append(check)

    def react(self, event_type: type[E], handler: Reaction[E]) -> None:
        """Apply ``event_type`` with ``handler`` exactly once: inbox-guarded, in one
        transaction with the events it emits."""
        route = self.routes.setdefault(event_type.subject, Route(event_type))
        route.reactions.append(handler)

    def follow_ambassadors(self) -> KnownAmbassadors:
        """Keep the read model of ambassadors (see known_ambassadors): updated before the
        service's own reactions to the ambassadors service's events, with erasure done as
        everywhere, and nothing about an erased ambassador applied afterwards."""
        if self.known_ambassadors is not None:
            return self.known_ambassadors
        model = self.known_ambassadors = KnownAmbassadors()
        for event_type in AMBASSADOR_EVENTS:
            route = self.routes.setdefault(event_type.subject, Route(event_type))
            route.reactions.insert(0, model.update)
        self.routes[Erased.subject].reactions.insert(1, self._forget)
        self.guard(model.guard)

        async def prepare() -> None:
            await model.ensure_indexes(self.reading())

        self._startup_hooks.insert(0, prepare)
        return model

    async def _forget(self, uow: UnitOfWork, event: Erased) -> None:
        await erasure.forget(uow, event.ambassador_id)
        uow.after_commit(self.erasures.wake)

    async def _sweep_erasures(self) -> bool:
        return await erasure.sweep(self.reading(), self.js)

    def guard(self, check: Guard) -> None:
        """Ask ``check`` before any reaction: it may say an event is to be ignored."""
        self.guards.append(check)

    def check_endpoints(self, declared: type[Endpoints]) -> None:
        """Every endpoint ``declared`` in contracts has a handler here (called at build)."""
        missing = [e.subject for e in declared.all() if e.subject not in self.endpoints]
        if missing:
            raise RuntimeError(f"{self.name}: no handler for {', '.join(missing)}")

    @property
    def startup_hooks(self) -> Sequence[Hook]:
        return tuple(self._startup_hooks)

    def on_startup(self, hook: Hook) -> Hook:
        """Runs after the database and NATS are ready, before any message is taken."""
        self._startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Runs when the service stops, after its background loops ended."""
        self._shutdown_hooks.append(hook)
        return hook

    def loop(
        self,
        what: str,
        step: Callable[[], Awaitable[bool | None]],
        *,
        every: float,
        wait_max: float = 30.0,
    ) -> Loop:
        """Background work started with the service: ``step`` again and again (see Loop);
        ``loop.wake()`` runs it at once."""
        loop = Loop(what, step, every=every, wait_max=wait_max)
        self._loops.append(loop)
        return loop

    def background(self, what: str, task: Callable[[], Awaitable[None]]) -> Loop:
        """A long-running task (its own loop inside), restarted with backoff if it fails."""

        async def step() -> bool:
            await task()
            return False  # it returned: it is done until the next start

        return self.loop(what, step, every=float("inf"))

    def quiet_for(self, seconds: float) -> bool:
        """No request answered now nor in the last ``seconds``: background work that can
        wait (rendering, sweeps) yields to people waiting for an answer."""
        return self._answering == 0 and time.monotonic() - self._last_answered >= seconds

    # ------------------------------------------------------------------ answering requests

    def _register(
        self,
        endpoint: Endpoint[Req, Rep],
        handle: Callable[[Req], Awaitable[Rep]],
        handler: Callable[..., Any],
    ) -> None:
        if endpoint.subject in self.endpoints:
            raise RuntimeError(f"{endpoint.subject} has a handler already")
        self.endpoints[endpoint.subject] = endpoint

        async def reply(msg: NatsMessage) -> bytes:
            self._answering += 1
            try:
                answered = await self.answer(endpoint, handle, msg.body, msg.headers)
                self.metrics.count_reply(endpoint.subject, answered)
                return answered
            finally:
                self._answering -= 1
                self._last_answered = time.monotonic()

        reply.__name__ = getattr(handler, "__name__", endpoint.name)
        subscriber = self.broker.subscriber(
            endpoint.subject,
            queue=self.name,
            # Requests are independent: one slow transaction must not queue the rest.
            max_workers=self.settings.endpoint_concurrency,
            decoder=undecoded,
            title=endpoint.subject,
            description=endpoint.description or (handler.__doc__ or "").strip() or None,
        )
        subscriber(reply)
        # The endpoint takes raw bytes so that a bad request gets a structured error
        # reply; the AsyncAPI document should still show the request's real schema.
        document_payload(subscriber.specification, endpoint.subject, endpoint.request)
        self._handles[endpoint.subject] = handle

    async def answer(
        self,
        endpoint: Endpoint[Req, Rep],
        handle: Callable[[Req], Awaitable[Rep]] | None,
        body: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """The reply to one request (always one: a structured error if need be)."""
        handle = handle or self._handles[endpoint.subject]
        if not endpoint.changes_state:
            return await answer(endpoint.request, handle, body)
        actor = (headers or {}).get(ACTOR_HEADER)

        async def as_command(request: Req) -> Rep:
            if not valid_actor(actor):
                raise ServiceError(
                    ErrorCode.VALIDATION_FAILED,
                    "a command must say who asked",
                    [
                        FieldError(
                            field=ACTOR_HEADER,
                            message="missing or not 'public', 'operator:<name>', "
                            "'staff:<name>' or 'service:<name>'",
                        )
                    ],
                )
            assert actor is not None
            return await self._as_command(endpoint, handle, request, actor)

        return await answer(endpoint.request, as_command, body)

    async def _as_command(
        self,
        endpoint: Endpoint[Req, Rep],
        handle: Callable[[Req], Awaitable[Rep]],
        request: Req,
        actor: str,
    ) -> Rep:
        command = CommandContext(uuid.uuid4().hex, endpoint.subject, actor)
        token = current_command.set(command)
        try:
            return await handle(request)
        except Exception as exc:
            # Audited under the code the caller is answered with (see rpc.answer).
            outcome = error_code(exc).value
            await self.transactions.record_outcome(command, request, None, outcome)
            raise
        finally:
            current_command.reset(token)

    # ------------------------------------------------------------------ consuming

    async def apply_event(self, subject: str, data: bytes) -> Applied:
        """Apply one event (a dead letter replayed) unless this consumer already did."""
        route = self.routes[subject]
        return await self.deliver(route.model.model_validate_json(data))

    async def deliver(self, event: Event) -> Applied:
        """Apply ``event`` through its reactions exactly once (the inbox), unless a guard
        says to ignore it; in one transaction with what the reactions emit."""
        route = self.routes[event.subject]
        event_id = str(event.event_id)
        tag_event(event)

        async def apply_once(uow: UnitOfWork) -> Applied:
            if await already_processed(uow.db, uow.session, self.name, event_id):
                return Applied.ALREADY
            for check in self.guards:
                reason = await check(uow, event)
                if reason is not None:
                    log.info(
                        "event ignored", subject=event.subject, event_id=event_id, reason=reason
                    )
                    await mark_processed(uow.db, uow.session, self.name, event_id)
                    return Applied.IGNORED
            for react in route.reactions:
                await react(uow, event)
            await mark_processed(uow.db, uow.session, self.name, event_id)
            return Applied.APPLIED

        return await self.transactions.run(
            apply_once, name=f"applying {route.model.subject}", cause=event
        )

    async def _consume(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        meta = raw.metadata
        stream, seq = meta.stream, meta.sequence.stream
        route = self.routes.get(raw.subject)
        if route is None:
            await msg.ack()
            return
        try:
            refused = refusal(raw.data)
            if refused is not None:
                raise ValueError(refused)
            event = route.model.model_validate_json(raw.data)
        except Exception as exc:
            # It will never parse: store it as a dead letter now instead of retrying.
            await dead_letters.store_poison(
                self.db,
                stream=stream,
                seq=seq,
                consumer=self.name,
                subject=raw.subject,
                payload=raw.data,
                reason=f"invalid event: {exc}"[:2000],
            )
            log.warning("invalid event dead-lettered", subject=raw.subject, seq=seq)
            await msg.reject()
            return
        try:
            # A ValidationError raised in here is the handler's, not a bad event: retried.
            await self.deliver(event)
        except Exception as exc:
            if isinstance(exc, NotYet):
                log.warning("event put off", subject=raw.subject, seq=seq, reason=str(exc))
            else:
                log.exception("event handler failed", subject=raw.subject, seq=seq)
            try:
                await dead_letters.record_failure(
                    self.db, self.name, stream, seq, f"{type(exc).__name__}: {exc}", event
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
            key = await dead_letters.store_dead_letter(
                self.db, self.js, advisory, scrub=self._scrub_dead_letter
            )
        except Exception:
            # Without a delay a lasting failure would redeliver the advisory in a hot loop.
            log.exception("storing a dead letter failed, retrying", stream=stream, seq=seq)
            await msg.nack(delay=DEAD_LETTER_RETRY_SECONDS)
            return
        log.error("event dead-lettered", id=key, stream=stream, seq=seq)
        await msg.ack()

    async def _scrub_dead_letter(self, subject: str | None, payload: bytes) -> bool:
        """A dead letter about someone erased meanwhile is stored without its payload."""
        route = self.routes.get(subject or "")
        if route is None or not self.guards:
            return False
        try:
            event = route.model.model_validate_json(payload)
        except ValidationError:
            return False
        scope = UnitOfWork(self.db, None, now=self.clock())
        for check in self.guards:
            if await check(scope, event) is not None:
                return True
        return False

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

    async def consumer_lag(self) -> tuple[int | None, list[str]]:
        """Events its durable consumers have not yet handled (not delivered, or delivered
        and not acknowledged), summed over the streams it consumes; and a problem per
        consumer that is missing. None when JetStream cannot say now."""
        lag, problems = 0, []
        for stream in self._consumed_streams():
            try:
                info = await self.js.consumer_info(stream, self.name, timeout=2.0)
            except NotFoundError:
                problems.append(f"its consumer of the {stream} stream is missing")
                continue
            except Exception:  # NATS busy or unreachable: health still answers
                return None, problems
            lag += (info.num_pending or 0) + (info.num_ack_pending or 0)
        return lag, problems

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
                decoder=undecoded,
                title=f"{self.name} consumes {stream}",
            )(self._consume)
        self.broker.subscriber(
            dead_letters.advisory_subject(self.name),
            stream=JStream(dead_letters.advisory_stream_name(self.name), declare=False),
            durable=self.name,
            inbox_prefix=f"{inbox_prefix(self.name)}.".encode(),
            pull_sub=PullSub(batch_size=10, timeout=1.0),
            config=ConsumerConfig(ack_policy=JsAckPolicy.EXPLICIT, max_deliver=-1),
            decoder=undecoded,
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
        await ensure_audit_indexes(self.db, timedelta(days=s.audit_retention_days))
        await self.broker.connect()
        if self.produces:
            await self._ensure_own_stream()
        for bucket in self.buckets:
            await self._ensure_bucket(bucket)
        if self.routes:
            await dead_letters.ensure_advisory_stream(
                self.js, self.name, self.name, s.stream_replicas, s.dead_letter_retention_days
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
            subjects=f"{self.name}.v1.",
            max_payload=lambda: self.broker.connection.max_payload,
        )
        log.info("service starting", nats=s.nats_url, database=s.database_for(self.name))

    async def _after_startup(self) -> None:
        assert self._relay is not None
        self._relay.start()
        for loop in self._loops:
            loop.start()
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        log.info("service ready")

    async def _on_shutdown(self) -> None:
        await asyncio.gather(*(loop.stop() for loop in self._loops), return_exceptions=True)
        for hook in self._shutdown_hooks:
            await hook()
        # The relay stops while NATS is still connected, so its last publish can finish.
        if self._relay is not None:
            await self._relay.stop()

    async def _after_shutdown(self) -> None:
        self.metrics.stop()
        shutdown_tracing()
        if self._mongo is not None:
            await self._mongo.close()
        log.info("service stopped")

    async def _ensure_own_stream(self) -> None:
        config = stream_config(self.name, self.settings)
        name = config.name or ""
        try:
            await self.js.stream_info(name)
            await self.js.update_stream(config)
        except NotFoundError:
            await self.js.add_stream(config)

    async def _ensure_bucket(self, bucket: Bucket) -> None:
        try:
            await self.js.object_store(bucket.name)
        except NotFoundError:
            await self.js.create_object_store(
                bucket.name,
                config=ObjectStoreConfig(
                    storage=StorageType.FILE,
                    replicas=self.settings.stream_replicas,
                    ttl=bucket.ttl_seconds,
                ),
            )

    async def _wait_for_stream(self, stream: str) -> None:
        """A consumer cannot be created before the producing service declared its stream."""

        async def declared() -> None:
            await self.js.stream_info(stream)

        await retry(
            declared,
            what=f"waiting for stream {stream}",
            on=NotFoundError,
            wait_initial=0.5,
            wait_max=10.0,
        )
