"""Many active ambassadors, announced on the bus without the ambassadors service.

Why not ``samskab ambassadors sign-up --staff`` for each? Every sign-up is a transaction, a
certificate rendered with WeasyPrint and a PDF put in the Object Store: hundreds of them
take minutes. What the consumers (events, newsletter) see of an activation is one
``ambassadors.v1.activated`` event on the ``AMBASSADORS`` stream, so this publishes exactly
that, as the ambassadors service's outbox relay would: the stream declared as the service
declares it (``stack.streams``), one :class:`contracts.ambassadors.Activated` per person,
its JSON as the payload and ``Nats-Msg-Id = event_id``. Every certificate reference names
one small PDF put once in the ``certificates`` bucket, so welcome mails can attach it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import nats
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import NotFoundError
from pypdf import PdfWriter

from contracts.ambassadors import Activated, CertificateRef, Kind, certificate_object_name
from services.ambassadors.settings import AmbassadorsSettings
from stack.streams import declare_streams
from tests.support.stack import settings_of

__all__ = ["SeededAmbassador", "ambassador_address", "publish_active_ambassadors", "tiny_pdf"]


@dataclass(frozen=True)
class SeededAmbassador:
    id: str
    email: str
    name: str
    event_id: str


def ambassador_address(run: str, index: int) -> str:
    return f"amb-{run}-{index:04d}@example.org"


def tiny_pdf() -> bytes:
    """A valid one-page PDF of a few hundred bytes."""
    writer = PdfWriter()
    writer.add_blank_page(width=72, height=72)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def _put_certificates(js: JetStreamContext, bucket: str, events: list[Activated]) -> None:
    """Each ambassador's own PDF under the name its certificate has: the newsletter attaches
    only the certificate that belongs to the ambassador it welcomes."""
    try:
        store = await js.object_store(bucket)
    except NotFoundError:
        store = await js.create_object_store(
            bucket, config=ObjectStoreConfig(storage=StorageType.FILE)
        )
    pdf = tiny_pdf()
    for event in events:
        await store.put(event.certificate.object_name, pdf)


def _activated(run: str, index: int, bucket: str) -> Activated:
    return Activated(
        ambassador_id=f"amb-{run}-{index:04d}",
        name=f"Ambassadør {index} Æblegård",
        email=ambassador_address(run, index),
        kind=Kind.CITIZEN,
        public=False,
        certificate=CertificateRef(
            number=f"K-{index:05d}",
            verification_code=f"kaos{run}{index:05d}",
            bucket=bucket,
            object_name=certificate_object_name(f"amb-{run}-{index:04d}", f"K-{index:05d}"),
        ),
    )


async def publish_active_ambassadors(
    nats_url: str, run: str, count: int, settings: AmbassadorsSettings | None = None
) -> list[SeededAmbassador]:
    """``count`` activated ambassadors ``amb-<run>-<i>``, their events acked by the stream."""
    settings = settings or settings_of(AmbassadorsSettings)
    bucket = settings.certificate_bucket
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await declare_streams(js, ["ambassadors"], settings)
        events = [_activated(run, i, bucket) for i in range(count)]
        await _put_certificates(js, bucket, events)
        for event in events:
            ack = await js.publish(
                event.subject,
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
            assert not ack.duplicate, f"{event.event_id} published twice"
        return [
            SeededAmbassador(
                id=e.ambassador_id, email=e.email, name=e.name, event_id=str(e.event_id)
            )
            for e in events
        ]
    finally:
        await nc.close()
