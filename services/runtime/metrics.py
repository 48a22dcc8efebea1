"""Prometheus metrics of one service process, in one place.

faststream's Prometheus middleware counts every message a subscriber takes, by subject
(``samskab_received_processed_messages_total{handler,status}``) and times its handler
(``samskab_received_processed_messages_duration_seconds``). A request answered with a
structured error is, to faststream, a handler that returned normally, so
``samskab_request_errors_total{subject,code}`` counts those. The backlog gauges are sampled
every ``SAMSKAB_METRICS_SAMPLE_SECONDS`` with the functions the health endpoint asks, so
both say the same. ``SAMSKAB_METRICS_PORT`` unset or 0: nothing is served (tests, replicas).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal
from wsgiref.simple_server import WSGIServer

from faststream.nats.prometheus import NatsPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from services.runtime import dead_letters, outbox
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from services.runtime.service import Service

log = get_logger(__name__)

PREFIX = "samskab"

# A process runs one service, and the code that sends mails or posts reaches no Service
# object: these counters live in a registry of the process, which every service's
# registry serves with its own.
PROCESS = CollectorRegistry(auto_describe=False)
MAILS = Counter(
    f"{PREFIX}_mails",
    "Mails by what happened to them: queued, sent, failed (given up or bounced)",
    ["state"],
    registry=PROCESS,
)
POSTS = Counter(
    f"{PREFIX}_posts",
    "Facebook posts by outcome: published, unconfirmed (parked for staff), failed",
    ["state"],
    registry=PROCESS,
)

MailState = Literal["queued", "sent", "failed"]
PostState = Literal["published", "unconfirmed", "failed"]


def _once_committed(scope: object, count: Callable[[], None]) -> None:
    # Inside a unit of work the count waits for its commit: a transaction that is retried
    # or rolled back must not count twice or at all.
    if isinstance(scope, UnitOfWork):
        scope.after_commit(count)
    else:
        count()


def count_mails(scope: object, state: MailState, amount: int = 1) -> None:
    """``amount`` mails reached ``state`` (in ``scope``'s transaction, if it is one)."""
    if amount > 0:
        _once_committed(scope, lambda: MAILS.labels(state=state).inc(amount))


def count_post(scope: object, state: PostState) -> None:
    """A post reached ``state`` (once ``scope``, a unit of work, commits)."""
    _once_committed(scope, lambda: POSTS.labels(state=state).inc())


# What the sampler reads: the health endpoint's own functions (see operator_endpoints).
LagProbe = Callable[[], Awaitable[tuple[int | None, list[str]]]]


class ServiceMetrics:
    """The registry of one service, its broker middleware, and its HTTP endpoint."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PROCESS)
        self.middleware = NatsPrometheusMiddleware(
            registry=self.registry, app_name=service, metrics_prefix=PREFIX
        )
        self.request_errors = Counter(
            f"{PREFIX}_request_errors",
            "Requests answered with a structured error, by subject and error code",
            ["subject", "code"],
            registry=self.registry,
        )
        self.outbox_pending = self._gauge("outbox_pending", "Outbox entries not yet published")
        self.outbox_failed = self._gauge(
            "outbox_failed", "Outbox entries that could not be published (wait for staff)"
        )
        self.consumer_lag = self._gauge(
            "consumer_lag",
            "Events its durable consumers have not yet handled (NaN: JetStream did not say)",
        )
        self.dead_letters_waiting = self._gauge(
            "dead_letters_waiting", "Dead letters not yet replayed"
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", documentation, registry=self.registry)

    def count_reply(self, subject: str, reply: bytes) -> None:
        """Count ``reply`` if it is a structured error (see rpc.encode_error)."""
        if not reply.startswith(b'{"ok":false'):
            return
        try:
            code = str(json.loads(reply)["error"]["code"])
        except (ValueError, KeyError, TypeError):
            code = "unreadable"
        self.request_errors.labels(subject=subject, code=code).inc()

    async def sample(self, service: Service) -> bool:
        """One sampling of the backlog gauges (a background loop's step)."""
        scope = service.reading()
        counts = await outbox.counts(scope.db)
        self.outbox_pending.set(counts.pending)
        self.outbox_failed.set(counts.failed)
        self.dead_letters_waiting.set(await dead_letters.count_waiting(scope.db))
        lag, _missing = await service.consumer_lag()
        self.consumer_lag.set(math.nan if lag is None else lag)
        return False

    def serve(self, host: str, port: int) -> str:
        """Serve the registry at ``http://host:port/metrics`` (a thread); its URL."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        bound = self._server.server_address[1]
        url = f"http://{host}:{bound}/metrics"
        log.info("metrics served", url=url)
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
