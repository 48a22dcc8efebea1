"""A story and its life, as pure rules: submitted, revised, reviewed, scheduled, published.

Every step is a function from a story to the next story (or a :class:`ServiceError` saying
why the step is not possible now); the handlers load, call one of these, save. Versions are
kept (the ambassador's submission, each revision, staff's final edit), and so is the
history of who did what when.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from contracts.errors import ErrorCode, ServiceError
from contracts.social import Hint, StoryKind, StorySource, StoryStatus
from services.social.guide import Draft

# A story can be revised while staff have not approved it.
REVISABLE = (StoryStatus.IN_REVIEW, StoryStatus.CHANGES_REQUESTED)
# Staff may send back, approve or reject a story not yet on its way out.
REVIEWABLE = (StoryStatus.IN_REVIEW, StoryStatus.CHANGES_REQUESTED, StoryStatus.APPROVED)
REJECTABLE = (*REVIEWABLE, StoryStatus.SCHEDULED, StoryStatus.UNCONFIRMED, StoryStatus.FAILED)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Picture(Model):
    name: str
    digest: str
    alt: str | None = None
    width: int
    height: int
    size: int
    content_type: str = "image/jpeg"


class Version(Model):
    number: int
    kind: StoryKind
    title: str | None = None
    text: str
    pictures: tuple[Picture, ...] = ()
    event_date: date | None = None
    event_public: bool | None = None
    link: str | None = None
    people_consent: bool = False
    hints: tuple[Hint, ...] = ()
    by: str
    at: datetime
    staff_edit: bool = False

    def draft(self) -> Draft:
        return Draft(
            kind=self.kind,
            text=self.text,
            title=self.title,
            picture_alts=tuple(p.alt for p in self.pictures),
            event_date=self.event_date,
            event_public=self.event_public,
            link=self.link,
            people_consent=self.people_consent,
        )


class Change(Model):
    what: str
    actor: str
    at: datetime
    detail: str | None = None


class Phase:
    # Pictures are being uploaded (unpublished: safe to repeat).
    UPLOADING = "uploading"
    # The feed call may have been made: its outcome must be known before any other.
    POSTING = "posting"
    DONE = "done"


class Attempt(Model):
    """One try at publishing, recorded before Facebook is called."""

    attempt_id: str
    started_at: datetime
    message_hash: str
    phase: str = Phase.UPLOADING
    # Picture name -> the id Facebook gave its unpublished upload.
    media: dict[str, str] = {}
    posting_at: datetime | None = None
    lease_until: datetime
    outcome: str | None = None
    detail: str | None = None
    fbtrace_id: str | None = None


class Story(Model):
    id: str
    status: StoryStatus
    source: StorySource
    # None for a suggestion, and once the ambassador is erased.
    ambassador_id: str | None = None
    # What a suggestion came from ("meeting:<id>", "network:<id>", "issue:<id>"): each
    # suggests one story however often its event is delivered.
    source_ref: str | None = None
    submitted_at: datetime
    updated_at: datetime
    versions: tuple[Version, ...]
    history: tuple[Change, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    # The last comment or reason staff gave, or Facebook's refusal.
    comment: str | None = None
    scheduled_for: datetime | None = None
    # A publish put off (rate limit, a transient error) goes again from this time.
    retry_at: datetime | None = None
    # Attempts whose outcome was unknown and whose post was then not found on the Page.
    unknown_outcomes: int = 0
    post_id: str | None = None
    published_at: datetime | None = None
    erased: bool = False

    @property
    def current(self) -> Version:
        return self.versions[-1]

    @property
    def attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def due_at(self) -> datetime | None:
        if self.status != StoryStatus.SCHEDULED or self.scheduled_for is None:
            return None
        return max(self.scheduled_for, self.retry_at or self.scheduled_for)


def _refuse(story: Story, doing: str) -> ServiceError:
    return ServiceError(
        ErrorCode.INVALID_STATE, f"story {story.id} is {story.status.value}: it cannot be {doing}"
    )


def _step(what: str, actor: str, now: datetime, detail: str | None = None) -> Change:
    return Change(what=what, actor=actor, at=now, detail=detail)


def _moved(story: Story, change: Change, **update: object) -> Story:
    return story.model_copy(
        update={**update, "updated_at": change.at, "history": (*story.history, change)}
    )


# ---------------------------------------------------------------- the text that goes out


def message(version: Version) -> str:
    """The post's message: the title as its first line, then the text."""
    return f"{version.title}\n\n{version.text}" if version.title else version.text


