"""The website's one way to the services: the typed client over NATS, as the ``web`` user,
every request as the actor ``public``. A page asks through :func:`ask`, which turns a
service that is down into :class:`Unavailable` (a 503 page naming what is missing)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from pydantic import BaseModel

from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from services.runtime.client import ServiceClient, service_of
from web.settings import WEB_USER, WebSettings

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

PUBLIC_ACTOR = "public"

# What a page says when the service behind it does not answer.
UNAVAILABLE = {
    "ambassadors": "Ambassadørernes sider er midlertidigt utilgængelige",
    "events": "Kalenderen er midlertidigt utilgængelig",
    "networks": "Netværkenes sider er midlertidigt utilgængelige",
    "newsletter": "Nyhedsbrevet er midlertidigt utilgængeligt",
    "social": "Historierne er midlertidigt utilgængelige",
}


class Caller(Protocol):
    async def call(
        self, endpoint: Endpoint[Req, Rep], request: Req, *, timeout: float | None = None
    ) -> Rep: ...


class Unavailable(Exception):
    def __init__(self, service: str) -> None:
        super().__init__(f"the {service} service is unavailable")
        self.service = service

    @property
    def message(self) -> str:
        return UNAVAILABLE.get(self.service, "Siden er midlertidigt utilgængelig")


async def ask(caller: Caller, endpoint: Endpoint[Req, Rep], request: Req) -> Rep:
    """``endpoint``'s reply; a ServiceError for what the service refused."""
    try:
        return await caller.call(endpoint, request)
    except ServiceError as exc:
        if exc.code == ErrorCode.SERVICE_UNAVAILABLE:
            raise Unavailable(service_of(endpoint.subject)) from exc
        raise


def client_for(settings: WebSettings) -> ServiceClient:
    return ServiceClient(settings, user=WEB_USER, actor=PUBLIC_ACTOR, long_lived=True)
