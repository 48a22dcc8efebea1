"""The ambassadors service's options, on the common service settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from contracts.consent import CONSENT_TEXTS, CURRENT_CONSENT_VERSION
from services.runtime.settings import ServiceSettings, TokenSecret


class AmbassadorsSettings(ServiceSettings):
    goal_ambassadors: int = Field(default=150, ge=1)
    goal_citizen_share: float = Field(default=0.20, ge=0, le=1)
    confirmation_token_ttl_hours: int = Field(default=72, ge=1)
    # Confirmation mails one address may be sent a day, however often it is signed up.
    confirmation_mails_per_day: int = Field(default=3, ge=1, le=20)
    # Which published consent text sign-ups accept (contracts.consent holds them all).
    consent_text_version: str = CURRENT_CONSENT_VERSION
    certificate_bucket: str = "certificates"
    # Import the 2022 list of organisations into an empty store (make up's demo data).
    demo_import: bool = True
    demo_csv: Path | None = None
    # Signs the confirmation links the newsletter service mails for us (it holds the same
    # secret); a link needs no storage and is never readable at rest.
    ambassadors_token_secret: TokenSecret

    @field_validator("consent_text_version")
    @classmethod
    def _consent_text_is_published(cls, value: str) -> str:
        if value not in CONSENT_TEXTS:
            raise ValueError(f"no published consent text {value!r}: {', '.join(CONSENT_TEXTS)}")
        return value
