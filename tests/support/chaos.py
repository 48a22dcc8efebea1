"""What the chaos tests share: waiting with a deadline, and reading a stream back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.support.streams import read_stream


async def poll(
    what: str, check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class StreamEvent:
    seq: int
    subject: str
    event_id: str
    ambassador_id: str
    msg_id: str | None


async def stream_events(nats_url: str, stream: str) -> list[StreamEvent]:
    """Every ambassador event still on ``stream``, in stream order."""
    return [
        StreamEvent(
            seq=m.seq,
            subject=m.subject,
            event_id=str(m.data["event_id"]),
            ambassador_id=str(m.data["ambassador_id"]),
            msg_id=m.msg_id,
        )
        for m in await read_stream(nats_url, stream)
    ]
