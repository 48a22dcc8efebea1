"""Messages of the newsletter service: its commands, queries, replies and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic_core import PydanticCustomError

from contracts import endpoints, jobs
from contracts.binary import Base64Data
from contracts.envelope import Event, Message
from contracts.text import normalise_email, normalise_name, normalise_website

SERVICE = "newsletter"
STREAM = "NEWSLETTER"
STREAM_SUBJECTS = "newsletter.v1.>"

# Object Store buckets. The CLI cannot push an image through a NATS message (max_payload is
# 1 MB), so it puts the file into the uploads bucket and the command names the object; the
# service keeps only what it re-encoded, in the images bucket.
UPLOADS_BUCKET = "newsletter-uploads"
IMAGES_BUCKET = "newsletter-images"
# The public web version of every sent issue, for the website.
ARCHIVE_BUCKET = "newsletter-archive"
# An upload nobody turned into an item is gone after this long.
UPLOAD_TTL_SECONDS = 3600

# Payload limits: every text and list that crosses the boundary has one.
NAME_MAX = 200
EMAIL_MAX = 254
TOKEN_MAX = 200
TITLE_MAX = 200
BODY_MAX = 5000
INTRO_MAX = 2000
LINK_MAX = 500
OBJECT_NAME_MAX = 200
# The largest piece of an archived picture one reply carries (base64 in JSON: ~700 kB).
ARCHIVE_IMAGE_CHUNK = 512 * 1024
ITEMS_PER_ISSUE_MAX = 30
PAGE_MAX = 1000

Id = Annotated[str, Field(min_length=1, max_length=64)]


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    # Hard bounces in a row reached the limit: not mailed again until the address is fixed
    # (subscribing again and confirming).
    BOUNCING = "bouncing"
    ERASED = "erased"


class SubscriberSource(StrEnum):
    DIRECT = "direct"
    AMBASSADOR = "ambassador"


class IssueState(StrEnum):
    DRAFT = "draft"
    # Being fanned out to the subscribers: resumed after a crash until every mail is queued.
    SENDING = "sending"
    SENT = "sent"


# The endpoints are declared at the end of the module, after their models.


# ---------------------------------------------------------------- field rules


def _accepted_email(value: str) -> str:
    try:
        normalise_email(value)
    except ValueError as exc:
        raise PydanticCustomError("value_error", str(exc)) from None
    return value


def _accepted(rule: Callable[[str], Any], value: str | None) -> str | None:
    """Raise the rule's own message as the field's error; keep the value as it was sent
    (the service normalises it with the same rule)."""
    if value is None or not value.strip():
        return value
    try:
        rule(value)
    except ValueError as exc:
        raise PydanticCustomError("value_error", str(exc)) from None
    return value


# ---------------------------------------------------------------- commands and queries


class Subscribe(Message):
    """Double opt-in: the subscription counts once the address is confirmed."""

    email: str = Field(min_length=3, max_length=EMAIL_MAX)
    name: str | None = Field(default=None, max_length=NAME_MAX)

    @field_validator("email")
    @classmethod
    def _email_is_an_address(cls, value: str) -> str:
        return _accepted_email(value)

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str | None) -> str | None:
        return _accepted(normalise_name, value)


class ConfirmSubscription(Message):
    token: str = Field(min_length=10, max_length=TOKEN_MAX)


class Unsubscribe(Message):
    token: str = Field(min_length=10, max_length=TOKEN_MAX)


class ListSubscribers(Message):
    status: SubscriberStatus | None = None
    limit: int = Field(default=200, ge=1, le=PAGE_MAX)
    offset: int = Field(default=0, ge=0)


class AddItem(Message):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    # Plain text (blank lines make paragraphs) or a little HTML, sanitised when rendered.
    body: str = Field(min_length=1, max_length=BODY_MAX)
    link: str | None = Field(default=None, max_length=LINK_MAX)
    # An object the caller put into the uploads bucket; the service re-encodes it.
    image_object: str | None = Field(default=None, max_length=OBJECT_NAME_MAX)
    ambassador_id: Id | None = None

    @field_validator("link")
    @classmethod
    def _link_is_a_url(cls, value: str | None) -> str | None:
        return _accepted(normalise_website, value)

    @field_validator("title")
    @classmethod
    def _title_has_text(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("value_error", "must not be empty")
        return _accepted(normalise_name, value) or value


class ListItems(Message):
    # Only those not yet sent in an issue (what the next draft will gather).
    unused: bool = False
    limit: int = Field(default=200, ge=1, le=PAGE_MAX)
    offset: int = Field(default=0, ge=0)


class RemoveItem(Message):
    audit_target: ClassVar[str | None] = "item_id"

    item_id: Id


class DraftIssue(Message):
    # Default: where the last sent issue ended, or newsletter_default_since_days ago.
    since: date | None = None
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    intro: str | None = Field(default=None, max_length=INTRO_MAX)


class PreviewIssue(Message):
    issue_id: Id


class TestSend(Message):
    audit_target: ClassVar[str | None] = "issue_id"

    issue_id: Id
    to: str = Field(min_length=3, max_length=EMAIL_MAX)

    @field_validator("to")
    @classmethod
    def _to_is_an_address(cls, value: str) -> str:
        return _accepted_email(value)


class SendIssue(Message):
    audit_target: ClassVar[str | None] = "issue_id"

    issue_id: Id


class GetArchive(Message):
    """Without ``number``: the list of sent issues; with it: that issue's web version."""

    number: int | None = Field(default=None, ge=1)


