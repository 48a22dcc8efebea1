"""Messages of the social service: stories from ambassadors, their editorial review against
the guide, and publishing to the strategy's Facebook Page.

A story ("historie") is sent by an ambassador (through their personal link, or by staff on
their behalf) or suggested by the system (a public meeting scheduled, a network closed, a
newsletter issue sent). Staff review it against the guide, may edit the final text, and
schedule it; the service publishes it to the Page exactly once.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from contracts import endpoints
from contracts.binary import Base64Data
from contracts.envelope import Event, Message
from contracts.text import clean_line, clean_text

SERVICE = "social"
STREAM = "SOCIAL"
STREAM_SUBJECTS = "social.v1.>"

# Object Store buckets. Pictures cannot travel in a NATS message (max_payload is 1 MB): the
# caller puts the file into the uploads bucket and the command names the object; the
# service keeps only what it re-encoded, in the pictures bucket.
UPLOADS_BUCKET = "social-uploads"
PICTURES_BUCKET = "social-pictures"
UPLOAD_TTL_SECONDS = 3600

# Payload limits: every text and list that crosses the boundary has one.
TITLE_MAX = 200
# A post longer than this is hard to read on a phone (a hint); the hard maximum is far
# below Facebook's own limit (63,206 characters).
READABLE_TEXT = 1000
TEXT_MAX = 5000
ALT_MAX = 1000
LINK_MAX = 500
COMMENT_MAX = 2000
PICTURES_MAX = 10
OBJECT_NAME_MAX = 200
TOKEN_MAX = 300
POST_ID_MAX = 100
PAGE_MAX = 1000
# The largest piece of a picture one reply carries (base64 in JSON: ~700 kB).
PICTURE_CHUNK = 512 * 1024

Id = Annotated[str, Field(min_length=1, max_length=64)]
ObjectName = Annotated[
    str, Field(min_length=1, max_length=OBJECT_NAME_MAX, pattern=r"^[A-Za-z0-9._-]+$")
]


class StoryKind(StrEnum):
    """The kinds of good stories the guide names."""

    THEME_WORK = "theme_work"
    # A new colleague, volunteer or member (always with a picture).
    NEW_PERSON = "new_person"
    PICTURE = "picture"
    UPCOMING_EVENT = "upcoming_event"
    PAST_EVENT = "past_event"
    FUNNY = "funny"
    MILESTONE = "milestone"
    OTHER = "other"


KIND_LABELS: dict[StoryKind, str] = {
    StoryKind.THEME_WORK: "Et tema, I arbejder med",
    StoryKind.NEW_PERSON: "En ny kollega, frivillig eller et nyt medlem",
    StoryKind.PICTURE: "Et flot eller sjovt billede",
    StoryKind.UPCOMING_EVENT: "Et kommende arrangement",
    StoryKind.PAST_EVENT: "Et arrangement, der har fundet sted",
    StoryKind.FUNNY: "En sjov historie",
    StoryKind.MILESTONE: "En milepæl eller fødselsdag",
    StoryKind.OTHER: "Andet",
}


class StorySource(StrEnum):
    # Sent by the ambassador through their personal link.
    AMBASSADOR = "ambassador"
    # Entered by staff on an ambassador's behalf (samskab social submit).
    STAFF = "staff"
    # Suggested by the system: a public meeting scheduled, a network closed, an issue sent.
    MEETING = "meeting"
    NETWORK = "network"
    NEWSLETTER = "newsletter"


# An ambassador's personal page for their stories: ``{public_url}{STORIES_PATH}/{token}``
# (the link in the welcome mail, every digest and each review decision's mail).
STORIES_PATH = "/historier/egne"

# What the form says makes a good story (the guide, in its own words).
GOOD_STORIES = (
    "Et tema, jeres organisation arbejder med, og hvad I helt konkret gør (konkret og "
    "ikke for langt).",
    "En ny kollega, frivillig eller et nyt medlem: husk altid et billede.",
    "Et flot eller sjovt billede, med en beskrivelse.",
    "Kommende arrangementer, især offentlige. Lukkede arrangementer er bedre at fortælle "
    "om bagefter.",
    "Sjove historier, milepæle og fødselsdage.",
)


SUGGESTED_SOURCES = (StorySource.MEETING, StorySource.NETWORK, StorySource.NEWSLETTER)


class StoryStatus(StrEnum):
    # Waiting for staff.
    IN_REVIEW = "in_review"
    # Staff asked the ambassador to change it; a revision puts it back in review.
    CHANGES_REQUESTED = "changes_requested"
    # Approved, not yet scheduled.
    APPROVED = "approved"
    # Due to be published at its time.
    SCHEDULED = "scheduled"
    # Being published now (an attempt is recorded).
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    # The outcome of a publish is unknown and could not be looked up: staff decide.
    UNCONFIRMED = "unconfirmed"
    # Facebook refused it for good (Meta's message is kept).
    FAILED = "failed"
    REJECTED = "rejected"
    # Deleted from the Page again.
    UNPUBLISHED = "unpublished"
    # Its ambassador was erased before it was published: anonymised, pictures deleted.
    WITHDRAWN = "withdrawn"


OPEN_STATUSES = (StoryStatus.IN_REVIEW, StoryStatus.CHANGES_REQUESTED, StoryStatus.APPROVED)


class HintSeverity(StrEnum):
    # Advice; the story can be approved as it is.
    HINT = "hint"
    # The guide's must: the story cannot be sent or approved until it is met.
    BLOCKING = "blocking"
    # Wrong input (a past date for an upcoming event, a link that is not a web address).
    ERROR = "error"


class Hint(BaseModel):
    """One finding of the guide checks, in Danish for the ambassador and staff."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    code: str
    severity: HintSeverity
    field: str
    message: str


