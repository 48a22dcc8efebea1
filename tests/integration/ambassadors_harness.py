"""Driving a real ``python -m services.ambassadors`` process from integration tests.

Every start gets its own MongoDB database on the session's SecantusDB, so tests never see
each other's ambassadors. The ``AMBASSADORS`` stream and the ``certificates`` bucket are
shared by the whole session: a harness remembers the stream sequence at which its test
began and reads only from there, and tests filter by the ambassador ids they created.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError, ObjectNotFoundError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pypdf import PdfReader

from contracts.ambassadors import STREAM, Endpoints
from services.runtime.client import ServiceClient
from services.runtime.tokens import AMBASSADOR_CONFIRMATION, Signer, expiry
from stack.processes import ManagedProcess
from tests.support.stack import TOKEN_SECRETS

Document = dict[str, Any]

# The service's default bucket (AmbassadorsSettings.certificate_bucket); tests keep it.
CERTIFICATE_BUCKET = "certificates"
# Generous: two replicas, their certificate renderers and the servers share two busy cores,
# and these tests are about what happens, not how fast.
REQUEST_TIMEOUT = 30.0


def unique_email(label: str = "amb") -> str:
    return f"{label}.{uuid.uuid4().hex[:10]}@example.org"


def sign_up_payload(**overrides: Any) -> dict[str, Any]:
    """A valid self sign-up of a citizen; keyword arguments replace or add fields."""
    payload: dict[str, Any] = {
        "name": f"Testperson {uuid.uuid4().hex[:6]}",
        "email": unique_email(),
        "kind": "citizen",
        "consent": True,
    }
    payload.update(overrides)
    return payload


async def eventually(
    probe: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 15.0,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {last!r}")
        await asyncio.sleep(interval)


def confirmation_token(signed_up: Mapping[str, Any]) -> str:
    """The token of the confirmation link, as the newsletter service signs it into the mail
    from what ``signed_up`` carries (the stream itself carries none)."""
    assert "confirmation_token" not in signed_up, "a usable token travelled on the stream"
    expires = datetime.fromisoformat(signed_up["token_expires_at"])
    signer = Signer(TOKEN_SECRETS["SAMSKAB_AMBASSADORS_TOKEN_SECRET"], AMBASSADOR_CONFIRMATION)
    return signer.sign(signed_up["ambassador_id"], signed_up["confirmation_nonce"], expiry(expires))


def object_store_digest(data: bytes) -> str:
    """How the JetStream Object Store writes a SHA-256 digest."""
    return "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


def pdf_text(pdf: bytes) -> str:
    """All text of a PDF, whitespace removed: pypdf breaks lines wherever the layout did."""
    assert pdf.startswith(b"%PDF-"), pdf[:20]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return squash(text)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", text))


@dataclass(frozen=True)
class StreamEvent:
    seq: int
    subject: str
    headers: Mapping[str, str]
    data: Document

    @property
    def name(self) -> str:
        """``ambassadors.v1.signed_up`` -> ``signed_up``."""
        return self.subject.rsplit(".", 1)[-1]

    @property
    def ambassador_id(self) -> str | None:
        value = self.data.get("ambassador_id")
        return str(value) if value is not None else None


async def stream_last_seq(js: JetStreamContext) -> int:
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        return 0
    return int(info.state.last_seq)


@dataclass
class Ambassadors:
    """One started ambassadors service (or several replicas on one database) and its clients."""

    processes: list[ManagedProcess]
    database: str
    client: ServiceClient
    nc: NatsClient
    mongo: AsyncMongoClient[Document]
    first_seq: int
    _read: list[StreamEvent] = field(default_factory=list)
    _next_seq: int = 0

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    @property
    def db(self) -> AsyncDatabase[Document]:
        return self.mongo[self.database]

    async def request(self, subject: str, payload: Mapping[str, Any] | None = None) -> Any:
        return await self.client.request(subject, dict(payload or {}))

    async def sign_up(self, *, staff: bool = False, **fields: Any) -> Document:
        """Sign up (``sign_up_payload`` defaults); returns ``{"ambassador": view}``.

        ``staff``: staff enter the person (``register``), active at once, and the answer is
        the ``SignUpResult``. Otherwise the person signs up themselves: the answer is the
        same for every address, so the ambassador is then looked up as staff would."""
        payload = sign_up_payload(**fields)
        if staff:
            result: Document = await self.request(Endpoints.REGISTER.subject, payload)
            return result
        received = await self.request(Endpoints.SIGN_UP.subject, payload)
        assert received == {"received": True}, received
        return {"ambassador": await self.by_email(payload["email"])}

    async def by_email(self, email: str) -> Document:
        """The ambassador with this address, from the staff list (this test's database)."""
        page = await self.request(Endpoints.LIST.subject, {"limit": 500})
        found = [a for a in page["items"] if (a.get("email") or "").casefold() == email.casefold()]
        assert len(found) == 1, f"{email}: {found}"
        ambassador: Document = found[0]
        return ambassador

    async def show(self, ambassador_id: str) -> Document:
        result: Document = await self.request(
            Endpoints.SHOW.subject, {"ambassador_id": ambassador_id}
        )
        return result

    # -------------------------------------------------------------- the AMBASSADORS stream

    async def events(
        self, ambassador_ids: Iterable[str] | None = None, name: str | None = None
    ) -> list[StreamEvent]:
        """Events on the stream since this harness started, optionally filtered."""
        if not self._next_seq:
            self._next_seq = self.first_seq
        last = await stream_last_seq(self.js)
        while self._next_seq <= last:
            try:
                msg = await self.js.get_msg(STREAM, self._next_seq)
            except NotFoundError:
                self._next_seq += 1
                continue
            assert msg.subject is not None
            self._read.append(
                StreamEvent(
                    seq=self._next_seq,
                    subject=msg.subject,
                    headers=dict(msg.headers or {}),
                    data=json.loads(msg.data or b"{}"),
                )
            )
            self._next_seq += 1
        ids = set(ambassador_ids) if ambassador_ids is not None else None
        return [
            e
            for e in self._read
            if (ids is None or e.ambassador_id in ids) and (name is None or e.name == name)
        ]

    async def on_stream(self, event: StreamEvent) -> bool:
        """Whether ``event`` is still stored in the stream (erasure deletes events)."""
        try:
            await self.js.get_msg(STREAM, event.seq)
        except NotFoundError:
            return False
        return True

    async def wait_for_events(
        self,
        ambassador_ids: Iterable[str] | None = None,
        name: str | None = None,
        *,
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[StreamEvent]:
        """At least ``count`` matching events, polled until ``timeout``."""
        ids = list(ambassador_ids) if ambassador_ids is not None else None

        async def probe() -> list[StreamEvent] | None:
            found = await self.events(ids, name)
            return found if len(found) >= count else None

        found: list[StreamEvent] = await eventually(
            probe, timeout=timeout, what=f"{count} × {name or 'any'} event(s) for {ids}"
        )
        return found

    async def raw_request(self, subject: str, payload: Mapping[str, Any] | None = None) -> bytes:
        """The reply exactly as it crosses the wire (for checks on the raw JSON)."""
        data = json.dumps(dict(payload or {})).encode()
        msg = await self.nc.request(subject, data, timeout=REQUEST_TIMEOUT)
        return bytes(msg.data)

    # -------------------------------------------------------------- the certificates bucket

    async def certificate_object(self, object_name: str) -> tuple[bytes, str]:
        """The PDF in the ``certificates`` bucket and the digest the Object Store reports."""
        bucket = await self.js.object_store(CERTIFICATE_BUCKET)
        result = await bucket.get(object_name)
        assert result.data is not None and result.info.digest is not None
        return bytes(result.data), str(result.info.digest)

    async def certificate_gone(self, object_name: str, timeout: float = 15.0) -> None:
        bucket = await self.js.object_store(CERTIFICATE_BUCKET)

        async def probe() -> bool:
            try:
                await bucket.get_info(object_name)
            except ObjectNotFoundError:
                return True
            return False

        await eventually(probe, timeout=timeout, what=f"{object_name} to leave the bucket")

    async def outbox_drained(self, timeout: float = 15.0) -> None:
        """Every outbox entry of this database is published."""

        async def probe() -> bool:
            return await self.db.outbox.count_documents({}) == 0

        await eventually(probe, timeout=timeout, what="the outbox relay to publish everything")


class AmbassadorsFactory(Protocol):
    def __call__(
        self,
        extra_env: Mapping[str, str] | None = None,
        *,
        database: str | None = None,
        replicas: int = 1,
    ) -> Awaitable[Ambassadors]: ...


def service_env(database: str, extra_env: Mapping[str, str] | None) -> dict[str, str]:
    return {
        "SAMSKAB_MONGO_DATABASE": database,
        "SAMSKAB_DEMO_IMPORT": "false",
        "SAMSKAB_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }


def wait_for_log(process: ManagedProcess, text: str, timeout: float = 30.0) -> None:
    """A replica's own log says ``text`` (health answers may come from another replica)."""
    deadline = time.monotonic() + timeout
    while text not in process.log_path.read_text(errors="replace"):
        if not process.running:
            raise AssertionError(f"{process.name} exited:\n{process.log_tail()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"{process.name} never logged {text!r}:\n{process.log_tail()}")
        time.sleep(0.1)
