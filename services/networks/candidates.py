"""The ambassadors the matching chooses from, as its arrays, kept in step with the read
model of ambassadors in this service's database.

Scoring 100,000 candidates within a request cannot start by reading 100,000 documents, so
the process keeps them in memory (``matching.Pool``) and, before each suggestion, reads
only what changed since it last looked: every change to the read model (and every merge of
skills) is numbered in the transaction that makes it (``store.stamp_ambassador_change``),
so a replica that did not apply a change itself still picks it up. Skills are kept as the
vocabulary reads them; a merge of skills reads every tag again.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.networks import store
from services.networks.matching import CandidateRow, Pool
from services.networks.skills import SkillReader
from services.runtime.known_ambassadors import KnownAmbassador
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import Scope

log = get_logger(__name__)


def candidate_row(known: KnownAmbassador, reader: SkillReader) -> CandidateRow:
    assert known.kind is not None
    return CandidateRow(
        id=known.id,
        kind=known.kind,
        themes=tuple(known.themes),
        core_areas=tuple(known.core_areas),
        skills=reader.read_all(known.skills),
        networks_at_once=known.networks_at_once,
        paused_until=known.paused_until,
    )


class CandidatePool:
    """One per process; ``current`` brings it up to date and returns it."""

    def __init__(self) -> None:
        self.pool = Pool.build([])
        self.reader = SkillReader()
        self.seen = 0
        self._built = False
        self._lock = asyncio.Lock()

    async def current(self, scope: Scope) -> tuple[Pool, SkillReader]:
        """Up to date now (what a caller reads of it may change at the next catch-up)."""
        async with self.using(scope) as found:
            return found

    @asynccontextmanager
    async def using(self, scope: Scope) -> AsyncIterator[tuple[Pool, SkillReader]]:
        """Up to date, and held: nothing changes it until the block ends (the arrays are
        changed in place, so a matching that reads them holds the pool)."""
        async with self._lock:
            latest = await store.last_ambassador_change(scope)
            if latest != self.seen or not self._built:
                await self._catch_up(scope, latest)
            yield self.pool, self.reader

    async def _catch_up(self, scope: Scope, latest: int) -> None:
        merges = await store.skill_merges(scope)
        rebuild = not self._built or merges != dict(self.reader.merges)
        if rebuild:
            self.reader = SkillReader(merges=merges)
            self.pool = Pool.build([])
        # The counter is read before the entries: a change committed meanwhile has a
        # higher number and is read (again) next time, which changes nothing twice. Read in
        # batches: 100,000 entries never sit in memory at once.
        async for changed in store.ambassadors_changed_after(scope, 0 if rebuild else self.seen):
            self.pool.upsert(
                candidate_row(k, self.reader) for k in changed if store.is_candidate(k)
            )
            self.pool.remove(k.id for k in changed if not store.is_candidate(k))
        if rebuild:
            log.info("matching pool built", candidates=len(self.pool), change=latest)
            # Everything alive now (the pool, the loaded modules) stays for the process's
            # life: out of the collector's full passes, which would otherwise walk it all
            # every few seconds and stall a suggestion by a tenth of a second.
            gc.collect()
            gc.freeze()
        self.seen = latest
        self._built = True
