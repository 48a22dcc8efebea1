"""Section "new_ambassadors": who became an ambassador in the period, if listed publicly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.newsletter import store
from services.runtime.mongo import DatabaseT

# The strategy's twelve themes (2018), as the ambassadors service labels them.
THEME_LABELS: dict[int, str] = {
    1: "Hele mennesket",
    2: "En by for alle",
    3: "Idræt i fællesskaber",
    4: "Inddrag borgerne",
    5: "Flere ind i fællesskaber",
    6: "Fra udsat til ansat",
    7: "Vær en god ven",
    8: "Netværk og kommunikation",
    9: "Samarbejde på tværs af sektorer",
    10: "Mere frivillighed",
    11: "Fysisk og mental sundhed",
    12: "Forebyg",
}


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
