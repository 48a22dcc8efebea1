"""The newsletter service as a real process against real NATS, SecantusDB and the SMTP sink,
fed by the real ambassadors service.

Each test gets its own databases; the SMTP sink and the AMBASSADORS and EVENTS streams are
shared by the session, so mails are found by the unique addresses a test made up.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts.ambassadors import Endpoints as AmbassadorEndpoints
from contracts.errors import ErrorCode, ServiceError
from contracts.newsletter import UPLOADS_BUCKET, ArchiveImage, Endpoints
from services.runtime.client import ServiceClient
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.smtp_sink import SmtpSink
from stack.streams import declare_streams_at
from tests.conftest import ServiceProcessFactory
from tests.integration.ambassadors_harness import (
    Ambassadors,
    AmbassadorsFactory,
    eventually,
    unique_email,
    wait_for_log,
)
from tests.support import jobs

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration

Document = dict[str, Any]


@dataclass
class Newsletter:
    database: str
    client: ServiceClient
    db: AsyncDatabase[Document]
    sink: SmtpSink

    async def request(self, subject: str, payload: dict[str, Any] | None = None) -> Any:
        return await self.client.request(subject, payload or {})

    async def mails_to(self, address: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
        async def probe() -> list[EmailMessage] | None:
            found = [m for m in self.sink.messages() if address in str(m.get("To", ""))]
            return found if len(found) >= count else None

        found: list[EmailMessage] = await eventually(
            probe, timeout=timeout, interval=0.2, what=f"{count} mail(s) to {address}"
        )
        return found

    async def subscriber(self, address: str) -> Document | None:
        page = await self.request(Endpoints.SUBSCRIBERS.subject, {"limit": 1000})
        found = [s for s in page["items"] if s["email"] == address]
        return found[0] if found else None


@pytest.fixture
async def services(
    start_ambassadors: AmbassadorsFactory,
    service_process: ServiceProcessFactory,
    nats_server: NatsServer,
    mongo_server: MongoServer,
    smtp_sink: SmtpSink,
) -> AsyncIterator[tuple[Ambassadors, Newsletter]]:
    ambassadors = await start_ambassadors()
    # The newsletter also consumes the events service's stream; that service is not run here.
    await declare_streams_at(nats_server.url, ["events"])
    database = f"nl_{uuid.uuid4().hex[:8]}"
    process = service_process(
        "newsletter",
        {
            "SAMSKAB_MONGO_DATABASE": database,
            "SAMSKAB_LOG_LEVEL": "INFO",
            "SAMSKAB_PUBLIC_URL": "https://samskab.test.example",
        },
    )
    wait_for_log(process, "service ready")
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_server.url, tz_aware=True)
    newsletter = Newsletter(database, ambassadors.client, mongo[database], smtp_sink)
    try:
        yield ambassadors, newsletter
    finally:
        await mongo.close()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def unsubscribe_token(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    match = re.search(r"/newsletter/unsubscribe/([A-Za-z0-9_.\-]+)>", header)
    assert match, header
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return match.group(1)


async def test_double_opt_in_then_unsubscribe(
    services: tuple[Ambassadors, Newsletter],
) -> None:
    _, newsletter = services
    address = unique_email("laeser")
    result = await newsletter.request(
        Endpoints.SUBSCRIBE.subject, {"email": address, "name": "Læser"}
    )
    # The same answer for every address; staff see the pending subscriber in the list.
    assert result == {"received": True}
    subscriber = await newsletter.subscriber(address)
    assert subscriber is not None and subscriber["status"] == "pending"
    (mail,) = await newsletter.mails_to(address)
    match = re.search(r"/newsletter/confirm/([A-Za-z0-9_.\-]+)", text_of(mail))
    assert match, text_of(mail)
    confirmed = await newsletter.request(Endpoints.CONFIRM.subject, {"token": match.group(1)})
    assert confirmed["status"] == "confirmed"
    listed = await newsletter.request(Endpoints.SUBSCRIBERS.subject, {"status": "confirmed"})
    assert address in [s["email"] for s in listed["items"]]

    token = unsubscribe_token(mail)
    gone = await newsletter.request(Endpoints.UNSUBSCRIBE.subject, {"token": token})
    assert gone["status"] == "unsubscribed"
    # A second click changes nothing and is no error.
    again = await newsletter.request(Endpoints.UNSUBSCRIBE.subject, {"token": token})
    assert again["status"] == "unsubscribed"


async def test_activation_welcomes_with_the_certificate_and_subscribes(
    services: tuple[Ambassadors, Newsletter],
) -> None:
    ambassadors, newsletter = services
    address = unique_email("velkommen")
    signed = await ambassadors.sign_up(email=address, name="Vera Velkommen", staff=True)
    number = signed["ambassador"]["certificate"]["number"]
    (mail,) = await newsletter.mails_to(address)
    attachments = list(mail.iter_attachments())
    assert [a.get_filename() for a in attachments] == [f"ambassadoerbevis-{number}.pdf"]
    pdf = attachments[0].get_content()
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF-")
    subscriber = await newsletter.subscriber(address)
    assert subscriber is not None
    assert (subscriber["status"], subscriber["source"]) == ("confirmed", "ambassador")
    unsubscribe_token(mail)


async def test_self_sign_up_gets_the_confirmation_mail(
    services: tuple[Ambassadors, Newsletter],
) -> None:
    ambassadors, newsletter = services
    address = unique_email("selv")
    await ambassadors.sign_up(email=address)
    (mail,) = await newsletter.mails_to(address)
    text = text_of(mail)
    match = re.search(r"https://samskab\.test\.example/confirm/([A-Za-z0-9_.\-]+)", text)
    assert match, text
    # The link and its page are the way: no command line, no bare token.
    assert "samskab ambassadors" not in text and text.count(match.group(1)) == 1
    # Confirming there activates, and the welcome follows.
    await ambassadors.request(AmbassadorEndpoints.CONFIRM.subject, {"token": match.group(1)})
    await newsletter.mails_to(address, count=2)


async def test_an_unsubscribe_survives_a_later_profile_update(
    services: tuple[Ambassadors, Newsletter],
) -> None:
    ambassadors, newsletter = services
    address = unique_email("afmeldt")
    signed = await ambassadors.sign_up(email=address, name="Åse Afmeldt", staff=True)
    ambassador_id = signed["ambassador"]["id"]
    (welcome,) = await newsletter.mails_to(address)
    await newsletter.request(Endpoints.UNSUBSCRIBE.subject, {"token": unsubscribe_token(welcome)})
    await ambassadors.request(
        AmbassadorEndpoints.UPDATE.subject, {"ambassador_id": ambassador_id, "name": "Åse Nyt-Navn"}
    )
    await ambassadors.wait_for_events([ambassador_id], "profile_updated")

    async def renamed() -> Document | None:
        found = await newsletter.subscriber(address)
        return found if found and found["name"] == "Åse Nyt-Navn" else None

    subscriber = await eventually(renamed, what="the new name to reach the newsletter")
    assert subscriber["status"] == "unsubscribed"


async def test_erasure_leaves_the_address_in_no_collection(
    services: tuple[Ambassadors, Newsletter],
) -> None:
    ambassadors, newsletter = services
    address = unique_email("slettes")
    signed = await ambassadors.sign_up(email=address, name="Sigrid Slettes", staff=True)
    ambassador_id = signed["ambassador"]["id"]
    await newsletter.mails_to(address)
    await ambassadors.request(AmbassadorEndpoints.ERASE.subject, {"ambassador_id": ambassador_id})

    async def anywhere() -> list[str]:
        holding = []
        for name in await newsletter.db.list_collection_names():
            async for doc in newsletter.db[name].find({}):
                if address in str(doc) or "Sigrid" in str(doc):
                    holding.append(name)
        return holding

    async def gone() -> bool:
        return not await anywhere()

    await eventually(gone, timeout=30.0, what=f"{address} to leave every collection")
    subscriber_docs = [
        d async for d in newsletter.db.subscribers.find({"ambassador_id": ambassador_id})
    ]
    assert [d["status"] for d in subscriber_docs] == ["erased"]


def png_with_gps() -> bytes:
    image = Image.new("RGB", (2000, 1000), (10, 120, 200))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (55.0, 33.0, 0.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


async def test_an_issue_from_item_to_archive(
    services: tuple[Ambassadors, Newsletter], tmp_path: Path
) -> None:
    ambassadors, newsletter = services
    reader = unique_email("abonnent")
    signed = await ambassadors.sign_up(
        email=reader, name="Ambassadør Offentlig", staff=True, public=True
    )
    await newsletter.mails_to(reader)  # the welcome: the read model has the ambassador
    bucket = await ambassadors.js.object_store(UPLOADS_BUCKET)
    upload = f"upload-{uuid.uuid4().hex}.jpg"
    await bucket.put(upload, png_with_gps())
    item = await newsletter.request(
        Endpoints.ITEM_ADD.subject,
        {
            "title": "Ny café for alle",
            "body": "Første afsnit.\n\nAndet afsnit med <script>alert(1)</script>.",
            "link": "fredericia.dk/cafe",
            "image_object": upload,
            "ambassador_id": signed["ambassador"]["id"],
        },
    )
    assert item["image"]["width"] == 1200 and item["ambassador_name"] == "Ambassadør Offentlig"
    draft = await newsletter.request(Endpoints.DRAFT.subject, {})
    assert draft["items"] == 1 and draft["sections"]["new_ambassadors"] >= 1
    preview = await newsletter.request(Endpoints.PREVIEW.subject, {"issue_id": draft["id"]})
    assert "Ny café for alle" in preview["html"] and "<script>" not in preview["html"]
    assert preview["images"][0]["path"] in preview["html"]
    picture = preview["images"][0]["object_name"]
    # Not public before the issue is sent.
    with pytest.raises(ServiceError) as unsent:
        await newsletter.request(Endpoints.ARCHIVE_IMAGE.subject, {"name": picture})
    assert unsent.value.code == ErrorCode.NOT_FOUND

    sent = await jobs.report(newsletter.request, Endpoints.SEND, {"issue_id": draft["id"]})

    async def is_sent() -> Document | None:
        archive = await newsletter.request(Endpoints.ARCHIVE.subject, {})
        return archive if archive["issues"] else None

    archive = await eventually(is_sent, timeout=30.0, what="the issue to be sent")
    assert archive["issues"][0]["number"] == sent["number"]
    issue_mails = await newsletter.mails_to(reader, count=2)
    issue_mail = issue_mails[-1]
    assert "Ny café for alle" in text_of(issue_mail)
    assert unsubscribe_token(issue_mail)
    one = await newsletter.request(Endpoints.ARCHIVE.subject, {"number": sent["number"]})
    assert reader not in one["issue"]["html"] and "unsubscribe/" not in one["issue"]["html"]
    # Its picture, as the web version shows it: the cleaned JPEG, whole, without metadata.
    shown = ArchiveImage.model_validate(
        await newsletter.request(Endpoints.ARCHIVE_IMAGE.subject, {"name": picture})
    )
    assert (shown.content_type, shown.size, len(shown.data)) == (
        "image/jpeg",
        item["image"]["size"],
        item["image"]["size"],
    )
    assert shown.digest == hashlib.sha256(shown.data).hexdigest()
    with Image.open(io.BytesIO(shown.data)) as decoded:
        assert decoded.size == (1200, 600) and not decoded.getexif()
