"""Section "new_networks" ("Nye handlingsnetværk"): action and volunteer networks formed in
the issue's period, with the challenge each meets. No member is named."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.networks import KIND_LABELS, NetworkKind
from services.newsletter import store
from services.runtime.unit_of_work import Scope


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "network_id": doc["_id"],
        "kind": KIND_LABELS[NetworkKind(doc["kind"])],
        "title": doc["title"],
        "challenge_title": doc.get("challenge_title"),
        "ends": doc.get("ends"),
    }


@dataclass(frozen=True)
class NewNetworks:
    key: str = "new_networks"
    title: str = "Nye handlingsnetværk"

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return [entry(doc) for doc in await store.networks_formed(scope, since, until)]


SECTION = NewNetworks()
