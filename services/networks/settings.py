"""The networks service's options, on the common service settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from services.runtime.settings import ServiceSettings, TokenSecret


class NetworksSettings(ServiceSettings):
    # Signs the answer links of network invitations, which the newsletter service mails
    # for us (it holds the same secret): a link needs no storage.
    networks_token_secret: TokenSecret
    # The exact solver's limit on one suggestion, in the solver's deterministic units (the
    # same input gives the same team on any machine), and a wall-clock safety net; the
    # greedy team is the answer when no solution is found within them.
    networks_solver_deterministic_limit: float = Field(default=0.2, gt=0, le=60)
    networks_solver_seconds: float = Field(default=1.0, gt=0, le=30)
    # How far back a network invitation counts as fatigue (asked recently).
    networks_fatigue_days: int = Field(default=90, ge=1, le=730)

    @property
    def networks_fatigue_window(self) -> timedelta:
        return timedelta(days=self.networks_fatigue_days)
