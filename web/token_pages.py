"""What every page behind a mailed token link does first: read the token into the
service's query and ask it; a token the contract or the service refuses (malformed, forged,
for something gone) is the page's own "invalid link" answer, never an error page."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from web.gateway import ask
from web.site import site_of

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

# What a service answers for a token that does not (or no longer) stand for anything.
NOT_A_LINK = (ErrorCode.INVALID_TOKEN, ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_FAILED)


async def look_up(
    request: Request,
    endpoint: Endpoint[Req, Rep],
    query: Callable[[], Req],
    invalid: Callable[[Request], Response],
) -> Rep | Response:
    """The service's answer for the link's token, or the page saying the link is invalid."""
    try:
        asked = query()
    except ValidationError:
        return invalid(request)
    try:
        return await ask(site_of(request).services, endpoint, asked)
    except ServiceError as exc:
        if exc.code in NOT_A_LINK:
            return invalid(request)
        raise
