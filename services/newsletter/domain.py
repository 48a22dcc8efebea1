"""Pure rules of the newsletter: subscribers and their tokens, news items, issues.

No I/O here: store.py loads and saves, handlers.py orchestrates.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.newsletter import (
    ITEMS_PER_ISSUE_MAX,
    IssueState,
    SubscriberSource,
    SubscriberStatus,
)
from contracts.text import (
    clean_line,
    clean_text,
    normalise_email,
    normalise_name,
    normalise_website,
)
from services.runtime.danish import month_name
from services.runtime.tokens import new_nonce

COPENHAGEN = ZoneInfo("Europe/Copenhagen")

# Mail kinds that exist because someone subscribed: they stop when the subscription does.
# Every other kind (confirmation, welcome, goodbye) is a message about something the person
# did, and goes out whatever their subscription says.
NEWSLETTER_KINDS = frozenset({"issue"})


def _fail(code: ErrorCode, message: str, field: str | None = None) -> ServiceError:
    details = [FieldError(field=field, message=message)] if field else None
    return ServiceError(code, message, details)


# ---------------------------------------------------------------- normalising


def address_key(email: str) -> str:
    """The form uniqueness is checked on: mailbox providers ignore case in practice."""
    return email.casefold()


def normalised_email(value: str, field: str = "email") -> str:
    try:
        email = normalise_email(value)
    except ValueError as exc:
        raise _fail(ErrorCode.VALIDATION_FAILED, str(exc), field) from None
    return email


def normalised_name(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        return normalise_name(value)
    except ValueError as exc:
        raise _fail(ErrorCode.VALIDATION_FAILED, str(exc), "name") from None


# ---------------------------------------------------------------- tokens


def confirm_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/newsletter/confirm/{token}"


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/newsletter/unsubscribe/{token}"


def ambassador_confirm_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/confirm/{token}"


def verify_url(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/verify/{code}"


def rsvp_url(public_url: str, token: str, answer: str) -> str:
    return f"{public_url.rstrip('/')}/rsvp/{quote(token, safe='')}/{answer}"


def alert_answer_url(public_url: str, token: str, answer: str) -> str:
    """The page that answers a staff network's call-out (``ja``: I can help)."""
    return f"{public_url.rstrip('/')}/akut/{quote(token, safe='')}/{answer}"


def network_answer_url(public_url: str, token: str, answer: str) -> str:
    """The page that answers a network invitation (``ja`` or ``nej`` preselected)."""
    return f"{public_url.rstrip('/')}/netvaerk/svar/{quote(token, safe='')}/{answer}"


# ---------------------------------------------------------------- subscribers


class Unsubscriber:
    """Who ended a subscription; only the person's own word is final against later events."""

    SELF = "self"  # the link or the command, with the personal token
    WITHDRAWN = "withdrawn"  # the ambassador left the network; rejoining resubscribes


class Subscriber(BaseModel):
    """A subscriber as the service stores it.

    No token is stored: the links a mail carries are signed (services/runtime/tokens.py)
    when the mail is put together. What is stored is the pending confirmation's nonce (a
    new subscription replaces it, and the older link stops working) and the nonce of the
    link that confirmed the address (a second click is "already confirmed").
    """

    model_config = ConfigDict(frozen=True)

    id: str
    status: SubscriberStatus
    source: SubscriberSource
    address: str | None
    address_key: str | None
    name: str | None = None
    ambassador_id: str | None = None
    confirmation_nonce: str | None = None
    token_expires_at: datetime | None = None
    # When confirmation mails were asked for in the last day (see subscribe).
    confirmations_asked: tuple[datetime, ...] = ()
    confirmed_nonce: str | None = None
    # What older releases stored instead: hashes of random tokens they mailed.
    token_hash: str | None = None
    confirmed_token_hash: str | None = None
    unsubscribe_token_hash: str | None = None
    unsubscribed_by: str | None = None
    hard_bounces: int = 0
    created_at: datetime
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    erased_at: datetime | None = None

    @property
    def opted_out(self) -> bool:
        """The person ended the subscription themselves: nothing but they may undo that."""
        return self.status == SubscriberStatus.UNSUBSCRIBED and (
            self.unsubscribed_by == Unsubscriber.SELF
        )


@dataclass(frozen=True)
class SubscribeOutcome:
    subscriber: Subscriber
    token_reissued: bool
    # False when the address had its day's confirmation mails: nothing is sent.
    mail: bool = True
    # The address is subscribed already: its owner is told, nothing else changes.
    already_subscribed: bool = False


