"""The website answers ``web.health`` on NATS as every service does, so ``samskab health``
lists it beside them. It answers from the process that serves the pages, over the same
connection the pages use: an answer means the process is up and can reach the services."""

from __future__ import annotations

import time

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from contracts.operations import Health, health_subject
from services.runtime.rpc import encode_result
from services.runtime.version import VERSION
from web.settings import WEB_USER


async def answer_health(nc: Client) -> Subscription:
    """Subscribe; the caller unsubscribes (or closes the connection) when the site stops."""
    started = time.time()

    async def reply(msg: Msg) -> None:
        if not msg.reply:
            return
        answer = Health(
            service=WEB_USER,
            status="ok",
            uptime_seconds=round(time.time() - started, 1),
            version=VERSION,
        )
        await msg.respond(encode_result(answer))

    # A queue group: two website processes behind one proxy answer once between them.
    return await nc.subscribe(health_subject(WEB_USER), queue=WEB_USER, cb=reply)
