"""A story's picture as the website serves it: asked of the social service in pieces (a
reply carries at most :data:`contracts.social.PICTURE_CHUNK` bytes), put together, and
refused whole if it changed while it was read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from contracts.social import PicturePiece
from web.gateway import Caller, ask

Req = TypeVar("Req", bound=BaseModel)

# What the service answers for a picture that is not there for this asker.
NOT_THERE = (ErrorCode.NOT_FOUND, ErrorCode.INVALID_TOKEN, ErrorCode.VALIDATION_FAILED)


@dataclass(frozen=True)
class Picture:
    data: bytes
    content_type: str


async def fetch(
    services: Caller, endpoint: Endpoint[Req, PicturePiece], query: Callable[[int], Req]
) -> Picture | None:
    """The picture ``query(offset)`` asks for, piece by piece; None when it is not there
    (or not for whoever asks)."""
    pieces: list[bytes] = []
    first: PicturePiece | None = None
    offset = 0
    try:
        while first is None or offset < first.size:
            piece = await ask(services, endpoint, query(offset))
            if first is not None and piece.digest != first.digest:
                raise ServiceError(ErrorCode.INTERNAL, "the picture changed while it was read")
            first = first or piece
            if not piece.data:
                break
            pieces.append(piece.data)
            offset += len(piece.data)
    except ServiceError as exc:
        if exc.code in NOT_THERE:
            return None
        raise
    return Picture(b"".join(pieces), first.content_type)