def message_hash(version: Version) -> str:
    """What identifies one post's content: its message, link and pictures."""
    digest = hashlib.sha256(message(version).encode())
    digest.update(b"\0" + (version.link or "").encode())
    for picture in version.pictures:
        digest.update(b"\0" + picture.digest.encode())
    return digest.hexdigest()


def post_url(post_id: str) -> str:
    return f"https://www.facebook.com/{post_id}"


# ---------------------------------------------------------------- submitting and revising


def submit(
    *,
    story_id: str,
    source: StorySource,
    ambassador_id: str | None,
    version: Version,
    now: datetime,
    actor: str,
    source_ref: str | None = None,
) -> Story:
    what = "suggested" if ambassador_id is None else "submitted"
    change = _step(what, actor, now)
    return Story(
        id=story_id,
        status=StoryStatus.IN_REVIEW,
        source=source,
        ambassador_id=ambassador_id,
        source_ref=source_ref,
        submitted_at=now,
        updated_at=now,
        versions=(version,),
        history=(change,),
    )


def revise(story: Story, version: Version, *, now: datetime, actor: str) -> Story:
    if story.status not in REVISABLE:
        raise _refuse(story, "revised (staff have approved or closed it)")
    change = _step("revised", actor, now, f"version {version.number}")
    return _moved(story, change, status=StoryStatus.IN_REVIEW, versions=(*story.versions, version))


def next_number(story: Story | None) -> int:
    return 1 if story is None else story.current.number + 1


# ---------------------------------------------------------------- review


def approve(story: Story, edit: Version | None, *, now: datetime, actor: str) -> Story:
    if story.status not in REVIEWABLE:
        raise _refuse(story, "approved")
    versions = story.versions if edit is None else (*story.versions, edit)
    detail = None if edit is None else f"final text edited (version {edit.number})"
    change = _step("approved", actor, now, detail)
    return _moved(story, change, status=StoryStatus.APPROVED, versions=versions, comment=None)


def request_changes(story: Story, comment: str, *, now: datetime, actor: str) -> Story:
    if story.status not in REVIEWABLE:
        raise _refuse(story, "sent back for changes")
    if story.ambassador_id is None:
        raise ServiceError(
            ErrorCode.INVALID_STATE,
            f"story {story.id} has no ambassador to ask (a suggestion, or they were erased): "
            "edit it on approval instead",
        )
    change = _step("changes requested", actor, now, comment)
    return _moved(story, change, status=StoryStatus.CHANGES_REQUESTED, comment=comment)


def reject(story: Story, reason: str, *, now: datetime, actor: str) -> Story:
    if story.status not in REJECTABLE:
        raise _refuse(story, "rejected")
    change = _step("rejected", actor, now, reason)
    return _moved(
        story,
        change,
        status=StoryStatus.REJECTED,
        comment=reason,
        scheduled_for=None,
        retry_at=None,
    )


def schedule(story: Story, at: datetime, *, now: datetime, actor: str) -> Story:
    if story.status not in (StoryStatus.APPROVED, StoryStatus.SCHEDULED):
        raise _refuse(story, "scheduled (approve it first)")
    change = _step("scheduled", actor, now, at.isoformat())
    return _moved(story, change, status=StoryStatus.SCHEDULED, scheduled_for=at, retry_at=None)


