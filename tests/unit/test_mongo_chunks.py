"""Looking documents up by many ids (services/runtime/mongo.py): an ``$in`` per chunk of ids,
which SecantusDB answers in time linear in the ids rather than quadratic, with the same
answer as one ``$in`` over them all."""

from __future__ import annotations

from typing import cast

from services.runtime.mongo import IN_CHUNK, DatabaseT, delete_in, find_in, in_chunks, update_in
from services.runtime.testing import MemoryDatabase


def test_ids_are_split_in_order_into_chunks_of_at_most_the_chunk_size() -> None:
    ids = [f"m{n}" for n in range(2 * IN_CHUNK + 5)]
    chunks = in_chunks(ids)
    assert [len(chunk) for chunk in chunks] == [IN_CHUNK, IN_CHUNK, 5]
    assert [mail_id for chunk in chunks for mail_id in chunk] == ids
    assert in_chunks([]) == []


async def test_many_ids_are_found_updated_and_deleted_across_chunks() -> None:
    db = cast(DatabaseT, MemoryDatabase())
    await db.mails.insert_many(
        [{"_id": f"m{n}", "state": "sending" if n % 2 else "queued"} for n in range(100)]
    )
    wanted = [f"m{n}" for n in range(90)] + ["unknown"]

    found = await find_in(db.mails, wanted, {"state": "sending"}, {"_id": 1})
    assert sorted(doc["_id"] for doc in found) == sorted(f"m{n}" for n in range(1, 90, 2))

    assert await update_in(db.mails, wanted, {"state": "queued"}, {"$set": {"state": "sent"}}) == 45
    assert await db.mails.count_documents({"state": "sent"}) == 45

    assert await delete_in(db.mails, wanted, {"state": "sent"}) == 45
    assert await db.mails.count_documents({}) == 55
    assert await update_in(db.mails, [], None, {"$set": {"state": "x"}}) == 0
    assert await find_in(db.mails, []) == []
