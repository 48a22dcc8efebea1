"""Section "new_ambassadors": who became an ambassador in the period, if listed publicly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.ambassadors import THEME_LABELS
from services.runtime.known_ambassadors import KnownAmbassadors
from services.runtime.unit_of_work import Scope


@dataclass(frozen=True)
class NewAmbassadors:
    key: str = "new_ambassadors"
    title: str = "Nye ambassadører"

    async def query(self, scope: Scope, since: datetime, until: datetime) -> list[dict[str, Any]]:
        return [
            {
                # Kept so that an erasure can take the entry out of a stored issue again.
                "ambassador_id": a.id,
                # A private person's own name is what they chose to show; an organisation
                # is shown by its name, never by its contact person's.
                "display_name": a.display_name,
                "themes": [THEME_LABELS[t] for t in a.themes if t in THEME_LABELS],
            }
            for a in await KnownAmbassadors().public_activated(scope, since, until)
        ]


SECTION = NewAmbassadors()
