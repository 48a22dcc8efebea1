"""Asking a service something over NATS request/reply: used by the CLI, tests and tools."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel

from contracts.errors import ErrorCode, ServiceError
from services.runtime.rpc import decode_reply
from services.runtime.settings import Settings


async def _quiet(_exc: Exception) -> None:
    """nats-py's default error callback prints a traceback per failed attempt; the caller
    gets one clear error instead."""


def inbox_prefix(user: str) -> str:
    """Each NATS user gets replies on its own inbox subjects, so the server can keep users
    from reading each other's replies (deploy/nats/accounts.conf allows only these)."""
    return f"_INBOX_{user}"


def service_of(subject: str) -> str:
    return subject.split(".", 1)[0]


class ServiceClient:
    def __init__(self, settings: Settings, user: str = "cli") -> None:
        self._settings = settings
        self._user = user
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
                self._settings.nats_url,
                user=self._settings.nats_user,
                password=self._settings.nats_password,
                name=f"samskab-{self._user}",
                inbox_prefix=inbox_prefix(self._user),
                connect_timeout=3,
                # nats-py reads 0 as "no limit"; 1 gives up after the second try.
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                allow_reconnect=False,
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

    async def request(
        self,
        subject: str,
        payload: BaseModel | dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        if isinstance(payload, BaseModel):
            data = payload.model_dump_json(exclude_unset=True).encode()
        else:
            data = json.dumps(payload or {}).encode()
        service = service_of(subject)
        try:
            msg = await self.nc.request(
                subject, data, timeout=timeout or self._settings.request_timeout_seconds
            )
        except NoRespondersError as exc:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, f"the {service} service is not running"
            ) from exc
        except NatsTimeoutError as exc:
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, f"the {service} service did not answer in time"
            ) from exc
        return decode_reply(msg.data)
