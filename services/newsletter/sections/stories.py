"""Section "stories" ("Historier fra netværket"): stories from ambassadors published on the
Facebook Page in the issue's period, each with its first picture (from the social
service's bucket), who told it when they are listed publicly, and the link to the post."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.social import KIND_LABELS, StoryKind
from services.newsletter import store
from services.runtime.unit_of_work import Scope

EXCERPT = 600


def _excerpt(text: str) -> str:
    if len(text) <= EXCERPT:
        return text
    return text[: EXCERPT - 1].rsplit(" ", 1)[0].rstrip() + "…"


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "story_id": doc["_id"],
        "kind": KIND_LABELS[StoryKind(doc["kind"])],
        "title": doc.get("title"),
        "text": _excerpt(doc.get("text") or ""),
        "link": doc.get("link"),
        "post_url": doc.get("post_url"),
        "credit": doc.get("credit"),
    }
    if doc.get("picture"):
        found["picture"] = dict(doc["picture"])
    return found


@dataclass(frozen=True)
class Stories:
    key: str = "stories"
    title: str = "Historier fra netværket"

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return [entry(doc) for doc in await store.stories_published(scope, since, until)]


SECTION = Stories()
