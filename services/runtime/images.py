"""Uploaded images, made safe to mail and publish: decoded, limited, re-encoded.

One pipeline for every service that takes pictures (a news item's image, a story's
pictures); each says what it needs (formats, size, JPEG only) through the arguments.

Nothing of the uploaded file survives but its pixels: a re-encode drops EXIF (GPS position,
camera serial), comments and any payload hidden behind the image data. The size and pixel
limits are checked before the pixels are decoded, so a small file that would unpack into
gigabytes (a decompression bomb) is refused without being unpacked.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# What we accept: what phones and cameras produce, and what mail clients show.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
_FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "TIFF": "TIFF"}
# 40 megapixels: more than any phone photo; decoded as RGBA that is 160 MB, an upper bound
# the service can afford.
MAX_PIXELS = 40_000_000
# Mail layouts are ~600 px wide; twice that stays sharp on high-density screens.
MAX_WIDTH = 1200
JPEG_QUALITY = 85


_STRICT = threading.Lock()


@contextmanager
def _strict_decoding() -> Iterator[None]:
    """Refuse truncated data while decoding here.

    WeasyPrint switches Pillow's process-wide LOAD_TRUNCATED_IMAGES on when it is imported
    (as in a test run that also renders certificates); a truncated upload would then be
    padded with grey instead of refused.
    """
    with _STRICT:
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


class ImageRejected(ValueError):
    """The upload is not an image we take; the message says why, for the person."""


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def _has_transparency(image: Image.Image) -> bool:
    if image.mode in ("RGBA", "LA", "PA"):
        return True
    return image.mode == "P" and "transparency" in image.info


def _accepted(formats: frozenset[str]) -> str:
    names = [_FORMAT_NAMES.get(f, f) for f in sorted(formats)]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def _fitted(image: Image.Image, max_width: int | None, max_long_side: int | None) -> Image.Image:
    scale = 1.0
    if max_width is not None and image.width > max_width:
        scale = max_width / image.width
    if max_long_side is not None and max(image.size) * scale > max_long_side:
        scale = max_long_side / max(image.size)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _flattened(image: Image.Image) -> Image.Image:
    """On white, as a page shows a transparent picture."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def clean_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int = MAX_PIXELS,
    max_width: int | None = MAX_WIDTH,
    max_long_side: int | None = None,
    formats: frozenset[str] = ACCEPTED_FORMATS,
    jpeg_only: bool = False,
    max_output_bytes: int | None = None,
) -> CleanImage:
    """Decode ``data``, check it, and return it re-encoded: JPEG, or PNG where transparent
    (``jpeg_only``: transparency is flattened onto white). ``max_width`` and
    ``max_long_side`` bound the result; ``max_output_bytes`` lowers the JPEG quality until
    the result fits."""
    if not data:
        raise ImageRejected("the file is empty")
    if len(data) > max_bytes:
        raise ImageRejected(f"the image is larger than {max_bytes // 1_000_000} MB")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, on its own global limit; ours is checked below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.format not in formats:
                    raise ImageRejected(
                        f"{opened.format or 'this'} images are not accepted; "
                        f"use {_accepted(formats)}"
                    )
                width, height = opened.size
                if width < 1 or height < 1 or width * height > max_pixels:
                    raise ImageRejected(
                        f"the image has too many pixels ({width} x {height}); "
                        f"at most {max_pixels // 1_000_000} megapixels"
                    )
                # An animated GIF or WebP becomes its first frame.
                opened.seek(0)
                with _strict_decoding():
                    opened.load()
                # Phones store "rotate me" in EXIF instead of rotating the pixels; the
                # EXIF goes, so the rotation is applied first.
                image = ImageOps.exif_transpose(opened)
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("the file is not an image we can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated or corrupt data surfaces here, from whichever decoder was at work.
        raise ImageRejected(f"the image is damaged: {exc}") from None
    image = _fitted(image, max_width, max_long_side)
    transparent = _has_transparency(image)
    if transparent and jpeg_only:
        image, transparent = _flattened(image), False
    image = image.convert("RGBA" if transparent else "RGB")
    # A fresh info dict: nothing of the original's metadata (EXIF, XMP, ICC, comments) may
    # ride along into save().
    image.info = {}
    if transparent:
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return CleanImage(out.getvalue(), "image/png", "png", image.width, image.height)
    for quality in (JPEG_QUALITY, 75, 65, 50):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality, optimize=True, progressive=True)
        if max_output_bytes is None or out.tell() <= max_output_bytes:
            return CleanImage(out.getvalue(), "image/jpeg", "jpg", image.width, image.height)
    raise ImageRejected(f"the image stays larger than {max_output_bytes} bytes as JPEG")
