"""The networks service's options, on the common service settings."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import Field, model_validator

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
    # How often invitations past their deadline and networks ending soon are looked for.
    networks_poll_seconds: float = Field(default=30.0, gt=0)
    # The process goal (2019-2020 in the first strategy: 30 started action networks,
    # dialogue meetings, theme days and the like): initiatives started in this period.
    goal_initiatives: int = Field(default=30, ge=1, le=10_000)
    goal_initiatives_from: date = date(2026, 1, 1)
    goal_initiatives_until: date = date(2027, 12, 31)

    @model_validator(mode="after")
    def _period_is_a_period(self) -> NetworksSettings:
        if self.goal_initiatives_until < self.goal_initiatives_from:
            raise ValueError("goal_initiatives_until is before goal_initiatives_from")
        return self

    @property
    def networks_fatigue_window(self) -> timedelta:
        return timedelta(days=self.networks_fatigue_days)
