"""A story's pictures: taken from the uploads bucket, cleaned (decoded with a pixel limit,
orientation applied, every metadata block dropped, at most 2048 px on the long side, a
JPEG under 4 MB) and kept in the pictures bucket, named by the story and their digest.
Events carry those names and digests, never the bytes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from contracts.errors import DomainValidationError, ErrorCode, FieldError, ServiceError
from contracts.social import PICTURE_CHUNK, PICTURES_BUCKET, UPLOADS_BUCKET, PicturePiece
from services.runtime import images
from services.social.settings import SocialSettings
from services.social.stories import Picture

# What Facebook takes, and what phones and cameras produce (HEIF needs a plug-in Pillow
# does not ship: phones send JPEG when they share).
FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "TIFF"})


def _refused(number: int, message: str) -> DomainValidationError:
    return DomainValidationError(
        [FieldError(field=f"pictures.{number}", message=message)],
        f"picture {number} cannot be used: {message}",
    )


class Pictures:
    def __init__(self, js_of: Callable[[], JetStreamContext], settings: SocialSettings) -> None:
        self._js_of = js_of
        self._settings = settings

    async def _bucket(self, name: str) -> ObjectStore:
        return await self._js_of().object_store(name)

    async def take(self, upload: str, *, story_id: str, number: int, alt: str | None) -> Picture:
        """The upload cleaned and kept; the upload is deleted either way."""
        s = self._settings
        uploads = await self._bucket(UPLOADS_BUCKET)
        try:
            try:
                info = await uploads.get_info(upload)
            except NotFoundError:
                raise _refused(number, "no such upload (uploads are kept for an hour)") from None
            if (info.size or 0) > s.social_upload_max_bytes:
                raise _refused(number, f"larger than {s.social_upload_max_bytes // 1_000_000} MB")
            data = bytes((await uploads.get(upload)).data or b"")
            try:
                clean = await asyncio.to_thread(
                    images.clean_image,
                    data,
                    max_bytes=s.social_upload_max_bytes,
                    max_pixels=s.social_picture_max_pixels,
                    max_width=None,
                    max_long_side=s.social_picture_long_side,
                    formats=FORMATS,
                    jpeg_only=True,
                    max_output_bytes=s.social_picture_max_bytes,
                )
            except images.ImageRejected as exc:
                raise _refused(number, str(exc)) from None
        finally:
            with contextlib.suppress(NotFoundError):
                await uploads.delete(upload)
        digest = hashlib.sha256(clean.data).hexdigest()
        name = f"{story_id}-{digest[:16]}.jpg"
        bucket = await self._bucket(PICTURES_BUCKET)
        await bucket.put(name, clean.data)
        return Picture(
            name=name,
            digest=digest,
            alt=alt,
            width=clean.width,
            height=clean.height,
            size=len(clean.data),
            content_type=clean.content_type,
        )

    async def read(self, name: str) -> bytes:
        bucket = await self._bucket(PICTURES_BUCKET)
        try:
            return bytes((await bucket.get(name)).data or b"")
        except NotFoundError:
            raise ServiceError(ErrorCode.NOT_FOUND, f"picture {name} not found") from None

    async def piece(self, picture: Picture, offset: int) -> PicturePiece:
        data = await self.read(picture.name)
        return PicturePiece(
            name=picture.name,
            content_type=picture.content_type,
            size=len(data),
            digest=picture.digest,
            offset=offset,
            data=data[offset : offset + PICTURE_CHUNK],
        )

    async def delete(self, names: list[str]) -> None:
        bucket = await self._bucket(PICTURES_BUCKET)
        for name in names:
            with contextlib.suppress(NotFoundError):
                await bucket.delete(name)
