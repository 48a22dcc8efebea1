"""The Graph API stand-in (stack/facebook.py) in this process, for unit tests: its real
app behind httpx's ASGI transport, with a time-out as a real client would have."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

from services.social.graph import GraphClient
from stack.facebook import StandIn

PAGE_ID = "104000000000001"
TOKEN = "unit-tests-page-token-0123456789"


class TimeoutTransport(httpx.AsyncBaseTransport):
    """What a client's read time-out does to an answer that takes too long."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await asyncio.wait_for(self.inner.handle_async_request(request), self.seconds)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out", request=request) from None


def stand_in(directory: Path, clock: Callable[[], datetime]) -> StandIn:
    return StandIn(directory, PAGE_ID, TOKEN, clock)


def client_of(stand_in: StandIn, *, timeout: float = 0.5, version: str = "v26.0") -> GraphClient:
    transport = TimeoutTransport(httpx.ASGITransport(app=stand_in.app()), timeout)
    return GraphClient(
        base_url="http://graph.test",
        version=version,
        page_id=stand_in.page_id,
        token=TOKEN,
        timeout_seconds=timeout,
        transport=transport,
    )
