"""Reading a whole JetStream stream back, message by message, as a test checks it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
from nats.js.errors import NotFoundError

from services.runtime.settings import nats_servers


@dataclass(frozen=True)
class OnStream:
    seq: int
    subject: str
    msg_id: str | None
    data: dict[str, Any]
    # When the stream's leader stored it.
    at: datetime | None = None

    @property
    def name(self) -> str:
        """``events.v1.invited`` -> ``invited``."""
        return self.subject.rsplit(".", 1)[-1]


def _stored_at(time: datetime | str | None) -> datetime | None:
    # nats-py passes the server's RFC 3339 time through as text in some versions.
    if isinstance(time, str):
        return datetime.fromisoformat(time.replace("Z", "+00:00"))
    return time


async def read_stream(nats_url: str, stream: str, **login: str) -> list[OnStream]:
    """Every message still on ``stream``, in stream order (deleted ones are skipped).
    ``login``: ``nats.connect`` keywords of a user who may read it (its producer's)."""
    nc = await nats.connect(nats_servers(nats_url), **login)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(stream)).state
        found = []
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            found.append(
                OnStream(
                    seq=seq,
                    subject=msg.subject or "",
                    msg_id=(msg.headers or {}).get("Nats-Msg-Id"),
                    data=json.loads(msg.data or b"{}"),
                    at=_stored_at(msg.time),
                )
            )
        return found
    finally:
        await nc.close()