# ---------------------------------------------------------------- commands


def _title(value: str | None) -> str | None:
    if value is None:
        return None
    return clean_line(value) or None


class PictureInput(BaseModel):
    """A picture of a story: a new upload (an object in the uploads bucket) or one the
    story already has (its name), with the text that describes it for those who cannot
    see it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    upload: ObjectName | None = None
    name: ObjectName | None = None
    alt: str | None = Field(default=None, max_length=ALT_MAX)

    @field_validator("alt")
    @classmethod
    def _alt_is_a_line(cls, value: str | None) -> str | None:
        return clean_line(value) or None if value is not None else None

    @model_validator(mode="after")
    def _one_source(self) -> PictureInput:
        if (self.upload is None) == (self.name is None):
            raise ValueError("a picture is either a new upload or the name of one it has")
        return self


class StoryContent(Message):
    """What an ambassador writes: the same for a first submission and every revision."""

    kind: StoryKind
    text: str = Field(min_length=1, max_length=TEXT_MAX)
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    pictures: list[PictureInput] = Field(default_factory=list, max_length=PICTURES_MAX)
    event_date: date | None = None
    # An event open to everyone (True) or closed (False); None: not said.
    event_public: bool | None = None
    link: str | None = Field(default=None, max_length=LINK_MAX)
    # The submitter confirms that the people in the pictures agreed to be shown.
    people_consent: bool = False

    @field_validator("text")
    @classmethod
    def _text_has_text(cls, value: str) -> str:
        text = clean_text(value)
        if not text:
            raise ValueError("a story has a text")
        return text

    @field_validator("title")
    @classmethod
    def _title_is_a_line(cls, value: str | None) -> str | None:
        return _title(value)

    @field_validator("link")
    @classmethod
    def _link_is_stripped(cls, value: str | None) -> str | None:
        # Whether it is a web address is a guide check (an error with a Danish message).
        return value.strip() or None if value is not None else None


class SubmitStory(StoryContent):
    """Staff enter a story on an ambassador's behalf."""

    audit_target: ClassVar[str | None] = "ambassador_id"

    ambassador_id: Id


