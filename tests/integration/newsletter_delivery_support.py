"""Helpers for the delivery tests: a scriptable aiosmtpd server, mails, a materialize().

The scripted server runs in the test's event loop on a free port. It answers RCPT with
whatever the test scripted per address (then 250), can hold DATA a while (to make
concurrency visible), can close a connection after some messages (as servers do), and
counts connections open at once.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from services.newsletter.delivery import batches, store
from services.newsletter.delivery.states import MailRecord, MaterializedMail, new_mail
from services.newsletter.settings import NewsletterSettings
from services.runtime.mongo import DatabaseT, connect
from stack.processes import free_port
from tests.support.stack import settings_of

SENDER = "ambassadoer@fredericia.example"
DOMAIN = "samskab.test.example"


def settings_for(mongo_url: str, host: str, port: int, **overrides: Any) -> NewsletterSettings:
    values: dict[str, Any] = {
        "mongo_url": mongo_url,
        "smtp_host": host,
        "smtp_port": port,
        "smtp_timeout_seconds": 10.0,
        "mail_message_id_domain": DOMAIN,
        "mail_concurrency": 4,
        "mail_batch_size": 50,
        "mail_send_lease_seconds": 30.0,
        "mail_retry_backoff_seconds": [0.1],
        "mail_max_attempts": 5,
    }
    values.update(overrides)
    return settings_of(NewsletterSettings, **values)


def mails(
    run: str, count: int, *, kind: str = "issue", now: datetime | None = None
) -> list[MailRecord]:
    return [
        new_mail(
            kind=kind,
            dedupe_key=f"{kind}:{run}:{i}",
            to_address=f"modtager-{run}-{i}@example.org",
            to_name=f"Modtager {i}",
            subscriber_id=f"sub-{run}-{i}",
            issue_id=f"issue-{run}",
            message_id_domain=DOMAIN,
            now=now,
        )
        for i in range(count)
    ]


def materialize(record: MailRecord) -> MaterializedMail:
    """What H3's materialize does in miniature: the record's Message-ID on the message."""
    assert record.to_address is not None
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = record.to_address
    message["Subject"] = f"Nyhedsbrev {record.id}"
    message["Message-ID"] = record.message_id
    message.set_content("Hej og velkommen.\n")
    return MaterializedMail(
        message=message.as_bytes(policy=email.policy.SMTP),
        sender=SENDER,
        recipients=[record.to_address],
    )


class ScriptedHandler:
    def __init__(self) -> None:
        # address -> the replies its next RCPTs get, in order; then 250.
        self.rcpt_script: dict[str, list[str]] = {}
        self.rcpt_calls: Counter[str] = Counter()
        self.received: list[EmailMessage] = []
        self.data_delay = 0.0
        self.data_now = 0
        self.data_max = 0

    def script(self, addresses: Iterable[str], *replies: str) -> None:
        for address in addresses:
            self.rcpt_script[address] = list(replies)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.rcpt_calls[address] += 1
        script = self.rcpt_script.get(address)
        if script:
            reply = script.pop(0)
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_now += 1
        self.data_max = max(self.data_max, self.data_now)
        try:
            if self.data_delay:
                await asyncio.sleep(self.data_delay)
            parser = email.parser.BytesParser(_class=EmailMessage, policy=email.policy.default)
            message = parser.parsebytes(envelope.original_content or b"")
            assert isinstance(message, EmailMessage)
            self.received.append(message)
        finally:
            self.data_now -= 1
        return "250 OK"

    def message_ids(self) -> Counter[str]:
        return Counter(str(m["Message-ID"]) for m in self.received)


class ScriptedServer:
    def __init__(self, handler: ScriptedHandler, close_after: int | None = None) -> None:
        self.handler = handler
        self.close_after = close_after
        self.host = "127.0.0.1"
        self.port = free_port()
        self.open_now = 0
        self.open_max = 0
        self.connections = 0


def _protocol(server: ScriptedServer) -> SMTP:
    class Counting(SMTP):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            server.connections += 1
            server.open_now += 1
            server.open_max = max(server.open_max, server.open_now)
            self.messages_here = 0
            super().connection_made(transport)

        def connection_lost(self, error: Exception | None) -> None:
            server.open_now -= 1
            super().connection_lost(error)

        async def smtp_DATA(self, arg: str) -> None:
            await super().smtp_DATA(arg)
            self.messages_here += 1
            if server.close_after and self.messages_here >= server.close_after:
                # What servers with a per-connection message limit do.
                assert self.transport is not None
                self.transport.close()

    return Counting(server.handler, hostname="scripted-smtp")


@asynccontextmanager
async def scripted_smtp(close_after: int | None = None) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(ScriptedHandler(), close_after)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: _protocol(server), server.host, server.port)
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


def run_id() -> str:
    return uuid.uuid4().hex[:8]


@asynccontextmanager
async def delivery_database(mongo_url: str, name: str) -> AsyncIterator[DatabaseT]:
    """A fresh database with the delivery collections' indexes, dropped afterwards."""
    client = connect(mongo_url, f"test-{name}")
    database = client[f"{name.replace('-', '_')}_{run_id()}"]
    await store.ensure_mail_indexes(database)
    await batches.ensure_batch_indexes(database)
    try:
        yield database
    finally:
        await client.drop_database(database.name)
        await client.close()
