"""Privacy across the three services, as real processes against real NATS, SecantusDB and
the SMTP sink:

- no token that a mail carries is readable at rest: after a sign-up, a subscription and an
  invitation, none of the tokens in the mails is in any collection of any service, in any
  dead letter or in any stream message, and each of them works;
- an erased ambassador stays erased: an ``activated`` about them that arrives late (a
  redelivery) is ignored by newsletter and events, and their dead letters are scrubbed and
  cannot be replayed (the read model's tombstones).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote

import bson
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.ambassadors import Activated, CertificateRef, certificate_object_name
from contracts.ambassadors import Endpoints as Ambassadors_
from contracts.errors import ErrorCode, ServiceError
from contracts.events import Endpoints as Events_
from contracts.newsletter import Endpoints as Newsletter_
from contracts.operations import FindAddress, ReplayDeadLetter, dead_letters_replay, privacy_audit
from services.runtime.dead_letters import dead_letter_id
from stack.mongo import MongoServer
from stack.smtp_sink import SmtpSink
from tests.conftest import ServiceProcessFactory
from tests.integration.ambassadors_harness import (
    Ambassadors,
    AmbassadorsFactory,
    eventually,
    unique_email,
    wait_for_log,
)

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration

Document = dict[str, Any]
PUBLIC_URL = "https://samskab.privacy.example"
STREAMS = ("AMBASSADORS", "EVENTS", "NEWSLETTER")
TOKEN = r"([A-Za-z0-9_.\-]+)"


@dataclass
class Trio:
    ambassadors: Ambassadors
    databases: dict[str, str]
    mongo: AsyncMongoClient[Document]
    sink: SmtpSink

    @property
    def js(self) -> JetStreamContext:
        return self.ambassadors.js

    def db(self, service: str) -> AsyncDatabase[Document]:
        return self.mongo[self.databases[service]]

    async def call(self, subject: str, payload: dict[str, Any]) -> Any:
        return await self.ambassadors.client.request(subject, payload)

    async def mail_to(self, address: str, count: int = 1) -> list[EmailMessage]:
        async def arrived() -> list[EmailMessage] | None:
            found = [m for m in self.sink.messages() if address in str(m.get("To", ""))]
            return found if len(found) >= count else None

        found: list[EmailMessage] = await eventually(
            arrived, timeout=45, interval=0.2, what=f"{count} mail(s) to {address}"
        )
        return found


@pytest.fixture
async def trio(
    start_ambassadors: AmbassadorsFactory,
    service_process: ServiceProcessFactory,
    mongo_server: MongoServer,
    smtp_sink: SmtpSink,
) -> AsyncIterator[Trio]:
    ambassadors = await start_ambassadors({"SAMSKAB_PUBLIC_URL": PUBLIC_URL})
    databases = {"ambassadors": ambassadors.database}
    for name in ("events", "newsletter"):
        databases[name] = f"{name[:2]}_{uuid.uuid4().hex[:8]}"
        process = service_process(
            name,
            {
                "SAMSKAB_MONGO_DATABASE": databases[name],
                "SAMSKAB_PUBLIC_URL": PUBLIC_URL,
                "SAMSKAB_EVENTS_POLL_SECONDS": "0.3",
                "SAMSKAB_CONSUMER_BACKOFF_SECONDS": "[0.2]",
            },
        )
        wait_for_log(process, "service ready")
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)
    try:
        yield Trio(ambassadors, databases, mongo, smtp_sink)
    finally:
        await mongo.close()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def found_in(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern} not in:\n{text}"
    return unquote(match.group(1))


async def everything_stored(trio: Trio) -> list[tuple[str, bytes]]:
    """Every document of every collection of the three services' databases, and every
    message of their streams and dead-letter streams, as bytes."""
    found: list[tuple[str, bytes]] = []
    for service in trio.databases:
        db = trio.db(service)
        for collection in await db.list_collection_names():
            async for doc in db[collection].find({}):
                found.append((f"{service}.{collection}", bson.encode(doc)))
    for stream in (*STREAMS, *(f"DLQ_{s}" for s in ("EVENTS", "NEWSLETTER"))):
        try:
            state = (await trio.js.stream_info(stream)).state
        except NotFoundError:
            continue
        if not state.messages:
            continue
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await trio.js.get_msg(stream, seq)
            except NotFoundError:
                continue
            data = (msg.data or b"") + json.dumps(dict(msg.headers or {})).encode()
            found.append((f"stream {stream} #{seq}", data))
    return found


async def test_no_token_a_mail_carries_is_readable_at_rest_and_each_one_works(trio: Trio) -> None:
    # A self sign-up, a subscription, an active ambassador invited to a meeting.
    signer_up, reader, invitee = (unique_email(n) for n in ("tina", "ulla", "vera"))
    pending = await trio.ambassadors.sign_up(email=signer_up, name="Tina Testesen")
    await trio.call(Newsletter_.SUBSCRIBE.subject, {"email": reader, "name": "Ulla"})
    vera = await trio.ambassadors.sign_up(email=invitee, name="Vera Testesen", staff=True)
    vera_id = vera["ambassador"]["id"]
    # Copenhagen wall-clock time, as staff type it.
    starts = (datetime.now() + timedelta(days=20)).replace(
        hour=17, minute=0, second=0, microsecond=0
    )

    async def vera_is_known() -> bool:
        known = await trio.db("events").ambassadors.find_one({"_id": vera_id})
        return known is not None and known.get("standing") == "active"

    await eventually(vera_is_known, what="the events service to know Vera", timeout=30)
    meeting = await trio.call(
        Events_.SCHEDULE.subject,
        {
            "kind": "theme_day",
            "title": "Temadag om ensomhed",
            "starts": starts.isoformat(timespec="minutes"),
            "ends": (starts + timedelta(hours=2)).isoformat(timespec="minutes"),
            "place": "Fredericia Bibliotek",
            "audience": {"ambassador_ids": [vera_id]},
        },
    )

    [confirmation] = await trio.mail_to(signer_up)
    [subscription] = await trio.mail_to(reader)
    to_vera = await trio.mail_to(invitee, count=2)  # the welcome and the invitation
    welcome = next(m for m in to_vera if m.get("List-Unsubscribe"))
    invitation = next(m for m in to_vera if "/rsvp/" in text_of(m))
    tokens = {
        "sign-up confirmation": found_in(text_of(confirmation), rf"{PUBLIC_URL}/confirm/{TOKEN}"),
        "subscription confirmation": found_in(
            text_of(subscription), rf"{PUBLIC_URL}/newsletter/confirm/{TOKEN}"
        ),
        "unsubscribe": found_in(
            str(welcome["List-Unsubscribe"]), rf"/newsletter/unsubscribe/{TOKEN}>"
        ),
        "answer": found_in(text_of(invitation), rf"{PUBLIC_URL}/rsvp/{TOKEN}/yes"),
    }
    assert len(set(tokens.values())) == 4

    stored = await everything_stored(trio)
    # The scan looks where the tokens would be: the mail records, and the stream messages
    # the links are made of.
    places = {where.split(" #")[0] for where, _ in stored}
    assert {"newsletter.mails", "stream AMBASSADORS", "stream EVENTS"} <= places, places
    assert any(
        pending["ambassador"]["id"].encode() in data
        for where, data in stored
        if where.startswith("stream AMBASSADORS #")
    )
    for what, token in tokens.items():
        holders = [where for where, data in stored if token.encode() in data]
        assert not holders, f"the {what} token is readable in {holders}"

    # And each of them is a real, working token.
    confirmed = await trio.call(
        Ambassadors_.CONFIRM.subject, {"token": tokens["sign-up confirmation"]}
    )
    assert (confirmed["id"], confirmed["status"]) == (pending["ambassador"]["id"], "active")
    subscribed = await trio.call(
        Newsletter_.CONFIRM.subject, {"token": tokens["subscription confirmation"]}
    )
    assert (subscribed["email"], subscribed["status"]) == (reader, "confirmed")
    answered = await trio.call(Events_.ANSWER.subject, {"token": tokens["answer"], "answer": "yes"})
    assert (answered["meeting_id"], answered["participation"]) == (meeting["id"], "attending")
    gone = await trio.call(Newsletter_.UNSUBSCRIBE.subject, {"token": tokens["unsubscribe"]})
    assert (gone["email"], gone["status"]) == (invitee, "unsubscribed")
    # A token for one purpose is worthless for another.
    with pytest.raises(ServiceError) as misused:
        await trio.call(Newsletter_.UNSUBSCRIBE.subject, {"token": tokens["answer"]})
    assert misused.value.code == ErrorCode.INVALID_TOKEN


async def advisory(trio: Trio, consumer: str, seq: int) -> None:
    """What JetStream announces when ``consumer`` exhausted its deliveries of ``seq``."""
    await trio.js.publish(
        f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.AMBASSADORS.{consumer}",
        json.dumps(
            {
                "type": "io.nats.jetstream.advisory.v1.max_deliver",
                "stream": "AMBASSADORS",
                "consumer": consumer,
                "stream_seq": seq,
                "deliveries": 6,
            }
        ).encode(),
    )


async def acked_through(trio: Trio, consumer: str, seq: int) -> bool:
    info = await trio.js.consumer_info("AMBASSADORS", consumer)
    floor = info.ack_floor.stream_seq if info.ack_floor else 0
    return floor >= seq and info.num_ack_pending == 0


async def test_an_erased_ambassador_is_never_brought_back_by_a_late_or_replayed_event(
    trio: Trio,
) -> None:
    address = unique_email("wim")
    wim = (await trio.ambassadors.sign_up(email=address, name="Wim Testesen", staff=True))[
        "ambassador"
    ]
    [activated] = await trio.ambassadors.wait_for_events([wim["id"]], "activated")
    await trio.mail_to(address)  # the welcome: the newsletter knows him

    # Before the erasure, the activation died in both consumers (an operator may replay it).
    for consumer in ("newsletter", "events"):
        await advisory(trio, consumer, activated.seq)

    async def dead_letter(service: str, seq: int) -> Document | None:
        found: Document | None = await trio.db(service).dead_letters.find_one(
            {"_id": dead_letter_id("AMBASSADORS", seq)}
        )
        return found

    for service in ("newsletter", "events"):
        stored = await eventually(
            functools.partial(dead_letter, service, activated.seq), what="the dead letter"
        )
        assert address.encode() in bytes(stored["payload"])
    # The operators' search finds him where he is: the newsletter's mails and dead letter,
    # the ambassadors service's record and the events on its stream.
    before = {service: await where_found(trio, service, address) for service in trio.databases}
    assert {"collection mails", "collection dead_letters"} <= set(before["newsletter"]), before
    assert {"collection ambassadors", "stream AMBASSADORS"} <= set(before["ambassadors"]), before
    # A meeting for every active ambassador: a wrongly revived Wim would be invited to it.
    starts = (datetime.now() + timedelta(days=30)).replace(
        hour=17, minute=0, second=0, microsecond=0
    )
    await trio.call(
        Events_.SCHEDULE.subject,
        {
            "kind": "workshop",
            "title": "Værksted",
            "starts": starts.isoformat(timespec="minutes"),
            "ends": (starts + timedelta(hours=2)).isoformat(timespec="minutes"),
            "place": "Rådhuset",
        },
    )

    await trio.call(Ambassadors_.ERASE.subject, {"ambassador_id": wim["id"]})

    async def forgotten() -> bool:
        events = await trio.db("events").ambassadors.find_one({"_id": wim["id"]})
        news = await trio.db("newsletter").ambassadors.find_one({"_id": wim["id"]})
        return all(doc is not None and doc["standing"] == "erased" for doc in (events, news))

    await eventually(forgotten, what="both services to keep only a tombstone", timeout=30)
    for service in ("newsletter", "events"):
        scrubbed = await dead_letter(service, activated.seq)
        assert scrubbed is not None and scrubbed.get("scrubbed_at") is not None
        assert address.encode() not in bson.encode(scrubbed)
        with pytest.raises(ServiceError) as refused:
            await trio.ambassadors.client.call(
                dead_letters_replay(service),
                ReplayDeadLetter(id=dead_letter_id("AMBASSADORS", activated.seq)),
            )
        assert refused.value.code == ErrorCode.INVALID_STATE
        assert "erased" in refused.value.error.message

    # A late copy of the activation (redelivered, or re-published by hand).
    late = Activated(
        ambassador_id=wim["id"],
        name="Wim Testesen",
        email=address,
        kind="citizen",
        public=False,
        certificate=CertificateRef(
            number="FRC-2026-999999",
            verification_code="LATE0000",
            bucket="certificates",
            object_name=certificate_object_name(wim["id"], "FRC-2026-999999"),
        ),
    )
    ack = await trio.js.publish(
        late.subject, late.model_dump_json().encode(), headers={"Nats-Msg-Id": str(late.event_id)}
    )
    for consumer in ("newsletter", "events"):
        taken = functools.partial(acked_through, trio, consumer, ack.seq)
        await eventually(taken, what=f"{consumer} to take the late copy")
        await advisory(trio, consumer, ack.seq)  # and it died too: stored without its payload
        stored = await eventually(
            functools.partial(dead_letter, consumer, ack.seq), what="the late dead letter"
        )
        assert stored.get("scrubbed_at") is not None and bytes(stored["payload"]) == b""

    news = trio.db("newsletter")
    assert await news.subscribers.count_documents({"address": address}) == 0
    left = [d async for d in news.mails.find({"to_address": address})]
    assert left == []
    assert await news.ambassadors.count_documents({"_id": wim["id"], "standing": "erased"}) == 1
    events = trio.db("events")
    assert await events.invitations.count_documents({"ambassador_id": wim["id"]}) == 0
    assert await events.ambassadors.count_documents({"_id": wim["id"], "standing": "erased"}) == 1
    for service in trio.databases:
        for where, data in [
            (w, d) for w, d in await everything_stored(trio) if w.startswith(service)
        ]:
            assert address.encode() not in data, f"{address} is still in {where}"
    # And the operators' search, over the same collections and streams, agrees (once the
    # services' sweeps have deleted his events from their streams): nothing is left but the
    # late copy this test put on the stream by hand (no service published it, so no
    # erasure knows of it).
    expected: dict[str, dict[str, list[str]]] = {
        service: {"stream AMBASSADORS": [str(ack.seq)]} if service == "ambassadors" else {}
        for service in trio.databases
    }

    async def searched_clean() -> bool:
        found = {service: await where_found(trio, service, address) for service in expected}
        return found == expected

    await eventually(searched_clean, what="privacy audit to find only the late copy", timeout=30)


async def where_found(trio: Trio, service: str, address: str) -> dict[str, list[str]]:
    """Where ``service``'s privacy audit finds ``address`` ("collection x", "stream Y"),
    with the ids (or sequence numbers) found there."""
    search = await trio.ambassadors.client.call(privacy_audit(service), FindAddress(email=address))
    assert any(s.startswith("collection ") for s in search.searched), search
    return {f"{place.kind} {place.name}": place.ids for place in search.found}
