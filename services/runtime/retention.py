"""How long each service keeps its records, enforced by the service itself.

MongoDB's TTL indexes would do it on a real server, but the embedded stack's SecantusDB
has no TTL monitor: a purge loop in every service deletes what is past its period, at the
service's own clock (tests travel it). A rule is a collection, the date field its period
counts from, and the number of days; the runtime registers the rules every service has
(the audit trail, dead letters and failures, published-event records, finished jobs,
processed-event records), a service adds its own (newsletter: sent mail records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.runtime.logging import get_logger
from services.runtime.mongo import DatabaseT

log = get_logger(__name__)

# Often enough that nothing outlives its period by more than an hour; each round is one
# indexed range delete per rule.
EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class Rule:
    collection: str
    # The date a record's period counts from (a record without it is never purged: it is
    # not finished yet, e.g. a mail still queued).
    field: str
    days: Callable[[], int]
    why: str


async def purge(db: DatabaseT, rules: list[Rule], now: datetime) -> dict[str, int]:
    """Delete every record past its rule's period; how many, per collection."""
    purged: dict[str, int] = {}
    for rule in rules:
        cutoff = now - timedelta(days=rule.days())
        result = await db[rule.collection].delete_many({rule.field: {"$lt": cutoff}})
        if result.deleted_count:
            purged[rule.collection] = purged.get(rule.collection, 0) + result.deleted_count
    if purged:
        log.info("retention purge", purged=purged)
    return purged
