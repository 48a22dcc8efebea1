"""Each service purges what is past its period, at its own clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.runtime import retention
from services.runtime.testing import MemoryDatabase

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def test_records_past_their_period_are_purged_and_the_rest_kept() -> None:
    db = MemoryDatabase()
    await db.mails.insert_many(
        [
            {"_id": "old", "finished_at": NOW - timedelta(days=731)},
            {"_id": "recent", "finished_at": NOW - timedelta(days=729)},
            {"_id": "queued"},  # not finished: its period has not started
        ]
    )
    await db.audit.insert_one({"_id": "a", "at": NOW - timedelta(days=10)})
    rules = [
        retention.Rule("mails", "finished_at", lambda: 730, "mails"),
        retention.Rule("audit", "at", lambda: 5, "audit"),
    ]

    purged = await retention.purge(db, rules, NOW)  # type: ignore[arg-type]

    assert purged == {"mails": 1, "audit": 1}
    assert sorted(d["_id"] for d in db.documents("mails")) == ["queued", "recent"]
    assert db.documents("audit") == []


async def test_a_changed_setting_counts_at_the_next_round() -> None:
    db = MemoryDatabase()
    await db.audit.insert_one({"_id": "a", "at": NOW - timedelta(days=10)})
    days = [30]
    rules = [retention.Rule("audit", "at", lambda: days[0], "audit")]
    assert await retention.purge(db, rules, NOW) == {}  # type: ignore[arg-type]
    days[0] = 7
    assert await retention.purge(db, rules, NOW) == {"audit": 1}  # type: ignore[arg-type]
