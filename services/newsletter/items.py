"""News items for the next issue: added (with an image from the uploads bucket, cleaned and
kept in the images bucket), listed, removed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid

from nats.js.errors import NotFoundError

from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.newsletter import (
    IMAGES_BUCKET,
    UPLOADS_BUCKET,
    AddItem,
    ItemPage,
    ItemView,
    ListItems,
    RemoveItem,
)
from services.newsletter import domain, store
from services.newsletter.context import Context
from services.newsletter.domain import Item, StoredImage
from services.newsletter.views import item_view
from services.runtime import images
from services.runtime.unit_of_work import Reading, UnitOfWork


def _image_error(message: str) -> ServiceError:
    return ServiceError(
        ErrorCode.VALIDATION_FAILED,
        f"the image cannot be used: {message}",
        [FieldError(field="image_object", message=message)],
    )


async def _take_upload(ctx: Context, object_name: str, item_id: str) -> StoredImage:
    """Read an upload, clean it, keep the clean copy; the upload is deleted either way."""
    js = ctx.service.js
    max_bytes = ctx.settings.newsletter_image_max_bytes
    uploads = await js.object_store(UPLOADS_BUCKET)
    try:
        try:
            info = await uploads.get_info(object_name)
        except NotFoundError:
            raise _image_error("no such upload (uploads are kept for an hour)") from None
        if (info.size or 0) > max_bytes:
            raise _image_error(f"larger than {max_bytes // 1_000_000} MB")
        data = bytes((await uploads.get(object_name)).data or b"")
        try:
            clean = await asyncio.to_thread(images.clean_image, data, max_bytes=max_bytes)
        except images.ImageRejected as exc:
            raise _image_error(str(exc)) from None
    finally:
        with contextlib.suppress(NotFoundError):
            await uploads.delete(object_name)
    bucket = await js.object_store(IMAGES_BUCKET)
    stored_name = f"{item_id}.{clean.extension}"
    info = await bucket.put(stored_name, clean.data)
    return StoredImage(
        bucket=IMAGES_BUCKET,
        object_name=stored_name,
        content_type=clean.content_type,
        width=clean.width,
        height=clean.height,
        size=info.size or len(clean.data),
    )


async def delete_image(ctx: Context, image: StoredImage) -> None:
    bucket = await ctx.service.js.object_store(image.bucket)
    with contextlib.suppress(NotFoundError):
        await bucket.delete(image.object_name)


async def add_item(ctx: Context, cmd: AddItem) -> ItemView:
    """Checked first, then the image is cleaned (outside any transaction: it is slow and
    deletes the upload), then the item is stored; an item that is not stored leaves no
    image behind."""
    ambassador_name = None
    if cmd.ambassador_id is not None:
        known = await ctx.ambassadors.active(ctx.service.reading(), cmd.ambassador_id)
        if known is None:
            raise ServiceError(
                ErrorCode.NOT_FOUND,
                f"ambassador {cmd.ambassador_id} is not an active ambassador",
                [FieldError(field="ambassador_id", message="not an active ambassador")],
            )
        # Named in the issue only if listed publicly: the issue is public (the archive).
        ambassador_name = known.display_name if known.public else None
    item_id = uuid.uuid4().hex
    # Checked before the image is processed: a typo costs no upload.
    item = domain.new_item(
        item_id=item_id,
        title=cmd.title,
        body=cmd.body,
        link=cmd.link,
        image=None,
        ambassador_id=cmd.ambassador_id,
        ambassador_name=ambassador_name,
        now=ctx.service.clock(),
    )
    if cmd.image_object:
        item = item.model_copy(update={"image": await _take_upload(ctx, cmd.image_object, item_id)})
    try:
        await ctx.service.run(functools.partial(_store_item, item=item), name="adding an item")
    except BaseException:
        if item.image is not None:
            await delete_image(ctx, item.image)
        raise
    return item_view(item)


async def _store_item(uow: UnitOfWork, item: Item) -> None:
    await store.insert_item(uow, item)
    uow.about(item.id)


async def list_items(ctx: Context, scope: Reading, query: ListItems) -> ItemPage:
    total, found = await store.item_page(
        scope, unused=query.unused, limit=query.limit, offset=query.offset
    )
    return ItemPage(total=total, items=[item_view(i) for i in found])


async def remove_item(ctx: Context, uow: UnitOfWork, cmd: RemoveItem) -> ItemView:
    item = await store.load_item(uow, cmd.item_id)
    if item is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"item {cmd.item_id} not found")
    domain.check_removable(item)
    await store.delete_item(uow, item.id)
    if item.image is not None:
        uow.after_commit(functools.partial(delete_image, ctx, item.image))
    return item_view(item)
