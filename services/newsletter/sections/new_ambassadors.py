"""Section "new_ambassadors": who became an ambassador in the period, if listed publicly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.ambassadors import THEME_LABELS
from services.newsletter import store
from services.runtime.mongo import DatabaseT


@dataclass(frozen=True)
class NewAmbassadors:
    key: str = "new_ambassadors"
    title: str = "Nye ambassadører"

    async def query(self, db: DatabaseT, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return [
            {
                # Kept so that an erasure can take the entry out of a stored issue again.
                "ambassador_id": a.ambassador_id,
                # A private person's own name is what they chose to show; an organisation
                # is shown by its name, never by its contact person's.
                "display_name": a.display_name,
                "themes": [THEME_LABELS[t] for t in a.themes if t in THEME_LABELS],
            }
            for a in await store.public_ambassadors_activated(db, since, until)
        ]


SECTION = NewAmbassadors()
