"""What the events service's handlers share: the runtime's handles, its settings, the
ambassadors it knows, the housekeeping loop and the answer links' signer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from services.events.settings import EventsSettings
from services.runtime.background import Loop
from services.runtime.known_ambassadors import KnownAmbassadors
from services.runtime.service import Service
from services.runtime.tokens import ANSWER, Signer


@dataclass
class Context:
    service: Service
    settings: EventsSettings
    # The runtime's read model of ambassadors (service.follow_ambassadors()).
    ambassadors: KnownAmbassadors
    # Invitation rounds and reminders (woken after a meeting is scheduled).
    housekeeping: Loop | None = None

    @cached_property
    def answers(self) -> Signer:
        """Checks the answer links the newsletter service signs (meeting, ambassador)."""
        return Signer(self.settings.events_token_secret, ANSWER)

    @property
    def remind_before(self) -> timedelta:
        return timedelta(hours=self.settings.events_reminder_hours)

    def wake_housekeeping(self) -> None:
        if self.housekeeping is not None:
            self.housekeeping.wake()