def unschedule(story: Story, *, now: datetime, actor: str) -> Story:
    if story.status != StoryStatus.SCHEDULED:
        if story.status == StoryStatus.PUBLISHING:
            raise ServiceError(
                ErrorCode.INVALID_STATE,
                f"story {story.id} is being published now; once it is out it can be unpublished",
            )
        raise _refuse(story, "unscheduled")
    change = _step("unscheduled", actor, now)
    return _moved(story, change, status=StoryStatus.APPROVED, scheduled_for=None, retry_at=None)


def retry(story: Story, *, now: datetime, actor: str) -> Story:
    if story.status not in (StoryStatus.UNCONFIRMED, StoryStatus.FAILED):
        raise _refuse(story, "retried")
    change = _step("retry", actor, now)
    return _moved(
        story,
        change,
        status=StoryStatus.SCHEDULED,
        scheduled_for=now,
        retry_at=None,
        unknown_outcomes=0,
    )


def confirm_published(story: Story, post_id: str, *, now: datetime, actor: str) -> Story:
    if story.status not in (StoryStatus.UNCONFIRMED, StoryStatus.FAILED):
        raise _refuse(story, "confirmed as published")
    return published(story, post_id, now=now, actor=actor, how="confirmed by staff")


def unpublish(story: Story, *, now: datetime, actor: str) -> Story:
    if story.status != StoryStatus.PUBLISHED:
        raise _refuse(story, "unpublished")
    change = _step("unpublished", actor, now, story.post_id)
    return _moved(story, change, status=StoryStatus.UNPUBLISHED)


# ---------------------------------------------------------------- publishing


def claim(story: Story, *, attempt_id: str, now: datetime, lease: timedelta, actor: str) -> Story:
    """Scheduled and due: an attempt is recorded and it is being published."""
    due = story.due_at
    if due is None or due > now:
        raise _refuse(story, "published now")
    attempt = Attempt(
        attempt_id=attempt_id,
        started_at=now,
        message_hash=message_hash(story.current),
        lease_until=now + lease,
    )
    change = _step("publishing", actor, now, f"attempt {attempt_id}")
    return _moved(story, change, status=StoryStatus.PUBLISHING, attempts=(*story.attempts, attempt))


def _with_attempt(story: Story, attempt: Attempt, **update: object) -> Story:
    return story.model_copy(update={"attempts": (*story.attempts[:-1], attempt), **update})


def holds(story: Story, attempt_id: str) -> bool:
    attempt = story.attempt
    return (
        story.status == StoryStatus.PUBLISHING
        and attempt is not None
        and attempt.attempt_id == attempt_id
    )


def take_over(
    story: Story, *, attempt_id: str, now: datetime, lease: timedelta, actor: str
) -> Story:
    """A publisher died during its attempt (its lease ran out): a new attempt carries on
    from where it was, so the one that died can record nothing more."""
    old = story.attempt
    if story.status != StoryStatus.PUBLISHING or old is None or old.lease_until > now:
        raise _refuse(story, "taken over (its publisher still holds it)")
    finished = _finish(story, old.attempt_id, "abandoned", "its publisher stopped")
    carried = old.model_copy(
        update={"attempt_id": attempt_id, "lease_until": now + lease, "started_at": now}
    )
    change = _step("publishing taken over", actor, now, f"attempt {attempt_id}")
    return _moved(story, change, attempts=(*finished, carried))


def _current(story: Story, attempt_id: str) -> Attempt:
    attempt = story.attempt
    if not holds(story, attempt_id) or attempt is None:
        raise ServiceError(
            ErrorCode.CONFLICT, f"story {story.id} is no longer published by attempt {attempt_id}"
        )
    return attempt


def media_uploaded(story: Story, attempt_id: str, media: dict[str, str]) -> Story:
    attempt = _current(story, attempt_id)
    return _with_attempt(story, attempt.model_copy(update={"media": {**attempt.media, **media}}))


