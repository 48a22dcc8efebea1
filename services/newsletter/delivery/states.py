"""The life of one outbound mail, as pure functions: no I/O here.

A mail is a record before it is sent (``queued``), owned by one worker while it is being
sent (``sending``, with a lease), and ends ``sent``, ``failed`` or ``cancelled``. Every
transition returns the MongoDB update to apply to the record; :func:`apply` computes the
record it leads to, so the rules are tested without a database.

``attempts`` counts SMTP attempts *started*: a claim counts one, so a mail whose worker
keeps dying mid-send still runs out of attempts instead of looping for ever. Outcomes that
never reached SMTP (not ready, cancelled) give the attempt back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BULK_KINDS",
    "NOT_READY_DELAY",
    "NOT_READY_LIMIT",
    "Attachment",
    "Cancelled",
    "DeliveryFailure",
    "MailRecord",
    "MailState",
    "MaterializedMail",
    "NotReady",
    "PermanentFailure",
    "TransientFailure",
    "Update",
    "apply",
    "cancelled",
    "claim",
    "classify",
    "delivered",
    "erased",
    "mail_id_for",
    "message_id_for",
    "new_mail",
    "not_ready",
    "permanent_failure",
    "refs_for",
    "release",
    "retry_delay",
    "scrub",
    "transient_failure",
]

# A mail whose attachment is not there yet (the certificate PDF still rendering) is looked
# at again this soon, and given up after this long.
NOT_READY_DELAY = timedelta(seconds=10)
NOT_READY_LIMIT = timedelta(hours=24)

# Kinds sent in bulk; every other kind goes first.
BULK_KINDS = frozenset({"issue"})

# Stored error texts are for people reading the CLI, not a log of the conversation.
MAX_ERROR_CHARS = 500

Update = dict[str, dict[str, Any]]
"""A MongoDB update document: ``{"$set": {...}}`` (plus ``$inc`` for a claim)."""


class MailState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({MailState.SENT, MailState.FAILED, MailState.CANCELLED})


class Attachment(BaseModel):
    """An attachment and how the mail names it: its bytes are either in an Object Store
    bucket (``bucket`` + ``object_name``, e.g. a certificate PDF rendered elsewhere) or the
    record carries them as ``text`` (small, e.g. an iCalendar invitation; UTF-8 on the wire).

    ``content_type`` may have parameters (``text/calendar; method=REQUEST; charset=utf-8``).
    Inline text is personal data like the rest of the record: erasure drops it.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    filename: str
    content_type: str = "application/octet-stream"
    bucket: str | None = None
    object_name: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        stored = self.bucket is not None or self.object_name is not None
        if stored and (self.bucket is None or self.object_name is None):
            raise ValueError("an attachment in the Object Store needs bucket and object_name")
        if stored == (self.text is not None):
            raise ValueError("an attachment is either in the Object Store or inline text")
        return self


class MailRecord(BaseModel):
    """One document of the ``mails`` collection; ``id`` is stored as ``_id``."""

    # extra="ignore": a later release may add fields; an older worker still reads the record.
    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)

    id: str
    message_id: str
    dedupe_key: str
    kind: str
    to_address: str | None
    to_name: str | None = None
    subscriber_id: str | None = None
    ambassador_id: str | None = None
    issue_id: str | None = None
    # Ambassadors the mail names besides its recipient (a staff notice's): their erasure
    # scrubs it too.
    mentions: tuple[str, ...] = ()
    context: dict[str, Any] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)
    # 0 for mail someone waits for (confirmation, welcome), 1 for bulk (an issue's fan-out):
    # a sign-up's confirmation does not queue behind ten thousand digests.
    priority: int = 0
    state: MailState = MailState.QUEUED
    attempts: int = 0
    next_attempt_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    last_error: str | None = None
    # SMTP reply code of the last failure, when the server gave one.
    last_code: int | None = None
    # First time materialize() said NotReady; the 24 h limit counts from here.
    not_ready_since: datetime | None = None
    created_at: datetime
    sent_at: datetime | None = None
    # When the mail reached failed/cancelled (sent_at for sent).
    finished_at: datetime | None = None
    erased_at: datetime | None = None

    def to_document(self) -> dict[str, Any]:
        if self.id != mail_id_for(self.dedupe_key):
            # The _id is what keeps a dedupe key unique; see mail_id_for.
            raise ValueError("a mail's id must be mail_id_for(dedupe_key): use new_mail()")
        doc = self.model_dump(mode="python", exclude={"id"})
        doc["_id"] = self.id
        doc["state"] = self.state.value
        doc["refs"] = refs_for(self.subscriber_id, self.ambassador_id, self.issue_id)
        doc["refs"] += [f"ambassador:{a}" for a in self.mentions if a != self.ambassador_id]
        doc["mentions"] = list(self.mentions)
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> MailRecord:
        data = dict(doc)
        data["id"] = data.pop("_id")
        return cls.model_validate(data)


