"""Section "results" ("Resultater"): networks closed in the issue's period with something
to show: an initiative started, or the work handed over; what came of it and the
organisations that took part (members listed publicly only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.networks import KIND_LABELS, NetworkKind
from services.newsletter import store
from services.runtime.unit_of_work import Scope

OUTCOME_LABELS = {"initiative": "Nyt initiativ", "handed_over": "Arbejdet er givet videre"}


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "network_id": doc["_id"],
        "kind": KIND_LABELS[NetworkKind(doc["kind"])],
        "title": doc["title"],
        "outcome": OUTCOME_LABELS[doc["outcome"]],
        "initiative_title": doc.get("initiative_title"),
        "summary": doc.get("summary") or "",
        "closed_on": doc.get("closed_on") or doc["closed_at"],
        "organisations": list(doc.get("organisations") or ()),
    }


@dataclass(frozen=True)
class Results:
    key: str = "results"
    title: str = "Resultater"

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return [entry(doc) for doc in await store.networks_closed(scope, since, until)]


SECTION = Results()