class SubmitOwnStory(StoryContent):
    """An ambassador sends a story through their personal link (the token identifies them)."""

    token: str = Field(min_length=10, max_length=TOKEN_MAX)


class ReviseStory(StoryContent):
    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id


class ReviseOwnStory(StoryContent):
    token: str = Field(min_length=10, max_length=TOKEN_MAX)
    story_id: Id


class ApproveStory(Message):
    """Approved for publishing; staff may give the final text (kept as a version of its own)."""

    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id
    text: str | None = Field(default=None, max_length=TEXT_MAX)

    @field_validator("text")
    @classmethod
    def _text_has_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = clean_text(value)
        if not text:
            raise ValueError("the final text cannot be empty")
        return text


def _comment(value: str) -> str:
    text = clean_text(value)
    if not text:
        raise ValueError("say what the ambassador is to know")
    return text


# What staff tell the ambassador (mailed to them): text, cleaned, never empty.
Comment = Annotated[str, Field(min_length=1, max_length=COMMENT_MAX), AfterValidator(_comment)]


class RequestChanges(Message):
    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id
    comment: Comment


class RejectStory(Message):
    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id
    reason: Comment


class ScheduleStory(Message):
    """Publish at ``at`` (left out: as soon as possible)."""

    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id
    at: AwareDatetime | None = None


class UnscheduleStory(Message):
    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id


class RetryStory(Message):
    """Publish again a story that is unconfirmed (staff checked the Page: it is not there)
    or failed (what Facebook refused has been put right)."""

    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id


class ConfirmPublished(Message):
    """An unconfirmed story is on the Page after all: staff give its post id."""

    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id
    post_id: str = Field(min_length=1, max_length=POST_ID_MAX, pattern=r"^[0-9]+(_[0-9]+)?$")


class UnpublishStory(Message):
    """Delete a published story's post from the Page."""

    audit_target: ClassVar[str | None] = "story_id"

    story_id: Id


class CheckToken(Message):
    """Check the Page access token now (it is checked at start and hourly); publishing
    resumes when it works again."""

    audit_target: ClassVar[str | None] = None


# ---------------------------------------------------------------- queries


class ListStories(Message):
    status: StoryStatus | None = None
    ambassador_id: Id | None = None
    limit: int = Field(default=200, ge=1, le=PAGE_MAX)
    offset: int = Field(default=0, ge=0)


class ShowStory(Message):
    story_id: Id


class GetReviewQueue(Message):
    """Stories waiting for staff, oldest first."""

    limit: int = Field(default=200, ge=1, le=PAGE_MAX)


class ListUnconfirmed(Message):
    pass


class GetOwnStories(Message):
    """An ambassador's own stories, through their personal link."""

    token: str = Field(min_length=10, max_length=TOKEN_MAX)


class CheckStory(StoryContent):
    """The guide checks of a story without sending it (the form shows them as you write)."""


class GetPublicStories(Message):
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0)


class GetPicture(Message):
    """A picture by its name, in pieces of at most :data:`PICTURE_CHUNK` bytes from
    ``offset``. Public: only pictures of published stories; staff: any."""

    name: ObjectName
    offset: int = Field(default=0, ge=0)


class GetOwnPicture(Message):
    """A picture of one of the token holder's own stories (sent, in review, published or
    not), in pieces like :class:`GetPicture`: the personal page shows what they sent."""

    token: str = Field(min_length=10, max_length=TOKEN_MAX)
    name: ObjectName
    offset: int = Field(default=0, ge=0)


class GetPublishing(Message):
    """Whether publishing to the Page works, and the token's last check."""


# ---------------------------------------------------------------- replies


class View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PictureView(View):
    name: str
    # sha256 of the stored (cleaned) picture, hex.
    digest: str
    alt: str | None = None
    width: int
    height: int
    size: int
    content_type: str = "image/jpeg"


