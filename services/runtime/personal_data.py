"""A person's data on request (GDPR articles 15 and 20), written once for every service.

Export: every record of every collection of the service's own database that names the
person (their ambassador id as a value, or their address anywhere in a text), as stored,
with secrets left out (a token, a hash, a password: keys naming one). Nothing is listed per
service, so a collection a service adds later is exported without anyone remembering to.

The records are returned a part at a time (:data:`EXPORT_PART_BYTES` each), so a person
with years of mail records does not make a reply larger than a NATS message may be.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

from contracts.operations import (
    EXPORT_PART_BYTES,
    ExportPersonalData,
    PersonalData,
    PersonalRecord,
)
from services.runtime.mongo import DatabaseT, Document

# Keys whose values are never exported: what would let the export's reader act as the
# person (a link's token), or is of no use to them (a hash of it).
SECRET_KEY_PARTS = ("token", "secret", "password", "hash")
NOT_EXPORTED = "[not exported]"
# The runtime's own record of published events lists several people's events in one
# document: only the person's own are exported.
PUBLISHED = "outbox_published"


# Characters that may stand next to an address inside a longer one: anna@example.org is
# not found in hanna@example.org nor in anna@example.org.uk.
_BEFORE = r"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])"
_AFTER = r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"


def address_pattern(email: str) -> re.Pattern[str]:
    """The address as a whole word, in any case."""
    return re.compile(_BEFORE + re.escape(email) + _AFTER, re.IGNORECASE)


def address_bytes_pattern(email: str) -> re.Pattern[bytes]:
    """The same over stored bytes (BSON, a stream message: UTF-8 text in them)."""
    return re.compile((_BEFORE + re.escape(email) + _AFTER).encode(), re.IGNORECASE)


def names(value: Any, ambassador_id: str | None, address: re.Pattern[str] | None) -> bool:
    """Does ``value`` (a document or part of one) name the person: a text that is their
    ambassador id, or holds their address?"""
    if isinstance(value, str):
        return value == ambassador_id or (address is not None and address.search(value) is not None)
    if isinstance(value, dict):
        return any(names(v, ambassador_id, address) for v in value.values())
    if isinstance(value, list | tuple):
        return any(names(v, ambassador_id, address) for v in value)
    return False


def exportable(value: Any, key: str = "") -> Any:
    """``value`` as JSON, its secrets left out."""
    if any(part in key.lower() for part in SECRET_KEY_PARTS) and value is not None:
        return NOT_EXPORTED
    if isinstance(value, dict):
        return {str(k): exportable(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [exportable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        # Binary content (a rendered file) is named by its size: the file itself is what
        # the service sends the person anyway, and it would make parts large.
        return {"binary_bytes": len(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # an ObjectId, a Decimal128


async def collections(db: DatabaseT) -> list[str]:
    """Every collection of the database, in a stable order (parts depend on it)."""
    return sorted(n for n in await db.list_collection_names() if not n.startswith("system."))


async def records_of(
    db: DatabaseT, ambassador_id: str | None, email: str | None
) -> AsyncIterator[PersonalRecord]:
    """Every record naming the person, collection by collection, in ``_id`` order."""
    address = address_pattern(email) if email else None
    for collection in await collections(db):
        doc: Document
        async for doc in db[collection].find({}).sort("_id", 1):
            if not names(doc, ambassador_id, address):
                continue
            if collection == PUBLISHED:
                own = [e for e in doc.get("events") or [] if names(e, ambassador_id, address)]
                doc = {**doc, "events": own}
            yield PersonalRecord(
                collection=collection, id=str(doc.get("_id")), record=exportable(doc)
            )


async def export(db: DatabaseT, service: str, request: ExportPersonalData) -> PersonalData:
    """Part ``request.part`` of what ``db`` holds on the person: the records from the
    ``part``-th on, as many as fit in :data:`EXPORT_PART_BYTES` (at least one)."""
    taken: list[PersonalRecord] = []
    size = 0
    index = 0
    next_part: int | None = None
    async for record in records_of(db, request.ambassador_id, request.email):
        if index >= request.part:
            length = len(json.dumps(record.model_dump(mode="json")))
            if taken and size + length > EXPORT_PART_BYTES:
                next_part = index
                break
            taken.append(record)
            size += length
        index += 1
    # Asked by address: the ambassador's own record (the ambassadors service's, or a read
    # model's) says who they are.
    known = request.ambassador_id or next(
        (r.id for r in taken if r.collection == "ambassadors"), None
    )
    return PersonalData(
        service=service,
        email=request.email,
        ambassador_id=known,
        records=taken,
        next_part=next_part,
    )
