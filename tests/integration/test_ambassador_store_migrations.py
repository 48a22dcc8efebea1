"""A database written by an older release is brought up to date when the service starts.

On the session's SecantusDB: what older releases stored (consents in a collection of their
own, empty lookup fields as nulls, a partial unique index plus a lookup index per field)
is migrated by ``store.ensure_indexes``, and the rules those indexes enforce still hold.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from services.ambassadors import store
from services.runtime.mongo import DatabaseT, connect
from stack.mongo import MongoServer

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(mongo_server: MongoServer) -> AsyncIterator[DatabaseT]:
    client = connect(mongo_server.url, "test-ambassador-migrations")
    database = client[f"amb_migrate_{uuid.uuid4().hex[:8]}"]
    try:
        yield database
    finally:
        await client.drop_database(database.name)
        await client.close()


async def old_release(db: DatabaseT) -> None:
    """Two ambassadors, one erased, as an older release stored them, with its indexes."""
    await db.ambassadors.create_index(
        "email_key",
        unique=True,
        partialFilterExpression={"email_key": {"$type": "string"}},
        name="email_key_unique",
    )
    await db.ambassadors.create_index(
        [("email_key", ASCENDING), ("_id", ASCENDING)], name="email_key_lookup"
    )
    await db.ambassadors.insert_many(
        [
            {"_id": "a1", "email_key": "anna@example.org", "token_hash": None},
            {"_id": "a2", "email_key": None, "token_hash": None, "status": "erased"},
            {"_id": "a3", "email_key": None, "token_hash": None, "status": "erased"},
        ]
    )
    await db.consents.insert_many(
        [
            {"ambassador_id": "a1", "version": "2025-01", "given_at": NOW},
            {"ambassador_id": "a2", "version": "2025-01", "given_at": NOW},
        ]
    )


async def test_an_older_database_is_migrated_and_its_rules_still_hold(db: DatabaseT) -> None:
    await old_release(db)
    await store.ensure_indexes(db)
    await store.ensure_indexes(db)  # every start runs it: the second time changes nothing

    anna = await db.ambassadors.find_one({"_id": "a1"})
    assert anna is not None
    assert anna["consents"] == [{"version": "2025-01", "given_at": NOW}]
    assert "token_hash" not in anna, "a stored null is an index entry on SecantusDB"
    erased = await db.ambassadors.find_one({"_id": "a2"})
    assert erased is not None and "email_key" not in erased and len(erased["consents"]) == 1
    assert await db.consents.count_documents({}) == 0

    names = set((await db.ambassadors.index_information()).keys())
    assert not names & {"email_key_unique", "email_key_lookup"}
    # Still one ambassador per address, and any number of erased ones without one.
    with pytest.raises(DuplicateKeyError):
        await db.ambassadors.insert_one({"_id": "a4", "email_key": "anna@example.org"})
    await db.ambassadors.insert_one({"_id": "a5", "status": "erased"})
    found = await db.ambassadors.find_one({"email_key": "anna@example.org"})
    assert found is not None and found["_id"] == "a1"