CONFIRMATIONS_WINDOW = timedelta(days=1)


def subscribe(
    existing: Subscriber | None,
    *,
    email: str,
    name: str | None,
    now: datetime,
    token_ttl: timedelta,
    confirmations_per_day: int = 3,
) -> SubscribeOutcome:
    """A direct subscription waiting for its confirmation, or a fresh link for one.

    Subscribing again after unsubscribing is the person's own new word: it is allowed, and
    like the first time it counts only once the address is confirmed (until then the
    record stays unsubscribed). Anyone may type any address: a repeated subscription keeps
    the name given first, and an address gets at most ``confirmations_per_day`` mails a
    day (beyond that nothing is sent).
    """
    asked: tuple[datetime, ...] = ()
    if existing is not None:
        asked = tuple(t for t in existing.confirmations_asked if t > now - CONFIRMATIONS_WINDOW)
        confirmed = existing.status == SubscriberStatus.CONFIRMED
        if len(asked) >= confirmations_per_day:
            return SubscribeOutcome(
                existing, token_reissued=True, mail=False, already_subscribed=confirmed
            )
        if confirmed:
            told = existing.model_copy(update={"confirmations_asked": (*asked, now)})
            return SubscribeOutcome(told, token_reissued=False, already_subscribed=True)
    pending = {
        "confirmation_nonce": new_nonce(),
        "token_expires_at": now + token_ttl,
        "token_hash": None,
        "confirmations_asked": (*asked, now),
    }
    if existing is None:
        subscriber = Subscriber(
            id=uuid.uuid4().hex,
            status=SubscriberStatus.PENDING,
            source=SubscriberSource.DIRECT,
            address=email,
            address_key=address_key(email),
            name=name,
            created_at=now,
            **pending,
        )
        return SubscribeOutcome(subscriber, token_reissued=False)
    updated = existing.model_copy(
        update={**pending, "name": existing.name or name, "address": email}
    )
    reissued = existing.status == SubscriberStatus.PENDING
    return SubscribeOutcome(updated, token_reissued=reissued)


def check_confirmation(found: Subscriber | None, nonce: str, now: datetime) -> Subscriber:
    """The subscriber a genuine confirmation link (its subscriber and nonce) confirms now."""
    if found is not None and found.confirmation_nonce == nonce:
        return confirm(found, now)
    if found is not None and found.confirmed_nonce == nonce:
        return confirm(None, now, confirmed=found)
    return confirm(None, now)


def confirm(
    found: Subscriber | None, now: datetime, *, confirmed: Subscriber | None = None
) -> Subscriber:
    """The subscriber whose confirmation token this is, now confirmed.

    ``confirmed`` is the subscriber this token confirmed before, if any.
    """
    if found is None and confirmed is not None:
        raise _fail(ErrorCode.INVALID_STATE, "this subscription is already confirmed")
    if found is None or found.status == SubscriberStatus.ERASED:
        raise _fail(ErrorCode.INVALID_TOKEN, "the confirmation link is not valid")
    if found.token_expires_at is None or found.token_expires_at < now:
        raise _fail(
            ErrorCode.TOKEN_EXPIRED,
            "the confirmation link has expired; subscribe again to get a new one",
        )
    return found.model_copy(
        update={
            "status": SubscriberStatus.CONFIRMED,
            "confirmed_at": now,
            "confirmation_nonce": None,
            "token_expires_at": None,
            "confirmed_nonce": found.confirmation_nonce,
            "token_hash": None,
            "confirmed_token_hash": found.token_hash,
            "unsubscribed_at": None,
            "unsubscribed_by": None,
            # Confirming is how a bouncing address is declared fixed.
            "hard_bounces": 0,
        }
    )


def unsubscribe(subscriber: Subscriber, now: datetime, *, by: str) -> tuple[Subscriber, bool]:
    """End the subscription; returns the subscriber and whether anything changed.

    Idempotent: a second click on the link, or a withdrawal after an unsubscribe, changes
    nothing (and keeps the person's own unsubscribe as the reason).
    """
    if subscriber.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.ERASED):
        if (
            by == Unsubscriber.SELF
            and subscriber.status == SubscriberStatus.UNSUBSCRIBED
            and subscriber.unsubscribed_by != Unsubscriber.SELF
        ):
            # A withdrawal ended it, and now the person says so too: that is final.
            return subscriber.model_copy(update={"unsubscribed_by": by}), True
        return subscriber, False
    return (
        subscriber.model_copy(
            update={
                "status": SubscriberStatus.UNSUBSCRIBED,
                "unsubscribed_at": now,
                "unsubscribed_by": by,
                "confirmation_nonce": None,
                "token_hash": None,
                "token_expires_at": None,
            }
        ),
        True,
    )


