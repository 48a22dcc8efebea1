"""Asking a service something over NATS request/reply: the CLI, the web gateway, tests, tools.

``call(endpoint, request)`` is the typed way: the declaration in ``contracts/`` gives the
subject and the reply model, so a caller gets a model back, or a :class:`ServiceError`
carrying the structured error. Every request carries the client's actor (who asked), which
a command needs and puts in its audit record.
"""

from __future__ import annotations

import getpass
import json
from types import TracebackType
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.errors import (
    ConnectionClosedError,
    ConnectionReconnectingError,
    NoRespondersError,
    OutboundBufferLimitError,
)
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel, ValidationError

from contracts.endpoints import ACTOR_HEADER, Endpoint, actor_for, valid_actor
from contracts.errors import ErrorCode, ServiceError
from services.runtime import tracing
from services.runtime.rpc import decode_reply
from services.runtime.settings import SamskabSettings

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


async def _quiet(_exc: Exception) -> None:
    """nats-py's default error callback prints a traceback per failed attempt; the caller
    gets one clear error instead."""


def inbox_prefix(user: str) -> str:
    """Each NATS user gets replies on its own inbox subjects, so the server can keep users
    from reading each other's replies (deploy/nats/accounts.conf allows only these)."""
    return f"_INBOX_{user}"


def service_of(subject: str) -> str:
    return subject.split(".", 1)[0]


def operator_actor(configured: str = "") -> str:
    """The CLI's actor: ``SAMSKAB_ACTOR`` if set (a full actor, or a name taken as an
    operator's), else the operator's OS user."""
    if configured:
        return configured if valid_actor(configured) else actor_for("operator", configured)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a bare container)
        user = "unknown"
    return actor_for("operator", user)


class ServiceClient:
    def __init__(
        self,
        settings: SamskabSettings,
        user: str = "cli",
        actor: str | None = None,
        *,
        long_lived: bool = False,
    ) -> None:
        """``long_lived``: a process that outlives a NATS restart (the web gateway) keeps
        reconnecting; a command-line call gives up at once and says so."""
        self._settings = settings
        self._user = user
        self._long_lived = long_lived
        self.actor = actor or operator_actor(getattr(settings, "actor", ""))
        self._nc: Client | None = None

    async def __aenter__(self) -> ServiceClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        try:
            self._nc = await nats.connect(
                self._settings.nats_servers,
                user=self._settings.nats_user,
                password=self._settings.nats_password,
                name=f"samskab-{self._user}",
                inbox_prefix=inbox_prefix(self._user),
                connect_timeout=3,
                # nats-py reads 0 as "no limit"; 1 gives up after the second try; -1 never.
                max_reconnect_attempts=-1 if self._long_lived else 1,
                reconnect_time_wait=1.0 if self._long_lived else 0.2,
                allow_reconnect=self._long_lived,
                error_cb=_quiet,
            )
        except Exception as exc:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"cannot reach NATS at {self._settings.nats_url}: is the stack running?",
            ) from exc

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("not connected")
        return self._nc

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    async def call(
        self, endpoint: Endpoint[Req, Rep], request: Req, *, timeout: float | None = None
    ) -> Rep:
        """Send ``request`` to ``endpoint``; its reply as the declared model."""
        result = await self.request(endpoint.subject, request, timeout=timeout)
        try:
            return endpoint.reply.model_validate(result)
        except ValidationError as exc:
            raise ServiceError(
                ErrorCode.INTERNAL, f"{endpoint.subject} answered an unexpected reply: {exc}"
            ) from exc

    async def request(
        self,
        subject: str | Endpoint[Any, Any],
        payload: BaseModel | dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a raw request (tests and tools that send what no model allows); the result
        as decoded JSON."""
        subject = subject.subject if isinstance(subject, Endpoint) else subject
        if isinstance(payload, BaseModel):
            data = payload.model_dump_json(exclude_unset=True).encode()
        else:
            data = json.dumps(payload or {}).encode()
        service = service_of(subject)
        try:
            msg = await self.nc.request(
                subject,
                data,
                timeout=timeout or self._settings.request_timeout_seconds,
                # The caller's trace (a page of the website being answered), if any: the
                # service's span continues it.
                headers={ACTOR_HEADER: self.actor, **tracing.carrier()},
            )
        except NoRespondersError as exc:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, f"the {service} service is not running"
            ) from exc
        except (
            ConnectionClosedError,
            ConnectionReconnectingError,
            OutboundBufferLimitError,
        ) as exc:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, f"NATS is not reachable: cannot ask {service}"
            ) from exc
        except NatsTimeoutError as exc:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, f"the {service} service did not answer in time"
            ) from exc
        return decode_reply(msg.data)
