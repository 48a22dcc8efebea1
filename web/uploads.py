"""What a visitor sends that cannot travel in a NATS message (a story's pictures: a message
holds at most 1 MB) goes into the owning service's uploads bucket, and the command names
the object. The pages put files through :class:`Uploads`; the running site does it over
the web user's NATS connection, a test with a stand-in that keeps what it was given."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import PurePath
from typing import BinaryIO, Protocol, cast

from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from services.runtime.client import ServiceClient
from services.runtime.logging import get_logger
from web.gateway import Unavailable

log = get_logger(__name__)

_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def upload_name(filename: str | None, fallback: str = "") -> str:
    """A fresh object name, ``upload-<uuid hex><suffix>``: the visitor's file name gives
    only its suffix, and only one made of letters and digits."""
    suffix = PurePath(filename or "").suffix.lower()
    return f"upload-{uuid.uuid4().hex}{suffix if _SUFFIX.match(suffix) else fallback}"


class Uploads(Protocol):
    async def put(self, service: str, bucket: str, name: str, data: BinaryIO) -> None:
        """Put ``data`` into ``service``'s ``bucket`` as ``name``; :class:`Unavailable`
        when it cannot be done now."""
        ...


class NatsUploads:
    """Into the JetStream Object Store, as the website's NATS user (allowed to put into
    the buckets services/registry.py names for it, nothing more)."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def put(self, service: str, bucket: str, name: str, data: BinaryIO) -> None:
        try:
            store = await self._client.nc.jetstream().object_store(bucket)
            # nats-py reads anything with readinto (a spooled temporary file does) in
            # chunks, in a thread: the file is never held whole in memory here.
            await store.put(name, cast(io.BufferedIOBase, data))
        except NotFoundError:
            # The owner creates its bucket when it starts: it never has.
            log.warning("an uploads bucket is missing", bucket=bucket)
            raise Unavailable(service) from None
        except (NatsError, TimeoutError, RuntimeError) as exc:
            log.warning("an upload failed", bucket=bucket, error=type(exc).__name__)
            raise Unavailable(service) from exc