@dataclass(frozen=True)
class Activation:
    subscriber: Subscriber
    # The subscription starts with this activation (it did not count before).
    subscribed: bool


def ambassador_activated(
    existing: Subscriber | None,
    *,
    ambassador_id: str,
    email: str,
    name: str,
    now: datetime,
) -> Activation:
    """An active ambassador gets the newsletter, unless that person or address opted out.

    The activation proves the address (confirmed by the ambassador's own link, or entered
    by staff), so no second confirmation is asked for.
    """
    if existing is None:
        subscriber = Subscriber(
            id=uuid.uuid4().hex,
            status=SubscriberStatus.CONFIRMED,
            source=SubscriberSource.AMBASSADOR,
            address=email,
            address_key=address_key(email),
            name=name,
            ambassador_id=ambassador_id,
            created_at=now,
            confirmed_at=now,
        )
        return Activation(subscriber, subscribed=True)
    linked = existing.model_copy(update={"ambassador_id": ambassador_id})
    if existing.status == SubscriberStatus.ERASED or existing.opted_out:
        return Activation(linked, subscribed=False)
    if existing.status == SubscriberStatus.BOUNCING:
        # The address still bounces; being an ambassador does not fix it.
        return Activation(linked, subscribed=False)
    if existing.status == SubscriberStatus.CONFIRMED:
        return Activation(linked.model_copy(update={"name": existing.name or name}), False)
    # Pending, or unsubscribed by an earlier withdrawal: the new membership subscribes.
    return Activation(
        linked.model_copy(
            update={
                "status": SubscriberStatus.CONFIRMED,
                "source": SubscriberSource.AMBASSADOR,
                "address": email,
                "address_key": address_key(email),
                "name": name,
                "confirmed_at": now,
                "confirmation_nonce": None,
                "token_hash": None,
                "token_expires_at": None,
                "unsubscribed_at": None,
                "unsubscribed_by": None,
            }
        ),
        subscribed=True,
    )


def update_contact(subscriber: Subscriber, *, email: str, name: str) -> Subscriber:
    """The ambassador changed name or address; the subscription itself stays as it is."""
    if subscriber.status == SubscriberStatus.ERASED:
        return subscriber
    return subscriber.model_copy(
        update={"address": email, "address_key": address_key(email), "name": name}
    )


def absorb(subscriber: Subscriber, other: Subscriber) -> Subscriber:
    """``subscriber`` takes over the address of ``other`` (which is then removed).

    An opt-out sticks to the address: if ``other`` was unsubscribed by the person, so is
    the one that now holds the address.
    """
    if other.opted_out and subscriber.status != SubscriberStatus.ERASED:
        return subscriber.model_copy(
            update={
                "status": SubscriberStatus.UNSUBSCRIBED,
                "unsubscribed_by": Unsubscriber.SELF,
                "unsubscribed_at": other.unsubscribed_at,
            }
        )
    return subscriber


def erase(subscriber: Subscriber, now: datetime) -> Subscriber:
    """Nothing that identifies the person is kept; the id stays for the mail records."""
    return subscriber.model_copy(
        update={
            "status": SubscriberStatus.ERASED,
            "address": None,
            "address_key": None,
            "name": None,
            "confirmation_nonce": None,
            "confirmed_nonce": None,
            "token_hash": None,
            "token_expires_at": None,
            "confirmed_token_hash": None,
            "unsubscribe_token_hash": None,
            "erased_at": now,
            "unsubscribed_at": subscriber.unsubscribed_at or now,
        }
    )


def hard_bounce(subscriber: Subscriber, limit: int) -> Subscriber:
    count = subscriber.hard_bounces + 1
    status = subscriber.status
    if count >= limit and status == SubscriberStatus.CONFIRMED:
        status = SubscriberStatus.BOUNCING
    return subscriber.model_copy(update={"hard_bounces": count, "status": status})


def may_receive(kind: str, subscriber: Subscriber | None) -> bool:
    """Whether a mail of ``kind`` to this subscriber still goes out when its turn comes."""
    if subscriber is None:
        return kind not in NEWSLETTER_KINDS
    if subscriber.status == SubscriberStatus.ERASED or subscriber.address is None:
        return False
    if subscriber.status == SubscriberStatus.BOUNCING:
        # Only the confirmation that fixes the address.
        return kind == "subscribe_confirmation"
    if kind in NEWSLETTER_KINDS:
        return subscriber.status == SubscriberStatus.CONFIRMED
    return True