def message_id_for(mail_id: str, domain: str) -> str:
    return f"<{mail_id}@{domain}>"


def mail_id_for(dedupe_key: str) -> str:
    """The mail id (and so the Message-ID) follows from the dedupe key.

    The ``_id`` index then does the dedupe key's job (one index less to update on every
    state change, which SecantusDB pays per index), and a fan-out re-run after a crash
    produces the very same Message-IDs.
    """
    return hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:32]


def refs_for(
    subscriber_id: str | None, ambassador_id: str | None, issue_id: str | None
) -> list[str]:
    """What a mail is about, as one multikey-indexed field: erasure and issue progress.

    One index instead of three: each index costs on every state change.
    """
    pairs = (("subscriber", subscriber_id), ("ambassador", ambassador_id), ("issue", issue_id))
    return [f"{kind}:{value}" for kind, value in pairs if value is not None]


def new_mail(
    *,
    kind: str,
    dedupe_key: str,
    to_address: str,
    message_id_domain: str,
    to_name: str | None = None,
    subscriber_id: str | None = None,
    ambassador_id: str | None = None,
    issue_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    attachments: Sequence[Attachment] = (),
    now: datetime | None = None,
    mentions: Sequence[str] = (),
    priority: int | None = None,
) -> MailRecord:
    """A queued mail, due at once, with its Message-ID fixed for every retry to come."""
    now = now or datetime.now(UTC)
    mail_id = mail_id_for(dedupe_key)
    return MailRecord(
        id=mail_id,
        message_id=message_id_for(mail_id, message_id_domain),
        dedupe_key=dedupe_key,
        kind=kind,
        to_address=to_address,
        to_name=to_name,
        subscriber_id=subscriber_id,
        ambassador_id=ambassador_id,
        issue_id=issue_id,
        mentions=tuple(dict.fromkeys(mentions)),
        context=dict(context or {}),
        attachments=list(attachments),
        priority=(1 if kind in BULK_KINDS else 0) if priority is None else priority,
        next_attempt_at=now,
        created_at=now,
    )


@dataclass(frozen=True)
class MaterializedMail:
    """What materialize() turns a record into: the bytes on the wire and the envelope."""

    message: bytes
    sender: str
    recipients: list[str]


class NotReady(Exception):
    """Raised by materialize(): something the mail needs (an attachment) does not exist yet."""


class Cancelled(Exception):
    """Raised (or None returned) by materialize(): there is nothing to send any more."""


# ---------------------------------------------------------------- transitions


def _leave_sending(state: MailState) -> dict[str, Any]:
    return {"state": state.value, "claimed_by": None, "claimed_until": None}


def claim(worker_id: str, now: datetime, lease: timedelta) -> Update:
    """Queued (or sending with a lease run out) -> sending, owned by ``worker_id``."""
    return {
        "$set": {
            "state": MailState.SENDING.value,
            "claimed_by": worker_id,
            "claimed_until": now + lease,
        },
        "$inc": {"attempts": 1},
    }


def delivered(record: MailRecord, now: datetime) -> Update:
    return {
        "$set": _leave_sending(MailState.SENT)
        | {"sent_at": now, "finished_at": now, "last_error": None, "last_code": None}
    }


def retry_delay(attempts: int, backoff: Sequence[float]) -> float:
    """Seconds before the next try after ``attempts`` tries; the last delay repeats."""
    if not backoff:
        return 0.0
    return float(backoff[min(max(attempts, 1), len(backoff)) - 1])


def transient_failure(
    record: MailRecord,
    error: DeliveryFailure,
    now: datetime,
    *,
    max_attempts: int,
    backoff: Sequence[float],
) -> Update:
    """4xx or no answer: try again later, or give up after ``max_attempts``."""
    details = {"last_error": scrub(error.message, record.to_address), "last_code": error.code}
    if record.attempts >= max_attempts:
        return {"$set": _leave_sending(MailState.FAILED) | details | {"finished_at": now}}
    delay = timedelta(seconds=retry_delay(record.attempts, backoff))
    return {"$set": _leave_sending(MailState.QUEUED) | details | {"next_attempt_at": now + delay}}


def permanent_failure(record: MailRecord, error: DeliveryFailure, now: datetime) -> Update:
    """5xx: the server will not take this mail; never retried."""
    return {
        "$set": _leave_sending(MailState.FAILED)
        | {
            "last_error": scrub(error.message, record.to_address),
            "last_code": error.code,
            "finished_at": now,
        }
    }


