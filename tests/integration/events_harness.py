"""The events service under test: started as a real process next to the real ambassadors
service, with a clock the test moves, and the EVENTS stream read back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from nats.js.errors import NotFoundError
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events import STREAM, Endpoints
from services.runtime.clock import travel
from services.runtime.tokens import ANSWER, Signer
from stack.processes import ManagedProcess
from tests.integration.ambassadors_harness import (
    Ambassadors,
    eventually,
    unique_email,
)
from tests.support.stack import TOKEN_SECRETS

Document = dict[str, Any]


@dataclass(frozen=True)
class BusEvent:
    seq: int
    subject: str
    msg_id: str | None
    data: Document

    @property
    def name(self) -> str:
        """``events.v1.invited`` -> ``invited``."""
        return self.subject.rsplit(".", 1)[-1]

    @property
    def meeting_id(self) -> str | None:
        meeting = self.data.get("meeting") or {}
        return self.data.get("meeting_id") or meeting.get("meeting_id")


@dataclass
class Events:
    process: ManagedProcess
    ambassadors: Ambassadors
    database: str
    db: AsyncDatabase[Document]
    clock_file: Path
    first_seq: int
    _read: list[BusEvent] = field(default_factory=list)
    _next_seq: int = 0

    async def request(self, subject: str, payload: Mapping[str, Any] | None = None) -> Any:
        return await self.ambassadors.client.request(subject, dict(payload or {}))

    def travel(self, to: datetime) -> None:
        travel(self.clock_file, to)

    async def active_ambassador(self, **fields: Any) -> str:
        """A staff sign-up (active at once) that this service has taken in; its id."""
        fields.setdefault("email", unique_email("inv"))
        result = await self.ambassadors.sign_up(staff=True, **fields)
        ambassador_id = str(result["ambassador"]["id"])
        await self.knows(ambassador_id)
        return ambassador_id

    async def knows(self, ambassador_id: str, standing: str = "active") -> None:
        """The service's read model has the ambassador as ``standing`` (active, withdrawn,
        or erased: a tombstone, the id and nothing else)."""

        async def probe() -> bool | None:
            found = await self.db.ambassadors.find_one({"_id": ambassador_id})
            return True if found is not None and found.get("standing") == standing else None

        await eventually(probe, timeout=30.0, what=f"events knows {ambassador_id}: {standing}")

    def answer_token(self, meeting_id: str, ambassador_id: str) -> str:
        """The token of the answer links in an invitation's mail, as the newsletter service
        signs it (with the secret it shares with the events service)."""
        return Signer(TOKEN_SECRETS["SAMSKAB_EVENTS_TOKEN_SECRET"], ANSWER).sign(
            meeting_id, ambassador_id
        )

    async def schedule(self, **fields: Any) -> Document:
        payload: dict[str, Any] = {
            "kind": "ambassador_meeting",
            "title": f"Ambassadørmøde {uuid.uuid4().hex[:6]}",
            "starts": local_iso(days_from_now(10)),
            "ends": local_iso(days_from_now(10) + timedelta(hours=2)),
            "place": "Fredericia Rådhus",
        }
        payload.update(fields)
        result: Document = await self.request(Endpoints.SCHEDULE.subject, payload)
        return result

    async def show(self, meeting_id: str) -> Document:
        result: Document = await self.request(Endpoints.SHOW.subject, {"meeting_id": meeting_id})
        return result

    async def rsvp(self, meeting_id: str, ambassador_id: str, answer: str) -> Document:
        result: Document = await self.request(
            Endpoints.RSVP.subject,
            {"meeting_id": meeting_id, "ambassador_id": ambassador_id, "answer": answer},
        )
        return result

    # -------------------------------------------------------------- the EVENTS stream

    async def bus(self, meeting_id: str | None = None, name: str | None = None) -> list[BusEvent]:
        js = self.ambassadors.js
        if not self._next_seq:
            self._next_seq = self.first_seq
        try:
            last = int((await js.stream_info(STREAM)).state.last_seq)
        except NotFoundError:
            last = 0
        while self._next_seq <= last:
            try:
                msg = await js.get_msg(STREAM, self._next_seq)
            except NotFoundError:
                self._next_seq += 1
                continue
            self._read.append(
                BusEvent(
                    seq=self._next_seq,
                    subject=msg.subject or "",
                    msg_id=(msg.headers or {}).get("Nats-Msg-Id"),
                    data=json.loads(msg.data or b"{}"),
                )
            )
            self._next_seq += 1
        return [
            e
            for e in self._read
            if (meeting_id is None or e.meeting_id == meeting_id)
            and (name is None or e.name == name)
        ]

    async def wait_for(
        self, meeting_id: str, name: str, count: int = 1, timeout: float = 30.0
    ) -> list[BusEvent]:
        async def probe() -> list[BusEvent] | None:
            found = await self.bus(meeting_id, name)
            return found if len(found) >= count else None

        found: list[BusEvent] = await eventually(
            probe, timeout=timeout, interval=0.2, what=f"{count} × {name} for {meeting_id}"
        )
        return found


class EventsFactory(Protocol):
    def __call__(self, *, database: str | None = None) -> Awaitable[Events]: ...


def days_from_now(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(second=0, microsecond=0)


def local_iso(instant: datetime) -> str:
    """As staff type it: Copenhagen wall-clock time, no offset."""
    from contracts.events import COPENHAGEN

    return instant.astimezone(COPENHAGEN).replace(tzinfo=None).isoformat(timespec="minutes")