def posting(story: Story, attempt_id: str, *, now: datetime, lease: timedelta) -> Story:
    """Recorded just before the feed call: from now on the outcome must be found out."""
    attempt = _current(story, attempt_id)
    return _with_attempt(
        story,
        attempt.model_copy(
            update={"phase": Phase.POSTING, "posting_at": now, "lease_until": now + lease}
        ),
    )


def _finish(
    story: Story,
    attempt_id: str | None,
    outcome: str,
    detail: str | None,
    fbtrace_id: str | None = None,
) -> tuple[Attempt, ...]:
    attempt = story.attempt
    if attempt is None or (attempt_id is not None and attempt.attempt_id != attempt_id):
        return story.attempts
    done = attempt.model_copy(
        update={
            "phase": Phase.DONE,
            "outcome": outcome,
            "detail": detail,
            "fbtrace_id": fbtrace_id or attempt.fbtrace_id,
        }
    )
    return (*story.attempts[:-1], done)


def published(
    story: Story,
    post_id: str,
    *,
    now: datetime,
    actor: str,
    how: str = "posted",
    attempt_id: str | None = None,
) -> Story:
    change = _step("published", actor, now, f"post {post_id} ({how})")
    return _moved(
        story,
        change,
        status=StoryStatus.PUBLISHED,
        post_id=post_id,
        published_at=now,
        retry_at=None,
        comment=None,
        attempts=_finish(story, attempt_id, how, post_id),
    )


def postpone(
    story: Story,
    attempt_id: str,
    *,
    until: datetime,
    now: datetime,
    actor: str,
    why: str,
    unknown: bool = False,
    fbtrace_id: str | None = None,
) -> Story:
    """Not published, and nothing was posted: it goes again at ``until``."""
    _current(story, attempt_id)
    change = _step("publishing put off", actor, now, f"{why}; again at {until.isoformat()}")
    return _moved(
        story,
        change,
        status=StoryStatus.SCHEDULED,
        retry_at=until,
        unknown_outcomes=story.unknown_outcomes + (1 if unknown else 0),
        attempts=_finish(story, attempt_id, "put off", why, fbtrace_id),
    )


def unconfirmed(story: Story, attempt_id: str, *, now: datetime, actor: str, why: str) -> Story:
    _current(story, attempt_id)
    change = _step("unconfirmed", actor, now, why)
    return _moved(
        story,
        change,
        status=StoryStatus.UNCONFIRMED,
        comment=why,
        attempts=_finish(story, attempt_id, "unconfirmed", why),
    )


def failed(
    story: Story,
    attempt_id: str,
    *,
    now: datetime,
    actor: str,
    why: str,
    fbtrace_id: str | None = None,
) -> Story:
    _current(story, attempt_id)
    change = _step("failed", actor, now, why)
    return _moved(
        story,
        change,
        status=StoryStatus.FAILED,
        comment=why,
        attempts=_finish(story, attempt_id, "failed", why, fbtrace_id),
    )


# ---------------------------------------------------------------- erasure


ERASED_TEXT = "[Slettet: ambassadøren er slettet]"


def erase(story: Story, *, now: datetime) -> Story:
    """The ambassador is erased: a story not on the Page loses its words and pictures; one
    on the Page keeps what the public has seen, without the link to who sent it."""
    change = _step("ambassador erased", "service:social", now)
    if story.status in (StoryStatus.PUBLISHED, StoryStatus.PUBLISHING):
        return _moved(story, change, ambassador_id=None, erased=True)
    blank = tuple(
        v.model_copy(update={"title": None, "text": ERASED_TEXT, "pictures": (), "link": None})
        for v in story.versions
    )
    # Staff's comments were about the person's words: they go with them.
    history = tuple(c.model_copy(update={"detail": None}) for c in story.history)
    return story.model_copy(
        update={
            "history": (*history, change),
            "updated_at": now,
            "status": StoryStatus.WITHDRAWN,
            "ambassador_id": None,
            "erased": True,
            "versions": blank,
            "comment": None,
            "scheduled_for": None,
            "retry_at": None,
        }
    )
