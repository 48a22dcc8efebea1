"""How much each ambassador has been asked lately, for the matching: the networks they are
in now and the network invitations of the last days.

Read from the memberships only when they changed (every write of one is numbered, see
store.MEMBERSHIP_CHANGES), so a suggestion does not read them all each time; the window of
recent invitations moves with the clock, so the counts are made per suggestion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta

from services.networks import store
from services.runtime.unit_of_work import Scope

Fact = tuple[str, bool, datetime | None]


def counts(facts: Iterable[Fact], since: datetime) -> dict[str, tuple[int, int]]:
    """Per ambassador with either: (open networks they are in, invitations since ``since``)."""
    found: dict[str, list[int]] = {}
    for who, joined, invited_at in facts:
        recent = invited_at is not None and invited_at >= since
        if joined or recent:
            entry = found.setdefault(who, [0, 0])
            entry[0] += joined
            entry[1] += recent
    return {who: (active, invited) for who, (active, invited) in found.items()}


class FatigueCache:
    """One per process."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.seen = -1
        self.facts: list[Fact] = []
        self._counted: tuple[int, datetime, dict[str, tuple[int, int]]] | None = None
        self._lock = asyncio.Lock()

    async def current(self, scope: Scope) -> dict[str, tuple[int, int]]:
        since = scope.now - self.window
        async with self._lock:
            latest = await store.last_change(scope, store.MEMBERSHIP_CHANGES)
            if latest != self.seen:
                # Read with the window as it is now: what falls out of it later is left out
                # by the counts, what comes in later is a change.
                self.facts = await store.fatigue_facts(scope, since=since)
                self.seen = latest
            # Counted again when the memberships changed or the window moved by a minute.
            minute = since.replace(second=0, microsecond=0)
            if self._counted is None or self._counted[:2] != (latest, minute):
                self._counted = (latest, minute, counts(self.facts, minute))
            return self._counted[2]
