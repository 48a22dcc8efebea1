"""Stories as the replies show them."""

from __future__ import annotations

from contracts.social import (
    AttemptView,
    ChangeView,
    OwnStory,
    PictureView,
    PublicStory,
    StoryDetail,
    StorySummary,
    VersionView,
)
from services.social import stories
from services.social.stories import REVISABLE, Picture, Story, Version

EXCERPT = 140


def picture_view(picture: Picture) -> PictureView:
    return PictureView(**picture.model_dump())


def excerpt(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT else line[: EXCERPT - 1].rstrip() + "…"


def summary(story: Story, ambassador_name: str | None = None) -> StorySummary:
    version = story.current
    return StorySummary(
        id=story.id,
        status=story.status,
        kind=version.kind,
        source=story.source,
        title=version.title,
        excerpt=excerpt(version.text),
        ambassador_id=story.ambassador_id,
        ambassador_name=ambassador_name,
        submitted_at=story.submitted_at,
        updated_at=story.updated_at,
        pictures=len(version.pictures),
        hints=list(version.hints),
        scheduled_for=story.scheduled_for,
        published_at=story.published_at,
        post_id=story.post_id,
        comment=story.comment,
    )


def version_view(version: Version) -> VersionView:
    return VersionView(
        **version.model_dump(exclude={"pictures", "hints"}),
        pictures=[picture_view(p) for p in version.pictures],
        hints=list(version.hints),
    )


def detail(story: Story, ambassador_name: str | None = None) -> StoryDetail:
    return StoryDetail(
        story=summary(story, ambassador_name),
        versions=[version_view(v) for v in story.versions],
        history=[ChangeView(**c.model_dump()) for c in story.history],
        attempts=[
            AttemptView(**a.model_dump(exclude={"media", "lease_until", "posting_at"}))
            for a in story.attempts
        ],
        message=stories.message(story.current),
    )


def own(story: Story) -> OwnStory:
    version = story.current
    return OwnStory(
        id=story.id,
        status=story.status,
        kind=version.kind,
        title=version.title,
        text=version.text,
        pictures=[picture_view(p) for p in version.pictures],
        event_date=version.event_date,
        event_public=version.event_public,
        link=version.link,
        people_consent=version.people_consent,
        hints=list(version.hints),
        comment=story.comment,
        submitted_at=story.submitted_at,
        updated_at=story.updated_at,
        published_at=story.published_at,
        post_url=stories.post_url(story.post_id) if story.post_id else None,
        revisable=story.status in REVISABLE,
    )


def public(story: Story, credit: str | None) -> PublicStory:
    version = story.current
    assert story.published_at is not None
    return PublicStory(
        id=story.id,
        kind=version.kind,
        title=version.title,
        text=version.text,
        pictures=[picture_view(p) for p in version.pictures],
        link=version.link,
        published_at=story.published_at,
        post_url=stories.post_url(story.post_id) if story.post_id else None,
        credit=credit,
    )
