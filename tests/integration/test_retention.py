"""Each service purges its records past their periods: the newsletter service as a real
process against real NATS and SecantusDB, its purge every half second, and its clock
travelled (SAMSKAB_CLOCK_FILE) past the periods."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from services import registry
from services.runtime.clock import travel
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.streams import declare_streams_at
from tests.conftest import ServiceProcessFactory
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


async def test_records_past_their_periods_are_purged_and_the_rest_kept(
    service_process: ServiceProcessFactory,
    nats_server: NatsServer,
    mongo_server: MongoServer,
    tmp_path: Path,
) -> None:
    await declare_streams_at(nats_server.url, registry.built())
    database = f"ret_{uuid.uuid4().hex[:8]}"
    clock = tmp_path / "clock"
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url, directConnection=True)
    db = client[database]
    service_process(
        "newsletter",
        {
            "SAMSKAB_MONGO_DATABASE": database,
            "SAMSKAB_RETENTION_PURGE_SECONDS": "0.5",
            "SAMSKAB_SENT_MAIL_RETENTION_DAYS": "30",
            "SAMSKAB_DEAD_LETTER_RETENTION_DAYS": "10",
            "SAMSKAB_CLOCK_FILE": str(clock),
        },
    )
    db.mails.insert_many(
        [
            {"_id": "m-old", "state": "sent", "finished_at": days_ago(31)},
            {"_id": "m-recent", "state": "sent", "finished_at": days_ago(29)},
            {"_id": "m-queued", "state": "queued"},
        ]
    )
    db.dead_letters.insert_many(
        [
            {"_id": "d-old", "dead_at": days_ago(11)},
            {"_id": "d-recent", "dead_at": days_ago(9)},
        ]
    )
    db.audit.insert_one({"_id": "a-old", "at": days_ago(731)})

    def ids(collection: str) -> set[str]:
        return {str(d["_id"]) for d in db[collection].find({}, {"_id": 1})}

    # Only this test's records are looked at: the service may meanwhile apply events other
    # tests left on the session's streams (and queue mails for them).
    ours = {"m-old", "m-recent", "m-queued", "d-old", "d-recent", "a-old"}

    async def left() -> set[str]:
        return {i for c in ("mails", "dead_letters", "audit") for i in ids(c)} & ours

    async def leaves(expected: set[str]) -> bool:
        return await left() == expected

    try:
        await eventually(
            lambda: leaves({"m-recent", "m-queued", "d-recent"}),
            "the records past their periods purged, the others kept",
            timeout=20,
        )
        # Two days on, the recent ones are past their periods too; the queued mail (not
        # finished) never is.
        travel(clock, NOW + timedelta(days=2))
        await eventually(
            lambda: leaves({"m-queued"}),
            "the recent records purged after the clock moved on",
            timeout=20,
        )
    finally:
        client.close()
