"""How a synchronous CLI command speaks to the stack: through the typed client only.

``call(endpoint, request)`` is the one seam every command sends through: the declaration in
``contracts/`` gives the subject and the reply model, so a command gets the reply model
back, or a :class:`ServiceError` carrying the structured error.

A command that asks several services (or reads a bucket after asking) wraps its work in
``run(work)``: every call made inside shares one connection. ``with_client(work)`` hands
the connected client itself to work no endpoint covers: the Object Store buckets the CLI
reads and writes directly (certificates, newsletter images).

The connection is opened on the first call, not before, so a command that fails its own
checks never touches NATS. When NATS itself cannot be reached the error is
:class:`Unreachable` (still ``service_unavailable``): a command asking every service tells
"nothing can answer" apart from "this one service is not running".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field

from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings

T = TypeVar("T")
Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


class CliSettings(ClientSettings):
    """The client's settings, and the one limit the CLI checks before an upload."""

    # The newsletter service's SAMSKAB_NEWSLETTER_IMAGE_MAX_BYTES (it checks again): a file
    # that is too large is refused before it is transferred.
    newsletter_image_max_bytes: int = Field(default=3_000_000, ge=1)


class Unreachable(ServiceError):
    """NATS itself cannot be reached: no service can answer anything."""


def settings() -> CliSettings:
    return CliSettings()


@dataclass
class _Session:
    """One event loop and, once the first call needs it, one connection."""

    runner: asyncio.Runner = field(default_factory=asyncio.Runner)
    client: ServiceClient | None = None

    def connected(self) -> ServiceClient:
        if self.client is None:
            client = ServiceClient(settings())
            try:
                self.runner.run(client.connect())
            except ServiceError as exc:
                raise Unreachable(exc.code, exc.error.message, list(exc.error.details)) from exc
            self.client = client
        return self.client

    def close(self) -> None:
        # Best effort: a failure to close must not hide what the command ran into.
        with suppress(Exception):
            if self.client is not None:
                self.runner.run(self.client.close())
        self.client = None
        self.runner.close()


_current: ContextVar[_Session | None] = ContextVar("samskab_cli_session", default=None)


@contextmanager
def _session() -> Iterator[_Session]:
    """The session of the enclosing ``run``, or a new one for this call alone."""
    current = _current.get()
    if current is not None:
        yield current
        return
    session = _Session()
    token = _current.set(session)
    try:
        yield session
    finally:
        _current.reset(token)
        session.close()


def call(endpoint: Endpoint[Req, Rep], request: Req, *, timeout: float | None = None) -> Rep:
    """Send ``request`` to ``endpoint``; its reply as the declared model."""
    with _session() as session:
        client = session.connected()
        return session.runner.run(client.call(endpoint, request, timeout=timeout))


def run(work: Callable[[], T]) -> T:
    """Run ``work`` (a command asking several services, or asking and then reading a
    bucket) with every call in it sharing one connection."""
    with _session():
        return work()


Q = TypeVar("Q", bound=BaseModel)


def every_item(endpoint: Endpoint[Q, Any], query: Q, page_size: int) -> list[Any]:
    """Everything a paged list query matches (a reply with ``items`` and ``total``), page
    after page over one connection, from the query's own offset on."""

    def pages() -> list[Any]:
        found: list[Any] = []
        start = int(getattr(query, "offset", 0))
        while True:
            asked = query.model_copy(update={"limit": page_size, "offset": start + len(found)})
            page = call(endpoint, asked)
            found += page.items
            if not page.items or start + len(found) >= page.total:
                return found

    return run(pages)


def with_client(work: Callable[[ServiceClient], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` with the connected client itself: the Object Store buckets
    (``client.nc.jetstream()``), which no endpoint covers."""
    with _session() as session:
        client = session.connected()
        return session.runner.run(work(client))


async def upload(client: ServiceClient, bucket: str, data: bytes, suffix: str, owner: str) -> str:
    """Put a file into a service's uploads bucket (a NATS message holds at most 1 MB); the
    command then names the object it got."""
    try:
        store = await client.nc.jetstream().object_store(bucket)
    except NotFoundError:
        raise ServiceError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"the {owner} service is not running (it has never created its uploads bucket)",
        ) from None
    name = f"upload-{uuid.uuid4().hex}{suffix.lower()[:10]}"
    await store.put(name, data)
    return name
