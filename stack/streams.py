"""Event streams declared on behalf of a service that is not running.

A service waits at start-up until the streams it consumes exist (``Service._wait_for_stream``);
their producers declare them. Where a producer is left out on purpose (a test of the
newsletter without the events service, a benchmark of one service), whoever starts the
consumer declares the producer's stream here first, as the producer would
(``Service._ensure_own_stream``): ``<PRODUCER>`` with subjects ``<producer>.v1.>``, file
storage, the replicas, age limit and duplicate window of the settings. An existing stream is
left as it is; the real producer updates it to its own settings when it starts.
"""

from __future__ import annotations

from collections.abc import Iterable

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.runtime.client import inbox_prefix
from services.runtime.settings import ServiceSettings, nats_servers
from services.runtime.streams import stream_config

__all__ = ["NEWSLETTER_PRODUCERS", "declare_streams", "declare_streams_at", "stream_config"]

# Whose events the newsletter service consumes (and so waits for at start-up).
NEWSLETTER_PRODUCERS = ("ambassadors", "events", "networks", "social")


async def declare_streams(
    js: JetStreamContext, producers: Iterable[str], settings: ServiceSettings | None = None
) -> None:
    """Declare each producer's stream unless it exists."""
    for producer in producers:
        config = stream_config(producer, settings or ServiceSettings(_env_file=None))
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)


async def declare_streams_at(
    nats_url: str,
    producers: Iterable[str],
    settings: ServiceSettings | None = None,
    *,
    user: str | None = None,
    password: str | None = None,
) -> None:
    """:func:`declare_streams` over a connection of its own (``user``: one allowed to
    manage those streams, e.g. the producer's own under the shipped permissions, which
    also let it read replies only on its own inbox prefix)."""
    if user is None:
        nc = await nats.connect(nats_servers(nats_url))
    else:
        nc = await nats.connect(
            nats_servers(nats_url), user=user, password=password, inbox_prefix=inbox_prefix(user)
        )
    try:
        await declare_streams(nc.jetstream(), producers, settings)
    finally:
        await nc.close()
