"""The envelope every event carries, and the base class of every message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# The largest message of any subject: a request, a reply or an event, in bytes. Every NATS
# server of ours is configured with it as max_payload (stack/nats.py writes it, the shipped
# configs under deploy/nats state it, a test holds them to it), and a service refuses a
# larger body before parsing it (services/runtime/rpc.py). What does not fit (pictures, a
# certificate) goes through an Object Store bucket.
MAX_MESSAGE_BYTES = 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of commands, queries and replies: unknown fields are ignored, never fatal."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Event(Message):
    """A fact in the past tense, published on JetStream at ``subject``.

    Consumers ignore fields they do not know, so adding a field is not breaking;
    a breaking change gets a new ``v2`` subject.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    subject: ClassVar[str]
    producer_name: ClassVar[str]
    # The field naming the thing this event is about (e.g. "ambassador_id"); lets the
    # producer find every event about one person again, e.g. to purge them on erasure.
    key_field: ClassVar[str | None] = None
    # The field naming the ambassador the event is about, if any: nothing about an erased
    # ambassador is applied anywhere, however late the event arrives (see the read model
    # of ambassadors in services/runtime).
    person_field: ClassVar[str | None] = None

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    producer: str = ""
    schema_version: int = 1
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None

    def key(self) -> str | None:
        return str(getattr(self, self.key_field)) if self.key_field else None

    def model_post_init(self, __context: object) -> None:
        if not self.producer:
            object.__setattr__(self, "producer", self.producer_name)
