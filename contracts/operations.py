"""Operator endpoints every service answers: health, dead letters, failed outbox entries and
the audit trail. They are the same for every service, so they are declared per service name
(``health(name)``, ``dead_letters(name)``, ...) rather than once per contracts module."""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.endpoints import Endpoint, command, query
from contracts.envelope import Message
from contracts.text import normalise_email


class OperationsView(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- health


class GetHealth(Message):
    pass


class Health(OperationsView):
    service: str
    status: str
    uptime_seconds: float
    # Events written but not yet on their stream, and entries that can never be published.
    outbox_pending: int | None = None
    outbox_failed: int | None = None
    # The release it runs (the samskab package's version).
    version: str | None = None
    # Events on the streams it consumes that it has not yet handled (not delivered, or
    # delivered and not acknowledged), over all its durable consumers.
    consumer_lag: int | None = None
    # Dead letters not yet replayed.
    dead_letters: int | None = None
    # What staff must act on although the service answers (status "degraded"): e.g.
    # publishing to the Facebook Page paused by an expired token.
    problems: list[str] = []


@cache
def health(service: str) -> Endpoint[GetHealth, Health]:
    return Endpoint(f"{service}.health", GetHealth, Health, "Is the service up, and its outbox?")


def health_subject(service: str) -> str:
    return health(service).subject


# ---------------------------------------------------------------- dead letters


class ListDeadLetters(Message):
    limit: int = Field(default=100, ge=1, le=1000)
    include_replayed: bool = False


class ShowDeadLetter(Message):
    id: str = Field(min_length=1, max_length=200)


class ReplayDeadLetter(Message):
    audit_target: ClassVar[str | None] = "id"

    id: str = Field(min_length=1, max_length=200)


class DeadLetterView(OperationsView):
    id: str
    # "event": a message a consumer could not apply; "outbox": an event of the service's
    # own that can never be published (its subject refused, its payload too large).
    kind: Literal["event", "outbox"] = "event"
    stream: str | None = None
    seq: int | None = None
    consumer: str | None = None
    subject: str | None = None
    event_id: str | None = None
    deliveries: int | None = None
    reason: str | None = None
    dead_at: str
    replayed_at: str | None = None
    replays: int = 0
    # Only when shown: the message as it was (JSON, or base64 when it is not JSON), or
    # null when an erasure scrubbed it.
    payload: Any = None
    payload_base64: str | None = None
    scrubbed: bool = False
    service: str | None = None


class DeadLetterPage(OperationsView):
    service: str
    items: list[DeadLetterView]


class ReplayResult(OperationsView):
    service: str
    id: str
    applied: bool
    already_applied: bool
    # What else there is to say (it was ignored: the ambassador was erased; a failed outbox
    # entry was queued again); left out of the reply when there is nothing.
    note: str | None = Field(default=None, exclude_if=lambda note: note is None)


@cache
def dead_letters_list(service: str) -> Endpoint[ListDeadLetters, DeadLetterPage]:
    return query(
        f"{service}.query.dead_letters.list",
        ListDeadLetters,
        DeadLetterPage,
        "Dead letters of this service and its failed outbox entries, newest first.",
    )


@cache
def dead_letters_show(service: str) -> Endpoint[ShowDeadLetter, DeadLetterView]:
    return query(
        f"{service}.query.dead_letters.show",
        ShowDeadLetter,
        DeadLetterView,
        "One dead letter (or failed outbox entry) with its payload.",
    )


@cache
def dead_letters_replay(service: str) -> Endpoint[ReplayDeadLetter, ReplayResult]:
    return command(
        f"{service}.cmd.dead_letters.replay",
        ReplayDeadLetter,
        ReplayResult,
        "Apply a dead letter again through the same inbox-guarded handler (a failed outbox "
        "entry is queued for publishing again).",
    )


def dead_letters_list_subject(service: str) -> str:
    return dead_letters_list(service).subject


def dead_letters_show_subject(service: str) -> str:
    return dead_letters_show(service).subject


def dead_letters_replay_subject(service: str) -> str:
    return dead_letters_replay(service).subject


# ---------------------------------------------------------------- audit


class ListAudit(Message):
    target: str | None = Field(default=None, min_length=1, max_length=200)
    limit: int = Field(default=100, ge=1, le=1000)


class AuditRecord(OperationsView):
    """Who asked for what, about which ids, and how it ended. Ids only: no personal field."""

    id: str
    service: str
    actor: str
    command: str
    targets: list[str] = []
    at: AwareDatetime
    # "ok", or the error code the command was answered with.
    outcome: str


class AuditPage(OperationsView):
    service: str
    items: list[AuditRecord]


@cache
def audit(service: str) -> Endpoint[ListAudit, AuditPage]:
    return query(
        f"{service}.query.audit",
        ListAudit,
        AuditPage,
        "The audit trail of this service's commands, newest first.",
    )


# ---------------------------------------------------------------- a person's data (GDPR)

# An address as long as any address may be (RFC 5321).
ADDRESS_MAX = 254


def _an_address(value: str | None) -> str | None:
    return None if value is None else normalise_email(value)


class Person(Message):
    """Whom a request is about: their address, their ambassador id, or both (the CLI asks
    the ambassadors service first and then every other service with both)."""

    email: str | None = Field(default=None, min_length=3, max_length=ADDRESS_MAX)
    ambassador_id: str | None = Field(default=None, min_length=1, max_length=200)

    _email_is_an_address = field_validator("email")(_an_address)

    @model_validator(mode="after")
    def _someone(self) -> Person:
        if self.email is None and self.ambassador_id is None:
            raise ValueError("give an address or an ambassador id")
        return self


class ExportPersonalData(Person):
    """Everything the service holds on the person, a part at a time: a part is at most
    :data:`EXPORT_PART_BYTES` of records, ``next_part`` says where the next one starts."""

    audit_target: ClassVar[str | None] = "ambassador_id"

    part: int = Field(default=0, ge=0, le=1_000_000)


# A NATS message holds at most 1 MB (max_payload): a part stays well below it.
EXPORT_PART_BYTES = 512 * 1024


class PersonalRecord(OperationsView):
    """One stored record about the person, as stored (its secrets left out)."""

    collection: str
    id: str
    record: dict[str, Any]


class PersonalData(OperationsView):
    # The audit record names the ambassador the records are about, also when the request
    # gave only an address.
    audit_target: ClassVar[str | None] = "ambassador_id"

    service: str
    email: str | None = None
    ambassador_id: str | None = None
    records: list[PersonalRecord] = []
    # The part to ask for next, or None: this was the last.
    next_part: int | None = None


class FindAddress(Message):
    email: str = Field(min_length=3, max_length=ADDRESS_MAX)

    _email_is_an_address = field_validator("email")(_an_address)


class AddressFound(OperationsView):
    """One place that holds the address: a collection, a stream; how often, and the first
    ids (documents) or sequence numbers (stream messages)."""

    kind: Literal["collection", "stream"]
    name: str
    count: int
    ids: list[str] = []


class AddressSearch(OperationsView):
    service: str
    email: str
    found: list[AddressFound] = []
    # Every collection and stream searched, so "not found" is checkable.
    searched: list[str] = []


@cache
def privacy_export(service: str) -> Endpoint[ExportPersonalData, PersonalData]:
    return command(
        f"{service}.cmd.privacy.export",
        ExportPersonalData,
        PersonalData,
        "Everything the service holds on a person (GDPR articles 15 and 20), a part at a "
        "time. A command: who exported whose data goes into the audit trail.",
    )


@cache
def privacy_audit(service: str) -> Endpoint[FindAddress, AddressSearch]:
    return command(
        f"{service}.cmd.privacy.audit",
        FindAddress,
        AddressSearch,
        "Where an address occurs: every collection of the service's database, its event "
        "stream and its dead-letter stream. A command: each search is audited.",
    )


def operator_endpoints(service: str) -> list[Endpoint[Any, Any]]:
    """Every endpoint a service answers besides its own contracts' (the same for all)."""
    return [
        health(service),
        dead_letters_list(service),
        dead_letters_show(service),
        dead_letters_replay(service),
        audit(service),
        privacy_export(service),
        privacy_audit(service),
    ]
