"""kill -9 the newsletter service while a 300-member staff network is called out: after a
restart, every member has exactly one call-out mail.

The networks service and the newsletter service run as real processes on a nats-server,
SMTP sink and SecantusDB of this test's own. The 300 ambassadors are announced on the
AMBASSADORS stream as the ambassadors service would (a profile of someone active), the
staff network is created and every member accepts through their link's token; then the
network is called out (300 ``networks.v1.alerted`` in one unit of work) and the newsletter
service is killed with SIGKILL once some of the call-out mails reached the sink. After the
restart: one mail per member with the call-out's subject, none for anyone else, no
Message-ID twice (a repeat the sink dropped must be a mail the killed worker had in flight).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from pymongo import AsyncMongoClient

from contracts.ambassadors import Kind, ProfileUpdated, Status
from contracts.errors import ServiceError
from contracts.networks import (
    AlertNetwork,
    AnswerNetworkInvitation,
    CreateNetwork,
    Endpoints,
    NetworkKind,
)
from services.runtime.client import ServiceClient
from services.runtime.settings import ClientSettings
from services.runtime.tokens import NETWORK_ANSWER, Signer
from stack.mongo import MongoServer
from stack.nats import NatsServer
from stack.processes import ManagedProcess
from stack.smtp_sink import SmtpSink, read_duplicates
from tests.chaos.test_kill_newsletter import stored_copies
from tests.support.chaos import poll
from tests.support.stack import TOKEN_SECRETS, start_service

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

MEMBERS = 300
# Slow enough that the kill lands while the call-out goes out (about 10 s for 300).
NEWSLETTER_SETTINGS: dict[str, Any] = {
    "mail_send_lease_seconds": 10.0,
    "mail_rate_per_second": 30.0,
    "mail_batch_size": 20,
    "mail_concurrency": 2,
    "mail_retry_backoff_seconds": [0.5, 1.0],
    "outbox_claim_timeout_seconds": 3,
    # The call-outs it was applying when killed come again after this, not after a minute.
    "consumer_ack_wait_seconds": 10.0,
}
KILL_AT = 60
CALL_OUT = "Akut: Akutteamet – kan du hjælpe?"


@dataclass
class World:
    nats: NatsServer
    sink: SmtpSink
    mongo_url: str
    data_dir: Path
    run: str
    newsletter: ManagedProcess | None = None
    networks: ManagedProcess | None = None

    def env(self, service: str) -> dict[str, str]:
        own = NEWSLETTER_SETTINGS if service == "newsletter" else {}
        return {
            **TOKEN_SECRETS,
            "SAMSKAB_NATS_URL": self.nats.url,
            "SAMSKAB_MONGO_URL": self.mongo_url,
            "SAMSKAB_MONGO_DATABASE": f"kaos_{service}_{self.run}",
            "SAMSKAB_SMTP_HOST": self.sink.host,
            "SAMSKAB_SMTP_PORT": str(self.sink.port),
            "SAMSKAB_DATA_DIR": str(self.data_dir),
            "SAMSKAB_PUBLIC_URL": "https://samskab.test.example",
            "SAMSKAB_MAIL_MESSAGE_ID_DOMAIN": f"kaos-{self.run}.samskab.test",
            **{
                f"SAMSKAB_{k.upper()}": json.dumps(v) if isinstance(v, list) else str(v)
                for k, v in own.items()
            },
        }

    async def start(self, service: str) -> ManagedProcess:
        return await asyncio.to_thread(
            start_service,
            service,
            nats_url=self.nats.url,
            env=self.env(service),
            log_path=self.data_dir / "log" / f"{service}.log",
        )


def address(n: int) -> str:
    return f"akut-{n:03d}@example.org"


async def announce_members(world: World) -> list[str]:
    """Active ambassadors as the ambassadors service announces them."""
    ids = [f"akut-{world.run}-{n:03d}" for n in range(MEMBERS)]
    nc = await nats.connect(world.nats.url)
    try:
        js = nc.jetstream()
        for n, ambassador_id in enumerate(ids):
            event = ProfileUpdated(
                ambassador_id=ambassador_id,
                name=f"Medarbejder {n}",
                email=address(n),
                kind=Kind.MUNICIPAL_UNIT,
                organisation="Fredericia Kommune",
                public=False,
                changed=["name"],
                status=Status.ACTIVE,
            )
            await js.publish(
                event.subject,
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": str(event.event_id)},
            )
    finally:
        await nc.close()
    return ids


def call_outs(world: World) -> list[Any]:
    return [c for c in stored_copies(world.sink) if c.subject == CALL_OUT]


@pytest.fixture
async def world(
    own_nats: NatsServer, own_sink: SmtpSink, own_mongo: MongoServer, tmp_path: Path
) -> AsyncIterator[World]:
    here = World(own_nats, own_sink, own_mongo.url, tmp_path, uuid.uuid4().hex[:8])
    yield here
    for process in (here.newsletter, here.networks):
        if process is not None:
            process.stop()
            print(f"--- {process.name} log {process.log_path}\n{process.log_tail(60)}")


async def test_kill_the_newsletter_while_a_staff_network_is_called_out(world: World) -> None:
    world.networks = await world.start("networks")
    world.newsletter = await world.start("newsletter")
    ids = await announce_members(world)
    client = ServiceClient(ClientSettings(_env_file=None, nats_url=world.nats.url))
    await client.connect()
    try:
        found: list[str] = []

        async def created() -> bool:
            try:
                detail = await client.call(
                    Endpoints.CREATE,
                    CreateNetwork(kind=NetworkKind.STAFF, title="Akutteamet", members=ids),
                )
            except ServiceError as exc:
                if "not active ambassadors" in exc.error.message + str(exc.error.details):
                    return False
                raise
            found.append(detail.network.id)
            return True

        await poll("the members known to networks", created, timeout=60, interval=0.5)
        [network_id] = found
        signer = Signer(TOKEN_SECRETS["SAMSKAB_NETWORKS_TOKEN_SECRET"], NETWORK_ANSWER)
        for ambassador_id in ids:
            await client.call(
                Endpoints.ANSWER,
                AnswerNetworkInvitation(token=signer.sign(network_id, ambassador_id), accept=True),
            )

        # The invitations went out first; the call-out's mails are counted on their own.
        async def invitations_out() -> bool:
            return len(stored_copies(world.sink)) >= MEMBERS

        await poll("the invitations mailed", invitations_out, timeout=90)
        alert = await client.call(
            Endpoints.ALERT,
            AlertNetwork(network_id=network_id, message="En familie står uden bolig i aften."),
        )
        assert alert.sent_to == MEMBERS

        async def some_out() -> bool:
            return len(call_outs(world)) >= KILL_AT

        await poll(f"{KILL_AT} call-outs mailed", some_out, timeout=60, interval=0.05)
        world.newsletter.kill()
        killed_at = len(call_outs(world))
        print(f"killed with {killed_at} of {MEMBERS} call-outs in the sink")
        assert killed_at < MEMBERS, "the call-out was out before the kill: nothing was tested"
        started = time.monotonic()
        await asyncio.to_thread(world.newsletter.start)
        await asyncio.to_thread(world.newsletter.wait_ready, timeout=60, interval=0.2)

        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(world.mongo_url)
        mails = mongo[f"kaos_newsletter_{world.run}"].mails
        try:

            async def all_out() -> bool:
                pending = await mails.count_documents(
                    {"kind": "network_alert", "state": {"$in": ["queued", "sending"]}}
                )
                return len(call_outs(world)) >= MEMBERS and pending == 0

            await poll("every call-out mailed after the restart", all_out, timeout=120)
        finally:
            await mongo.close()
        print(f"the rest went out {time.monotonic() - started:.1f} s after the restart")
    finally:
        await client.close()

    copies = call_outs(world)
    per_member = Counter(to for c in copies for to in c.to)
    assert set(per_member) == {address(n) for n in range(MEMBERS)}
    assert [a for a, n in per_member.items() if n != 1] == []
    assert len({c.message_id for c in copies}) == len(copies) == MEMBERS
    dropped = read_duplicates(world.sink.mail_dir)
    assert len(dropped) <= NEWSLETTER_SETTINGS["mail_batch_size"] * 2, dropped