class GetArchiveImage(Message):
    """A picture of a sent issue's web version, by the name the page refers to it by; in
    pieces of at most :data:`ARCHIVE_IMAGE_CHUNK` bytes from ``offset`` (a message is at
    most 1 MB)."""

    name: str = Field(
        min_length=1, max_length=OBJECT_NAME_MAX, pattern=r"^[A-Za-z0-9_-]+\.[a-z]{3,4}$"
    )
    offset: int = Field(default=0, ge=0)


# ---------------------------------------------------------------- replies


class View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SubscriberView(View):
    audit_target: ClassVar[str | None] = "id"

    id: str
    status: SubscriberStatus
    source: SubscriberSource
    email: str | None
    name: str | None = None
    ambassador_id: str | None = None
    hard_bounces: int = 0
    created_at: AwareDatetime
    confirmed_at: AwareDatetime | None = None
    unsubscribed_at: AwareDatetime | None = None


class SubscriberPage(View):
    total: int
    items: list[SubscriberView]


class SubscriptionReceived(View):
    """The answer to a subscription, the same whatever the address: if it can be used, a
    mail is on its way to it (the confirmation link, or word that it is subscribed
    already). Nothing in it tells a known address from an unknown one."""

    received: bool = True


class ImageView(View):
    bucket: str
    object_name: str
    content_type: str
    width: int
    height: int
    size: int


class ItemView(View):
    audit_target: ClassVar[str | None] = "id"

    id: str
    title: str
    body: str
    link: str | None = None
    image: ImageView | None = None
    ambassador_id: str | None = None
    ambassador_name: str | None = None
    created_at: AwareDatetime
    used_in_issue: str | None = None


class ItemPage(View):
    total: int
    items: list[ItemView]


class IssueSummary(View):
    audit_target: ClassVar[str | None] = "id"

    id: str
    number: int
    state: IssueState
    title: str
    since: AwareDatetime
    until: AwareDatetime
    items: int
    sections: dict[str, int]
    created_at: AwareDatetime
    sent_at: AwareDatetime | None = None
    # Mails queued for subscribers so far (all of them once sent).
    recipients: int = 0


class PublicImage(View):
    """An image the web version refers to as ``path`` (relative to the page)."""

    bucket: str
    object_name: str
    path: str


class IssueRendering(View):
    """An issue's public web version: no personal data, no unsubscribe link."""

    id: str
    number: int
    state: IssueState
    title: str
    subject: str
    html: str
    text: str
    images: list[PublicImage] = []
    sent_at: AwareDatetime | None = None


class TestSendResult(View):
    mail_id: str
    to: str


class ArchiveEntry(View):
    number: int
    title: str
    since: AwareDatetime
    until: AwareDatetime
    sent_at: AwareDatetime
    archive_object: str


class ArchiveImage(View):
    """One piece of a picture: ``data`` from ``offset``; ``size`` is the whole picture's."""

    name: str
    content_type: str
    size: int
    # sha256 of the whole picture, hex: what the website's ETag is made from.
    digest: str
    offset: int
    data: Base64Data


