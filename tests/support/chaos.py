"""What the chaos tests share: waiting with a deadline, and reading a stream back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats
from nats.js.errors import NotFoundError


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
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        events = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            data = json.loads(msg.data or b"{}")
            events.append(
                StreamEvent(
                    seq=seq,
                    subject=msg.subject or "",
                    event_id=str(data["event_id"]),
                    ambassador_id=str(data["ambassador_id"]),
                    msg_id=(msg.headers or {}).get("Nats-Msg-Id"),
                )
            )
        return events
    finally:
        await nc.close()
