"""The events service's options, on the common service settings."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import SenderSettings, ServiceSettings, TokenSecret


class EventsSettings(ServiceSettings, SenderSettings):
    # Who said yes is reminded this long before the start (absolute time, across DST).
    events_reminder_hours: float = Field(default=48.0, gt=0, le=24 * 30)
    # How often due reminders and unfinished invitation rounds are looked for.
    events_poll_seconds: float = Field(default=5.0, gt=0)
    # Invitees per round of a meeting's invitation fan-out (one transaction each).
    events_fanout_batch: int = Field(default=100, ge=1, le=1000)
    # Signs the answer links the newsletter service mails for us (it holds the same secret).
    events_token_secret: TokenSecret
