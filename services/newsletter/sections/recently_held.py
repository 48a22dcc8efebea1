"""Section "recently_held" ("Det har vi holdt"): meetings held in the issue's period.

Public or not: that a meeting took place, how many came, which organisations took part and
what came out of it is told afterwards (the strategy counts dialogue meetings and theme
days). No person is named; organisations are public by what they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.events import KIND_LABELS, MeetingKind
from services.newsletter import store
from services.runtime.unit_of_work import Scope


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "meeting_id": doc["_id"],
        "kind": KIND_LABELS[MeetingKind(doc["kind"])],
        "title": doc["title"],
        # The day it took place in Copenhagen (ISO), else the start.
        "held_on": doc.get("held_on") or doc["starts_at"],
        "attendee_count": int(doc.get("attendee_count") or 0),
        "organisations": list(doc.get("attending_organisations") or ()),
        "outcomes": list(doc.get("outcomes") or ()),
    }


@dataclass(frozen=True)
class RecentlyHeld:
    key: str = "recently_held"
    title: str = "Det har vi holdt"

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return [entry(doc) for doc in await store.meetings_held(scope, since, until)]


SECTION = RecentlyHeld()