# ---------------------------------------------------------------- news items


class StoredImage(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str
    object_name: str
    content_type: str
    width: int
    height: int
    size: int


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    body: str
    link: str | None = None
    image: StoredImage | None = None
    ambassador_id: str | None = None
    ambassador_name: str | None = None
    created_at: datetime
    used_in_issue: str | None = None


def new_item(
    *,
    item_id: str,
    title: str,
    body: str,
    link: str | None,
    image: StoredImage | None,
    ambassador_id: str | None,
    ambassador_name: str | None,
    now: datetime,
) -> Item:
    errors: list[FieldError] = []
    clean_title = clean_line(title)
    if not clean_title:
        errors.append(FieldError(field="title", message="must not be empty"))
    clean = clean_text(body)
    if not clean:
        errors.append(FieldError(field="body", message="must not be empty"))
    url = None
    if link and link.strip():
        try:
            url = normalise_website(link)
        except ValueError as exc:
            errors.append(FieldError(field="link", message=str(exc)))
    if errors:
        fields = ", ".join(e.field for e in errors)
        raise ServiceError(ErrorCode.VALIDATION_FAILED, f"invalid fields: {fields}", errors)
    return Item(
        id=item_id,
        title=clean_title,
        body=clean,
        link=url,
        image=image,
        ambassador_id=ambassador_id,
        ambassador_name=ambassador_name,
        created_at=now,
    )


def check_removable(item: Item) -> None:
    if item.used_in_issue is not None:
        raise _fail(
            ErrorCode.INVALID_STATE,
            "this item was sent in an issue; it stays in the archive",
        )


# ---------------------------------------------------------------- issues


class IssueSection(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    title: str
    entries: tuple[dict[str, Any], ...] = ()


class Issue(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    number: int
    state: IssueState
    title: str
    intro: str | None = None
    since: datetime
    until: datetime
    # Snapshots: what the issue says does not change when an item is edited later.
    items: tuple[Item, ...] = ()
    sections: tuple[IssueSection, ...] = ()
    created_at: datetime
    sending_since: datetime | None = None
    sent_at: datetime | None = None
    recipients: int = 0
    # The fan-out's progress: subscribers are queued in id order, this is the last queued.
    fanout_cursor: str | None = None
    archive_object: str | None = None
    # The send's job (how far the fan-out got, the sent issue once done).
    job_id: str | None = None
    # Personal data was scrubbed from a sent issue: its stored web version is rewritten.
    archive_stale: bool = False

    @property
    def section_counts(self) -> dict[str, int]:
        return {s.key: len(s.entries) for s in self.sections}


def start_of_day(day: date) -> datetime:
    """A date as the Danish reader means it: from midnight in Copenhagen."""
    return datetime.combine(day, time(0), tzinfo=COPENHAGEN).astimezone(UTC)


def default_since(last_until: datetime | None, now: datetime, default_days: int) -> datetime:
    return last_until if last_until is not None else now - timedelta(days=default_days)


def default_title(until: datetime) -> str:
    local = until.astimezone(COPENHAGEN)
    return f"Nyhedsbrev, {month_name(local.month)} {local.year}"


def assemble_issue(
    *,
    issue_id: str,
    number: int,
    title: str | None,
    intro: str | None,
    since: datetime,
    until: datetime,
    items: Sequence[Item],
    sections: Sequence[IssueSection],
    now: datetime,
) -> Issue:
    """A draft from the unused items (oldest first, up to the limit) and the sections.

    Items are not bound to the period: news added long ago and never sent is still news to
    the readers. Sections are, which is what ``since`` is for.
    """
    if since >= until:
        raise _fail(ErrorCode.VALIDATION_FAILED, "since must lie before now", "since")
    chosen = sorted((i for i in items if i.used_in_issue is None), key=lambda i: i.created_at)
    chosen = chosen[:ITEMS_PER_ISSUE_MAX]
    filled = [s for s in sections if s.entries]
    if not chosen and not filled:
        raise _fail(
            ErrorCode.INVALID_STATE,
            "nothing to tell: no unused news items and no section has news since "
            f"{since.astimezone(COPENHAGEN):%Y-%m-%d}; add an item or draft with an earlier since",
        )
    return Issue(
        id=issue_id,
        number=number,
        state=IssueState.DRAFT,
        title=clean_line(title or "") or default_title(until),
        intro=clean_text(intro) if intro and intro.strip() else None,
        since=since,
        until=until,
        items=tuple(chosen),
        sections=tuple(sections),
        created_at=now,
    )


def start_sending(
    issue: Issue, current: Mapping[str, Item | None], number: int, now: datetime
) -> Issue:
    """draft -> sending, if every item it shows is still there and not sent elsewhere.

    ``current`` maps each item id of the issue to the item as stored now (None: removed).
    """
    if issue.state != IssueState.DRAFT:
        raise _fail(ErrorCode.INVALID_STATE, f"issue {issue.number} is {issue.state.value}")
    stale = [
        item.title
        for item in issue.items
        if (now_item := current.get(item.id)) is None
        or now_item.used_in_issue not in (None, issue.id)
    ]
    if stale:
        raise _fail(
            ErrorCode.INVALID_STATE,
            "the draft is out of date (removed or already sent: "
            + "; ".join(stale[:3])
            + "); draft a new issue",
        )
    return issue.model_copy(
        update={"state": IssueState.SENDING, "number": number, "sending_since": now}
    )


def archive_object_name(number: int) -> str:
    return f"issue-{number:04d}.html"


def mark_sent(issue: Issue, *, recipients: int, now: datetime) -> Issue:
    if issue.state != IssueState.SENDING:
        raise _fail(ErrorCode.INVALID_STATE, f"issue {issue.number} is {issue.state.value}")
    return issue.model_copy(
        update={
            "state": IssueState.SENT,
            "sent_at": now,
            "recipients": recipients,
            "archive_object": archive_object_name(issue.number),
        }
    )


def scrub_ambassador(issue: Issue, ambassador_id: str) -> Issue | None:
    """The issue without anything naming this (erased) ambassador; None if it had nothing."""
    items = tuple(
        i.model_copy(update={"ambassador_name": None}) if i.ambassador_id == ambassador_id else i
        for i in issue.items
    )
    sections = tuple(
        s.model_copy(
            update={
                "entries": tuple(e for e in s.entries if e.get("ambassador_id") != ambassador_id)
            }
        )
        for s in issue.sections
    )
    if items == issue.items and sections == issue.sections:
        return None
    return issue.model_copy(
        update={
            "items": items,
            "sections": sections,
            "archive_stale": issue.state == IssueState.SENT,
        }
    )


def image_cid(item_id: str, domain: str) -> str:
    return f"item-{item_id}@{domain}"


def picture_cid(name: str, domain: str) -> str:
    """The Content-ID of a picture a section shows (a story's), by its object name."""
    return f"picture-{name.rsplit('.', 1)[0]}@{domain}"


def section_pictures(issue: Issue) -> list[StoredImage]:
    """The pictures the issue's sections show (a story's first picture), once each."""
    found: dict[str, StoredImage] = {}
    for section in issue.sections:
        for entry in section.entries:
            picture = entry.get("picture")
            if not picture or picture["name"] in found:
                continue
            found[picture["name"]] = StoredImage(
                bucket=picture["bucket"],
                object_name=picture["name"],
                content_type=picture.get("content_type") or "image/jpeg",
                width=int(picture["width"]),
                height=int(picture["height"]),
                size=int(picture.get("size") or 0),
            )
    return list(found.values())


def _section_entry(entry: dict[str, Any], message_id_domain: str) -> dict[str, Any]:
    picture = entry.get("picture")
    if not picture:
        return dict(entry)
    return {
        **entry,
        "picture_cid": picture_cid(picture["name"], message_id_domain),
        "picture_url": f"images/{picture['name']}",
    }


def image_path(image: StoredImage) -> str:
    """Where the web version expects an item's image, relative to the page."""
    return f"images/{image.object_name}"


def issue_context(issue: Issue, *, message_id_domain: str) -> dict[str, Any]:
    """What the issue template is rendered from (see mail.rendering.render_issue)."""
    return {
        "title": issue.title,
        "intro": issue.intro,
        "period": {
            "since": issue.since.astimezone(COPENHAGEN).date(),
            "until": issue.until.astimezone(COPENHAGEN).date(),
        },
        "items": [
            {
                "title": item.title,
                "body_html": item.body,
                "link": item.link,
                "image_cid": image_cid(item.id, message_id_domain) if item.image else None,
                "image_url": image_path(item.image) if item.image else None,
                "image_alt": item.title,
                "ambassador_name": item.ambassador_name,
            }
            for item in issue.items
        ],
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "entries": [_section_entry(e, message_id_domain) for e in s.entries],
            }
            for s in issue.sections
        ],
    }
