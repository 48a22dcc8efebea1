"""The services' answers that are the same for every visitor, kept for a few seconds.

The directory, the calendar, the archive, the goals, the consent text and the published
stories do not depend on who asks; a page view asks for one of them every time. Kept for
``seconds`` (a setting, far below the ``Cache-Control`` a proxy may honour anyway), a
burst of visitors costs each service one query, and concurrent visitors who find nothing
kept wait for the same one request. Failures are never kept. Anything personal (an answer
link, a certificate check) and every command always goes to the service.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from contracts.ambassadors import Endpoints as Ambassadors
from contracts.endpoints import Endpoint
from contracts.events import Endpoints as Events
from contracts.newsletter import Endpoints as Newsletter
from contracts.social import Endpoints as Social
from web.gateway import Caller

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

SHARED = frozenset(
    e.subject
    for e in (
        Ambassadors.DIRECTORY,
        Ambassadors.GOALS,
        Ambassadors.CONSENT,
        Events.CALENDAR,
        Newsletter.ARCHIVE,
        Social.PUBLIC_STORIES,
    )
)
# Distinct requests kept at most (the archive's issues are one each).
MAX_KEPT = 256


@dataclass(frozen=True)
class _Kept:
    answer: Any
    until: float


class SharedAnswers:
    """A :class:`~web.gateway.Caller` in front of another one."""

    def __init__(
        self,
        services: Caller,
        seconds: float,
        *,
        shared: frozenset[str] = SHARED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._services = services
        self._seconds = seconds
        self._shared = shared
        self._clock = clock
        self._kept: OrderedDict[tuple[str, str], _Kept] = OrderedDict()
        self._asking: dict[tuple[str, str], asyncio.Future[Any]] = {}

    async def call(
        self, endpoint: Endpoint[Req, Rep], request: Req, *, timeout: float | None = None
    ) -> Rep:
        if self._seconds <= 0 or endpoint.subject not in self._shared:
            return await self._services.call(endpoint, request, timeout=timeout)
        key = (endpoint.subject, request.model_dump_json())
        kept = self._kept.get(key)
        if kept is not None and kept.until > self._clock():
            answer: Rep = kept.answer
            return answer
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(key, endpoint, request, timeout))
            self._asking[key] = asking
            # Read its failure even when every visitor waiting for it has gone.
            asking.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Shielded: a visitor who leaves does not cancel the answer the others wait for.
        shared: Rep = await asyncio.shield(asking)
        return shared

    async def _ask(
        self,
        key: tuple[str, str],
        endpoint: Endpoint[Req, Rep],
        request: Req,
        timeout: float | None,
    ) -> Rep:
        try:
            answer = await self._services.call(endpoint, request, timeout=timeout)
            self._kept[key] = _Kept(answer, self._clock() + self._seconds)
            self._kept.move_to_end(key)
            while len(self._kept) > MAX_KEPT:
                self._kept.popitem(last=False)
            return answer
        finally:
            self._asking.pop(key, None)
