"""Section "coming_up" ("Det sker snart"): public meetings still to come after the issue.

Only public meetings: the issue's web version is public, and a closed meeting is better told
about afterwards (see recently_held). Plain data of the meeting only, never who is invited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.events import KIND_LABELS, MeetingKind
from services.newsletter import store
from services.newsletter.mail.rendering import safe_url
from services.runtime.unit_of_work import Scope

# How far ahead of the end meetings are shown, and how many at most.
HORIZON = timedelta(days=120)
LIMIT = 10
# A description is shortened to about this many characters.
DESCRIPTION_CHARS = 300


def shorten(text: str | None, limit: int = DESCRIPTION_CHARS) -> str | None:
    """A description on one line, cut at a word to about ``limit`` characters."""
    if not text:
        return None
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",.;:–- ")
    return f"{cut} …"


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "meeting_id": doc["_id"],
        "kind": KIND_LABELS[MeetingKind(doc["kind"])],
        "title": doc["title"],
        "starts_at": doc["starts_at"],
        "ends_at": doc.get("ends_at"),
        "place": doc.get("place"),
        "online_url": safe_url(doc.get("online_url")),
        "description": shorten(doc.get("description")),
    }


@dataclass(frozen=True)
class ComingUp:
    key: str = "coming_up"
    title: str = "Det sker snart"

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        # From the end on: what readers can still come to.
        found = await store.public_meetings_starting(scope, until, until + HORIZON, LIMIT)
        return [entry(doc) for doc in found]


SECTION = ComingUp()
