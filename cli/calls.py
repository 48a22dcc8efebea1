"""Running one request against the stack from a synchronous CLI command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from services.runtime.client import ServiceClient
from services.runtime.settings import Settings

T = TypeVar("T")


def settings() -> Settings:
    return Settings()


def run(work: Callable[[ServiceClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with ServiceClient(settings()) as client:
            return await work(client)

    return asyncio.run(main())


def request(subject: str, payload: BaseModel | dict[str, Any] | None = None) -> Any:
    return run(lambda client: client.request(subject, payload))