class VersionView(View):
    """One version of a story: the ambassador's submission, a revision, or staff's edit."""

    number: int
    kind: StoryKind
    title: str | None = None
    text: str
    pictures: list[PictureView] = []
    event_date: date | None = None
    event_public: bool | None = None
    link: str | None = None
    people_consent: bool = False
    hints: list[Hint] = []
    by: str
    at: AwareDatetime
    # An edit by staff on approval (not the ambassador's own words).
    staff_edit: bool = False


class ChangeView(View):
    """One step of a story's life: what, who did it, when."""

    what: str
    actor: str
    at: AwareDatetime
    detail: str | None = None


class AttemptView(View):
    """One try at publishing: recorded before Facebook is called."""

    attempt_id: str
    started_at: AwareDatetime
    message_hash: str
    phase: str
    outcome: str | None = None
    detail: str | None = None
    fbtrace_id: str | None = None


class StorySummary(View):
    id: str
    status: StoryStatus
    kind: StoryKind
    source: StorySource
    title: str | None = None
    excerpt: str
    ambassador_id: str | None = None
    # As the read model knows them; None when gone (erased).
    ambassador_name: str | None = None
    submitted_at: AwareDatetime
    updated_at: AwareDatetime
    pictures: int = 0
    hints: list[Hint] = []
    scheduled_for: AwareDatetime | None = None
    published_at: AwareDatetime | None = None
    post_id: str | None = None
    # The last comment or reason staff gave, or Facebook's refusal.
    comment: str | None = None


class StoryDetail(View):
    story: StorySummary
    versions: list[VersionView]
    history: list[ChangeView]
    attempts: list[AttemptView] = []
    # The text as it goes (or went) out: the final version's text and link.
    message: str


class StoryPage(View):
    total: int
    items: list[StorySummary]


class OwnStory(View):
    """A story as its ambassador sees it: its status and what staff said."""

    id: str
    status: StoryStatus
    kind: StoryKind
    title: str | None = None
    text: str
    pictures: list[PictureView] = []
    event_date: date | None = None
    event_public: bool | None = None
    link: str | None = None
    people_consent: bool = False
    hints: list[Hint] = []
    comment: str | None = None
    submitted_at: AwareDatetime
    updated_at: AwareDatetime
    published_at: AwareDatetime | None = None
    post_url: str | None = None
    # A revision is possible now (in review or changes requested).
    revisable: bool


class OwnStories(View):
    ambassador_id: str
    name: str
    items: list[OwnStory]


class StoryReceipt(View):
    """The answer to a submission or a revision: the story and the hints that remain."""

    story_id: str
    status: StoryStatus
    version: int
    hints: list[Hint] = []


class GuideCheck(View):
    hints: list[Hint] = []
    # No blocking hint and no error: it can be sent.
    sendable: bool


class PublicStory(View):
    id: str
    kind: StoryKind
    title: str | None = None
    text: str
    pictures: list[PictureView] = []
    link: str | None = None
    published_at: AwareDatetime
    post_url: str | None = None
    # Who told it: their organisation or name, only when they are listed publicly.
    credit: str | None = None


class PublicStories(View):
    total: int
    items: list[PublicStory]


class PicturePiece(View):
    """One piece of a picture: ``data`` from ``offset``; ``size`` is the whole picture's."""

    name: str
    content_type: str
    size: int
    digest: str
    offset: int
    data: Base64Data


class PublishingView(View):
    # ok, paused (token or permission: staff must act), blocked (Facebook's policy block
    # or rate limit: it resumes by itself), unchecked (not checked yet).
    state: str
    reason: str | None = None
    since: AwareDatetime | None = None
    checked_at: AwareDatetime | None = None
    page_id: str
    graph_version: str
    scheduled: int = 0
    unconfirmed: int = 0


# ---------------------------------------------------------------- events


class SocialEvent(Event):
    producer_name: ClassVar[str] = SERVICE


