"""A picture as the website serves it (a story's, an issue's): asked of its service in
pieces (a reply carries less than a NATS message holds), put together, and refused whole
if it changed while it was read."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from contracts.endpoints import Endpoint
from contracts.errors import ErrorCode, ServiceError
from web.gateway import Caller, ask

Req = TypeVar("Req", bound=BaseModel)

# What the social service answers for a picture that is not there for this asker.
NOT_THERE = (ErrorCode.NOT_FOUND, ErrorCode.INVALID_TOKEN, ErrorCode.VALIDATION_FAILED)


class Piece(Protocol):
    """One piece of a picture (contracts.social.PicturePiece, contracts.newsletter.ArchiveImage)."""

    @property
    def content_type(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def digest(self) -> str: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True)
class Picture:
    data: bytes
    content_type: str


async def fetch(
    services: Caller,
    # Its reply is a Piece (a pydantic model: the bound a Protocol cannot also have).
    endpoint: Endpoint[Req, Any],
    query: Callable[[int], Req],
    *,
    not_there: Collection[ErrorCode] = NOT_THERE,
) -> Picture | None:
    """The picture ``query(offset)`` asks for, piece by piece; None when the service
    answers one of ``not_there`` (it is not there, or not for whoever asks)."""
    pieces: list[bytes] = []
    first: Piece | None = None
    offset = 0
    try:
        while first is None or offset < first.size:
            piece: Piece = await ask(services, endpoint, query(offset))
            if first is not None and piece.digest != first.digest:
                raise ServiceError(ErrorCode.INTERNAL, "the picture changed while it was read")
            first = first or piece
            if not piece.data:
                break
            pieces.append(piece.data)
            offset += len(piece.data)
    except ServiceError as exc:
        if exc.code in not_there:
            return None
        raise
    return Picture(b"".join(pieces), first.content_type)
