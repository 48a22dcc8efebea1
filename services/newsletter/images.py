"""Uploaded images, made safe to mail and publish: decoded, limited, re-encoded.

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


def clean_image(
    data: bytes, *, max_bytes: int, max_pixels: int = MAX_PIXELS, max_width: int = MAX_WIDTH
) -> CleanImage:
    """Decode ``data``, check it, and return it re-encoded (JPEG, or PNG where transparent)."""
    if not data:
        raise ImageRejected("the file is empty")
    if len(data) > max_bytes:
        raise ImageRejected(f"the image is larger than {max_bytes // 1_000_000} MB")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, on its own global limit; ours is checked below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.format not in ACCEPTED_FORMATS:
                    raise ImageRejected(
                        f"{opened.format or 'this'} images are not accepted; "
                        "use JPEG, PNG, WebP or GIF"
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
    if image.width > max_width:
        image = image.resize(
            (max_width, max(1, round(image.height * max_width / image.width))),
            Image.Resampling.LANCZOS,
        )
    transparent = _has_transparency(image)
    image = image.convert("RGBA" if transparent else "RGB")
    # A fresh info dict: nothing of the original's metadata may ride along into save().
    image.info = {}
    out = io.BytesIO()
    if transparent:
        image.save(out, format="PNG", optimize=True)
        return CleanImage(out.getvalue(), "image/png", "png", image.width, image.height)
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return CleanImage(out.getvalue(), "image/jpeg", "jpg", image.width, image.height)
