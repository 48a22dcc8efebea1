"""Where an address occurs in what a service keeps: every collection of its database, its
event stream and its dead-letter stream (``samskab privacy audit``).

The search is over the stored bytes (BSON documents, stream messages with their headers),
case-insensitively, so an address inside a free text or a dead letter's payload is found as
well as one in an ``email`` field. It reads everything: an operator's tool for a person's
request or an erasure's check, not for a page.
"""

from __future__ import annotations

import asyncio
import re

import bson
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.operations import AddressFound, AddressSearch
from services.runtime.mongo import DatabaseT
from services.runtime.personal_data import address_bytes_pattern, collections

# The first ids (or sequence numbers) of a place named in the answer.
IDS_SHOWN = 20
# Stream messages read at once.
READ_AHEAD = 64


async def in_collections(
    db: DatabaseT, needle: re.Pattern[bytes]
) -> tuple[list[AddressFound], list[str]]:
    found: list[AddressFound] = []
    searched = await collections(db)
    for collection in searched:
        ids: list[str] = []
        async for doc in db[collection].find({}):
            if needle.search(bson.encode(doc)):
                ids.append(str(doc.get("_id")))
        if ids:
            found.append(
                AddressFound(
                    kind="collection", name=collection, count=len(ids), ids=ids[:IDS_SHOWN]
                )
            )
    return found, [f"collection {c}" for c in searched]


async def _message(js: JetStreamContext, stream: str, seq: int) -> bytes:
    try:
        msg = await js.get_msg(stream, seq)
    except NotFoundError:
        return b""  # deleted (an erasure's purge) or aged out
    headers = b"".join(f"{k}:{v}\n".encode() for k, v in (msg.headers or {}).items())
    return headers + (msg.data or b"")


async def in_stream(
    js: JetStreamContext, stream: str, needle: re.Pattern[bytes]
) -> AddressFound | None:
    """The stream's messages that hold ``needle``; None if none (or no such stream)."""
    try:
        state = (await js.stream_info(stream)).state
    except NotFoundError:
        return None
    seqs: list[int] = []
    if state.messages:
        for start in range(state.first_seq, state.last_seq + 1, READ_AHEAD):
            batch = range(start, min(start + READ_AHEAD, state.last_seq + 1))
            bodies = await asyncio.gather(*(_message(js, stream, seq) for seq in batch))
            seqs += [seq for seq, body in zip(batch, bodies, strict=True) if needle.search(body)]
    if not seqs:
        return None
    return AddressFound(
        kind="stream", name=stream, count=len(seqs), ids=[str(s) for s in seqs[:IDS_SHOWN]]
    )


async def search(
    db: DatabaseT, js: JetStreamContext | None, streams: list[str], service: str, email: str
) -> AddressSearch:
    needle = address_bytes_pattern(email)
    found, searched = await in_collections(db, needle)
    if js is not None:
        for stream in streams:
            place = await in_stream(js, stream, needle)
            searched.append(f"stream {stream}")
            if place is not None:
                found.append(place)
    return AddressSearch(service=service, email=email, found=found, searched=searched)