class Archive(View):
    issues: list[ArchiveEntry]
    # Set when a ``number`` was asked for.
    issue: IssueRendering | None = None


# ---------------------------------------------------------------- events


class NewsletterEvent(Event):
    producer_name: ClassVar[str] = SERVICE


class IssueSent(NewsletterEvent):
    """Every confirmed subscriber's copy of the issue is queued; its web version is in the
    ``newsletter-archive`` bucket under ``archive_object``."""

    subject: ClassVar[str] = "newsletter.v1.issue_sent"
    key_field: ClassVar[str | None] = "issue_id"

    issue_id: str
    number: int
    title: str
    sent_at: AwareDatetime
    recipients: int
    archive_bucket: str = ARCHIVE_BUCKET
    archive_object: str


class Subscribed(NewsletterEvent):
    """A subscription counts from now (confirmed, or an ambassador's). No address: only the
    newsletter service needs it."""

    subject: ClassVar[str] = "newsletter.v1.subscribed"
    key_field: ClassVar[str | None] = "subscriber_id"

    subscriber_id: str
    source: SubscriberSource


class Unsubscribed(NewsletterEvent):
    subject: ClassVar[str] = "newsletter.v1.unsubscribed"
    key_field: ClassVar[str | None] = "subscriber_id"

    subscriber_id: str


EVENTS: tuple[type[NewsletterEvent], ...] = (IssueSent, Subscribed, Unsubscribed)


# ---------------------------------------------------------------- endpoints


class Endpoints(endpoints.Endpoints):
    """What the newsletter service answers."""

    SUBSCRIBE = endpoints.command(
        "newsletter.cmd.subscribe",
        Subscribe,
        SubscriptionReceived,
        "Subscribe an address; it counts once the link in the confirmation mail is used. "
        "The answer is the same for every address.",
        public=True,
    )
    CONFIRM = endpoints.command(
        "newsletter.cmd.confirm",
        ConfirmSubscription,
        SubscriberView,
        "Confirm a subscription with the token from the confirmation mail.",
        public=True,
    )
    UNSUBSCRIBE = endpoints.command(
        "newsletter.cmd.unsubscribe",
        Unsubscribe,
        SubscriberView,
        "End a subscription with the token every mail carries; final, and idempotent.",
        public=True,
    )
    SUBSCRIBERS = endpoints.query(
        "newsletter.query.subscribers",
        ListSubscribers,
        SubscriberPage,
        "Subscribers, optionally by status.",
    )
    ITEM_ADD = endpoints.command(
        "newsletter.cmd.item.add",
        AddItem,
        ItemView,
        "Add a news item for the next issue (the image is taken from the uploads bucket).",
    )
    ITEM_LIST = endpoints.query(
        "newsletter.query.item.list", ListItems, ItemPage, "News items, oldest first."
    )
    ITEM_REMOVE = endpoints.command(
        "newsletter.cmd.item.remove",
        RemoveItem,
        ItemView,
        "Remove a news item that was not sent in an issue.",
    )
    DRAFT = endpoints.command(
        "newsletter.cmd.draft",
        DraftIssue,
        IssueSummary,
        "Assemble an issue from the unused items and the sections since a date.",
    )
    PREVIEW = endpoints.query(
        "newsletter.query.preview",
        PreviewIssue,
        IssueRendering,
        "An issue's web version (HTML and text), as the archive will show it.",
    )
    TEST_SEND = endpoints.command(
        "newsletter.cmd.test_send",
        TestSend,
        TestSendResult,
        "Mail one copy of an issue to an address (no unsubscribe link: not a subscriber).",
    )
    SEND = jobs.job(
        "newsletter.cmd.send",
        SendIssue,
        IssueSummary,
        "Send an issue to every confirmed subscriber, as a job that ends once it is queued "
        "for each of them; resumes after a crash.",
        unit="subscribers",
    )
    JOB = jobs.show_job(SERVICE)
    ARCHIVE = endpoints.query(
        "newsletter.query.archive",
        GetArchive,
        Archive,
        "Sent issues, and one issue's public web version when a number is given.",
        public=True,
    )
    ARCHIVE_IMAGE = endpoints.query(
        "newsletter.query.archive_image",
        GetArchiveImage,
        ArchiveImage,
        "A picture of a sent issue's web version, in pieces of at most 512 KiB.",
        public=True,
    )