class StoryEvent(SocialEvent):
    key_field: ClassVar[str | None] = "story_id"
    story_id: str


class StorySubmitted(StoryEvent):
    """A story is waiting for review (names no person: staff see it in the queue)."""

    subject: ClassVar[str] = "social.v1.submitted"

    kind: StoryKind
    source: StorySource
    title: str | None = None
    revision: bool = False


class Decision(StrEnum):
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    REJECTED = "rejected"


class StoryReviewed(StoryEvent):
    """Staff decided on an ambassador's story: the newsletter service mails them, with the
    comment and their personal link to revise (it signs that link; no token travels)."""

    subject: ClassVar[str] = "social.v1.reviewed"
    # Purged from the stream when the ambassador is erased.
    person_field: ClassVar[str | None] = "ambassador_id"

    ambassador_id: str
    decision: Decision
    kind: StoryKind
    title: str | None = None
    comment: str | None = None


class StoryPicture(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    bucket: str = PICTURES_BUCKET
    name: str
    digest: str
    alt: str | None = None
    width: int
    height: int
    size: int = 0
    content_type: str = "image/jpeg"


class StoryPublished(StoryEvent):
    """On the Page: the digest's "Historier fra netværket" and the website show it.
    ``credit``: the ambassador's organisation or name, only if they are listed publicly;
    ``ambassador_id``: who sent it (none for a suggestion), so that nothing of it is shown
    once they are erased."""

    subject: ClassVar[str] = "social.v1.published"
    person_field: ClassVar[str | None] = "ambassador_id"

    ambassador_id: str | None = None

    kind: StoryKind
    source: StorySource
    title: str | None = None
    text: str
    link: str | None = None
    pictures: list[StoryPicture] = Field(default_factory=list, max_length=PICTURES_MAX)
    post_id: str
    post_url: str
    published_at: AwareDatetime
    credit: str | None = None


class StoryUnpublished(StoryEvent):
    """Deleted from the Page: it is no longer shown anywhere."""

    subject: ClassVar[str] = "social.v1.unpublished"


class NoticeKind(StrEnum):
    # The Page token is invalid or expired, or a permission is missing: publishing waits.
    PUBLISHING_PAUSED = "publishing_paused"
    PUBLISHING_RESUMED = "publishing_resumed"
    # Facebook blocks the Page for now (policy, code 368): publishing waits.
    BLOCKED = "blocked"
    # Whether a post went out cannot be told: staff check the Page.
    UNCONFIRMED = "unconfirmed"
    # Facebook refused a story for good.
    FAILED = "failed"
    # An erased ambassador's stories are on the Page: staff decide whether to unpublish.
    ERASED_PUBLISHED = "erased_published"


class SocialNotice(SocialEvent):
    """Something staff are to know about publishing (the newsletter service mails the
    project leaders); names stories and posts by id only."""

    subject: ClassVar[str] = "social.v1.staff_notice"

    kind: NoticeKind
    story_ids: list[str] = Field(default_factory=list, max_length=1000)
    post_ids: list[str] = Field(default_factory=list, max_length=1000)
    # Meta's message, or what staff are to do, in English for the log and Danish in the mail.
    detail: str | None = None


EVENTS: tuple[type[SocialEvent], ...] = (
    StorySubmitted,
    StoryReviewed,
    StoryPublished,
    StoryUnpublished,
    SocialNotice,
)


# ---------------------------------------------------------------- endpoints


class Endpoints(endpoints.Endpoints):
    """What the social service answers."""

    SUBMIT = endpoints.command(
        "social.cmd.submit",
        SubmitStory,
        StoryReceipt,
        "Enter a story on an ambassador's behalf; the guide checks run on it.",
    )
    SUBMIT_OWN = endpoints.command(
        "social.cmd.submit_own",
        SubmitOwnStory,
        StoryReceipt,
        "An ambassador sends a story with the token of their personal link.",
        public=True,
    )
    REVISE = endpoints.command(
        "social.cmd.revise",
        ReviseStory,
        StoryReceipt,
        "A new version of a story in review or sent back for changes.",
    )
    REVISE_OWN = endpoints.command(
        "social.cmd.revise_own",
        ReviseOwnStory,
        StoryReceipt,
        "An ambassador revises their own story with the token of their personal link.",
        public=True,
    )
    CHECK = endpoints.query(
        "social.query.check",
        CheckStory,
        GuideCheck,
        "The guide checks of a story, without sending it.",
        public=True,
    )
    OWN = endpoints.query(
        "social.query.own",
        GetOwnStories,
        OwnStories,
        "An ambassador's own stories and their status, by the token of their personal link.",
        public=True,
    )
    APPROVE = endpoints.command(
        "social.cmd.approve",
        ApproveStory,
        StoryDetail,
        "Approve a story, optionally with staff's final text.",
    )
    REQUEST_CHANGES = endpoints.command(
        "social.cmd.request_changes",
        RequestChanges,
        StoryDetail,
        "Send a story back to its ambassador with a comment.",
    )
    REJECT = endpoints.command(
        "social.cmd.reject",
        RejectStory,
        StoryDetail,
        "Reject a story with the reason (a scheduled one is cancelled).",
    )
    SCHEDULE = endpoints.command(
        "social.cmd.schedule",
        ScheduleStory,
        StoryDetail,
        "Schedule an approved story for publishing at a time (or now).",
    )
    UNSCHEDULE = endpoints.command(
        "social.cmd.unschedule",
        UnscheduleStory,
        StoryDetail,
        "Cancel a scheduled publish: it never goes out (back to approved).",
    )
    RETRY = endpoints.command(
        "social.cmd.retry",
        RetryStory,
        StoryDetail,
        "Publish an unconfirmed or failed story again.",
    )
    CONFIRM_PUBLISHED = endpoints.command(
        "social.cmd.confirm_published",
        ConfirmPublished,
        StoryDetail,
        "An unconfirmed story is on the Page: record its post.",
    )
    UNPUBLISH = endpoints.command(
        "social.cmd.unpublish",
        UnpublishStory,
        StoryDetail,
        "Delete a published story's post from the Page.",
    )
    CHECK_TOKEN = endpoints.command(
        "social.cmd.check_token",
        CheckToken,
        PublishingView,
        "Check the Page access token now; publishing resumes when it works.",
    )
    LIST = endpoints.query("social.query.list", ListStories, StoryPage, "Stories, newest first.")
    SHOW = endpoints.query(
        "social.query.show", ShowStory, StoryDetail, "One story with its versions and history."
    )
    REVIEW = endpoints.query(
        "social.query.review",
        GetReviewQueue,
        StoryPage,
        "Stories waiting for review, oldest first, with their hints.",
    )
    UNCONFIRMED = endpoints.query(
        "social.query.unconfirmed",
        ListUnconfirmed,
        StoryPage,
        "Stories whose publishing could not be confirmed.",
    )
    PUBLISHING = endpoints.query(
        "social.query.publishing",
        GetPublishing,
        PublishingView,
        "Whether publishing to the Page works.",
    )
    PICTURE = endpoints.query(
        "social.query.picture", GetPicture, PicturePiece, "Any story's picture, in pieces."
    )
    PUBLIC_STORIES = endpoints.query(
        "social.query.public_stories",
        GetPublicStories,
        PublicStories,
        "Published stories, newest first, as the website shows them.",
        public=True,
    )
    PUBLIC_PICTURE = endpoints.query(
        "social.query.public_picture",
        GetPicture,
        PicturePiece,
        "A published story's picture, in pieces of at most 512 KiB.",
        public=True,
    )
    OWN_PICTURE = endpoints.query(
        "social.query.own_picture",
        GetOwnPicture,
        PicturePiece,
        "A picture of one's own story, by the token of the personal link, in pieces.",
        public=True,
    )