def not_ready(record: MailRecord, reason: str, now: datetime) -> Update:
    """Requeued shortly without using up an SMTP attempt; failed once it waited 24 h."""
    since = record.not_ready_since or now
    common = {
        "attempts": max(record.attempts - 1, 0),
        "last_error": scrub(f"not ready: {reason}", record.to_address),
        "last_code": None,
        "not_ready_since": since,
    }
    if now - since >= NOT_READY_LIMIT:
        return {"$set": _leave_sending(MailState.FAILED) | common | {"finished_at": now}}
    return {
        "$set": _leave_sending(MailState.QUEUED)
        | common
        | {"next_attempt_at": now + NOT_READY_DELAY}
    }


def cancelled(record: MailRecord, reason: str, now: datetime) -> Update:
    """Nothing to send any more (unsubscribed, erased): final, no SMTP attempt made."""
    return {
        "$set": _leave_sending(MailState.CANCELLED)
        | {
            "attempts": max(record.attempts - 1, 0),
            "last_error": scrub(reason, record.to_address),
            "finished_at": now,
        }
    }


def release(record: MailRecord) -> Update:
    """Claimed but never started (the worker is stopping): back to queued, attempt returned."""
    return {
        "$set": _leave_sending(MailState.QUEUED)
        | {"attempts": max(record.attempts - 1, 0), "next_attempt_at": record.next_attempt_at}
    }


def erased(now: datetime) -> dict[str, Any]:
    """What erasure sets on every mail of a person: no address, name, mail context or
    attachment stays (an inline attachment such as an invitation's .ics names the person,
    and the context may hold their tokens). See ``erasure.erase_recipient``."""
    return {
        "to_address": None,
        "to_name": None,
        "context": {},
        "attachments": [],
        "erased_at": now,
    }


def apply(record: MailRecord, update: Update) -> MailRecord:
    """The record an update leads to (what MongoDB will hold after applying it)."""
    data = record.model_dump()
    for field, value in update.get("$set", {}).items():
        data[field] = value
    for field, amount in update.get("$inc", {}).items():
        data[field] = data[field] + amount
    return MailRecord.model_validate(data)


def scrub(text: str, address: str | None) -> str:
    """Error text fit to store: servers echo the recipient's address in their replies."""
    if address:
        text = text.replace(address, "<recipient>")
        lower = address.lower()
        if lower != address:
            text = text.replace(lower, "<recipient>")
    return text[:MAX_ERROR_CHARS]


# ---------------------------------------------------------------- classification


class DeliveryFailure(Exception):
    """A send that did not succeed; ``permanent`` decides between retry and failed."""

    permanent: bool = False

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class TransientFailure(DeliveryFailure):
    """4xx, a lost connection, a timeout, a server or configuration problem: try again."""

    permanent = False


class PermanentFailure(DeliveryFailure):
    """The server refused this recipient or this message for good (5xx): a hard bounce."""

    permanent = True


def _by_code(code: int, message: str) -> DeliveryFailure:
    # RFC 5321 4.2.1: the first digit decides. 4yz (421, 450, 451, 452) is transient, 5yz
    # (550, 551, 552, 553, 554) permanent. 552 on RCPT once meant "too many recipients"
    # and RFC 5321 4.5.3.1.10 asks clients to treat it as 452 there; we send to one
    # recipient per mail, so it cannot mean that here.
    text = f"{code} {message}".strip()
    if 500 <= code < 600:
        return PermanentFailure(text, code)
    return TransientFailure(text, code)


def classify(failure: BaseException | int | tuple[int, str]) -> DeliveryFailure:
    """Map an aiosmtplib exception, an exception of ours or a reply code to a failure.

    Only a refusal of the recipient or of the message counts as permanent: a refused
    sender, failed authentication or a refused EHLO is our configuration or the server's
    state, the same for every mail, and must not mark every recipient as bouncing.
    """
    if isinstance(failure, DeliveryFailure):
        return failure
    if isinstance(failure, int):
        return _by_code(failure, "")
    if isinstance(failure, tuple):
        return _by_code(failure[0], failure[1])
    exc = failure
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = [classify(r) for r in exc.recipients] or [TransientFailure("no recipients")]
        # Any recipient worth retrying makes the mail worth retrying.
        transient = [r for r in refusals if not r.permanent]
        return transient[0] if transient else refusals[0]
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return _by_code(exc.code, exc.message)
    if isinstance(
        exc,
        aiosmtplib.SMTPSenderRefused
        | aiosmtplib.SMTPAuthenticationError
        | aiosmtplib.SMTPHeloError
        | aiosmtplib.SMTPConnectResponseError,
    ):
        return TransientFailure(f"{exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # E.g. an internationalised address the server cannot take: retrying cannot help.
        return PermanentFailure(f"not supported: {exc.message}")
    if isinstance(exc, ValueError):
        # aiosmtplib refuses an address it cannot put on the wire before sending anything.
        return PermanentFailure(f"unusable address: {exc}")
    # Everything else (a lost connection, a timeout, TLS trouble, a bug) is worth another
    # try; the attempt limit bounds it.
    return TransientFailure(f"{type(exc).__name__}: {exc}")
