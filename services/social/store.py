"""The social service's own database.

Collections:
- ``stories``: one document per story (see stories.Story) with its versions, history and
  publishing attempts; ``due_at`` (when a scheduled one goes out) and ``lease_until`` (when
  a publishing one's attempt may be taken over) are kept beside it for the publisher's
  look-ups. The post a story went out as is unique among them, and so is what a suggestion
  came from.
- ``publishing``: one document (``_id`` "page"): whether publishing works (ok, paused,
  blocked), why and since when, and the token's last check.

The read model of ambassadors is the runtime's (collection ``ambassadors``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from contracts.social import StoryStatus
from services.runtime.unit_of_work import Scope, UnitOfWork
from services.social.publishing_state import PageState
from services.social.stories import Story

PAGE = "page"


async def ensure_indexes(scope: Scope) -> None:
    db = scope.db
    await db.stories.create_index([("status", ASCENDING), ("submitted_at", ASCENDING)])
    await db.stories.create_index([("status", ASCENDING), ("due_at", ASCENDING)])
    await db.stories.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
    await db.stories.create_index([("ambassador_id", ASCENDING), ("submitted_at", DESCENDING)])
    await db.stories.create_index("updated_at")
    await db.stories.create_index("pictures")
    await db.stories.create_index(
        "post_id", unique=True, partialFilterExpression={"post_id": {"$type": "string"}}
    )
    await db.stories.create_index(
        "source_ref", unique=True, partialFilterExpression={"source_ref": {"$type": "string"}}
    )


def _document(story: Story) -> dict[str, Any]:
    doc = story.model_dump(mode="python", exclude={"id"})
    doc["_id"] = story.id
    doc["status"] = story.status.value
    doc["source"] = story.source.value
    doc["versions"] = [v.model_dump(mode="json") for v in story.versions]
    doc["history"] = [c.model_dump(mode="python") for c in story.history]
    doc["attempts"] = [a.model_dump(mode="python") for a in story.attempts]
    doc["due_at"] = story.due_at
    attempt = story.attempt
    doc["lease_until"] = (
        attempt.lease_until
        if attempt is not None and story.status == StoryStatus.PUBLISHING
        else None
    )
    # Every picture any version has: a picture is found by name (the website asks for one).
    doc["pictures"] = sorted({p.name for v in story.versions for p in v.pictures})
    return doc


def _story(doc: dict[str, Any]) -> Story:
    return Story.model_validate({**doc, "id": doc["_id"]})


async def save(uow: UnitOfWork, story: Story) -> None:
    await uow.db.stories.replace_one(
        {"_id": story.id}, _document(story), upsert=True, session=uow.session
    )


async def load(scope: Scope, story_id: str) -> Story | None:
    doc = await scope.db.stories.find_one({"_id": story_id}, session=scope.session)
    return _story(doc) if doc else None


async def of_source(scope: Scope, source_ref: str) -> Story | None:
    doc = await scope.db.stories.find_one({"source_ref": source_ref}, session=scope.session)
    return _story(doc) if doc else None


async def with_post(scope: Scope, post_id: str) -> str | None:
    doc = await scope.db.stories.find_one({"post_id": post_id}, {"_id": 1}, session=scope.session)
    return str(doc["_id"]) if doc else None


async def with_picture(scope: Scope, name: str) -> Story | None:
    doc = await scope.db.stories.find_one({"pictures": name}, session=scope.session)
    return _story(doc) if doc else None


async def page(
    scope: Scope,
    *,
    statuses: list[StoryStatus] | None = None,
    ambassador_id: str | None = None,
    oldest_first: bool = False,
    limit: int,
    offset: int = 0,
    sort_by: str = "submitted_at",
) -> tuple[int, list[Story]]:
    query: dict[str, Any] = {}
    if statuses is not None:
        query["status"] = {"$in": [s.value for s in statuses]}
    if ambassador_id is not None:
        query["ambassador_id"] = ambassador_id
    total = await scope.db.stories.count_documents(query, session=scope.session)
    order = ASCENDING if oldest_first else DESCENDING
    cursor = (
        scope.db.stories.find(query, session=scope.session)
        .sort([(sort_by, order), ("_id", ASCENDING)])
        .skip(offset)
        .limit(limit)
    )
    return total, [_story(doc) async for doc in cursor]


async def count(scope: Scope, status: StoryStatus) -> int:
    return await scope.db.stories.count_documents({"status": status.value}, session=scope.session)


async def due(scope: Scope, now: datetime, limit: int) -> list[str]:
    """Scheduled stories whose time has come, and publishing ones whose publisher is gone
    (its lease ran out), oldest first."""
    scheduled = (
        scope.db.stories.find(
            {"status": StoryStatus.SCHEDULED.value, "due_at": {"$lte": now}},
            {"_id": 1},
            session=scope.session,
        )
        .sort([("due_at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    abandoned = scope.db.stories.find(
        {"status": StoryStatus.PUBLISHING.value, "lease_until": {"$lte": now}},
        {"_id": 1},
        session=scope.session,
    ).limit(limit)
    return [str(d["_id"]) async for d in abandoned] + [str(d["_id"]) async for d in scheduled]


async def next_due(scope: Scope) -> datetime | None:
    doc = await scope.db.stories.find_one(
        {"status": StoryStatus.SCHEDULED.value, "due_at": {"$ne": None}},
        {"due_at": 1},
        sort=[("due_at", ASCENDING)],
        session=scope.session,
    )
    return doc["due_at"] if doc else None


async def of_ambassador(scope: Scope, ambassador_id: str) -> list[Story]:
    cursor = scope.db.stories.find({"ambassador_id": ambassador_id}, session=scope.session)
    return [_story(doc) async for doc in cursor]


# ---------------------------------------------------------------- publishing state


async def page_state(scope: Scope) -> PageState:
    doc = await scope.db.publishing.find_one({"_id": PAGE}, session=scope.session)
    return PageState.model_validate(doc) if doc else PageState()


async def save_page_state(uow: UnitOfWork, state: PageState) -> None:
    await uow.db.publishing.replace_one(
        {"_id": PAGE}, state.model_dump(mode="python"), upsert=True, session=uow.session
    )
