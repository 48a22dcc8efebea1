"""What a service stores about an ambassador because the read model said they are active
cannot outlive an erasure applied at the same moment, on the session's SecantusDB.

The race: an invitation round reads an ambassador as active, the erasure commits (it finds
no invitation to delete), then the round stores its invitation. With the read alone both
transactions commit; the round's hold on the ambassador's entry makes one of them conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from pymongo.errors import PyMongoError

from contracts.ambassadors import Erased
from services.runtime.known_ambassadors import KnownAmbassadors
from services.runtime.mongo import DatabaseT, connect
from services.runtime.unit_of_work import Reading, UnitOfWork
from stack.mongo import MongoServer

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
WIM = "amb-wim"


@pytest.fixture
async def db(mongo_server: MongoServer) -> AsyncIterator[DatabaseT]:
    client = connect(mongo_server.url, "test-read-model-races")
    database = client[f"races_{uuid.uuid4().hex[:8]}"]
    await KnownAmbassadors().ensure_indexes(Reading(database, NOW))
    await database.ambassadors.insert_one(
        {"_id": WIM, "standing": "active", "name": "Wim", "email": "wim@example.org"}
    )
    await database.create_collection("invitations")
    try:
        yield database
    finally:
        await client.drop_database(database.name)
        await client.close()


async def erase(db: DatabaseT, known: KnownAmbassadors) -> None:
    """What the events service's erasure does: the tombstone, the invitations deleted."""
    async with db.client.start_session() as session, await session.start_transaction():
        uow = UnitOfWork(db, session, now=NOW)
        await known.update(uow, Erased(ambassador_id=WIM, occurred_at=NOW))
        await db.invitations.delete_many({"ambassador_id": WIM}, session=session)


@asynccontextmanager
async def invitation_round(db: DatabaseT) -> AsyncIterator[UnitOfWork]:
    """An invitation round's unit of work, left open for the test to interleave with; the
    test commits it (or sees it fail)."""
    async with db.client.start_session() as session:
        await session.start_transaction()
        yield UnitOfWork(db, session, now=NOW)


async def store_invitation(uow: UnitOfWork) -> None:
    await uow.db.invitations.insert_one({"_id": "inv-1", "ambassador_id": WIM}, session=uow.session)


async def test_an_invitation_decided_before_an_erasure_committed_is_never_kept(
    db: DatabaseT,
) -> None:
    known = KnownAmbassadors()
    async with invitation_round(db) as uow:
        session = uow.session
        assert session is not None
        round_saw = [a.id for a in await known.active_after(uow, None, 10)]
        assert round_saw == [WIM]

        await erase(db, known)  # commits between the round's read and its write

        try:
            held = await known.hold(uow, round_saw)
            if WIM in held:
                await store_invitation(uow)
            await session.commit_transaction()
        except PyMongoError as error:
            # The runtime runs such a unit again; the next attempt reads the tombstone.
            assert error.has_error_label("TransientTransactionError"), error
            if session.in_transaction:
                await session.abort_transaction()

    assert await db.invitations.count_documents({"ambassador_id": WIM}) == 0
    entry = await db.ambassadors.find_one({"_id": WIM})
    assert entry is not None and entry["standing"] == "erased"
    assert set(entry) <= {"_id", "standing", "as_of"}, entry


async def test_an_erasure_that_comes_while_an_invitation_is_being_stored_sees_it(
    db: DatabaseT,
) -> None:
    known = KnownAmbassadors()
    async with invitation_round(db) as uow:
        assert uow.session is not None
        assert await known.hold(uow, [WIM]) == {WIM}
        await store_invitation(uow)

        # The erasure conflicts with the round's write while the round is open...
        with pytest.raises(PyMongoError) as conflict:
            await erase(db, known)
        assert conflict.value.has_error_label("TransientTransactionError")
        await uow.session.commit_transaction()

    # ...and, run again as the runtime does, deletes what the round stored.
    await erase(db, known)
    assert await db.invitations.count_documents({"ambassador_id": WIM}) == 0
