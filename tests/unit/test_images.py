"""Uploaded images: decoded, limited, re-encoded, metadata gone."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from services.runtime.images import ImageRejected, clean_image
from tests.support.pictures import GPS_IFD, opened, photo

MAX = 3_000_000


def test_exif_with_the_gps_position_is_stripped() -> None:
    original = photo()
    assert opened(original).getexif().get_ifd(GPS_IFD)  # the test photo does carry it
    clean = clean_image(original, max_bytes=MAX)
    result = opened(clean.data)
    assert result.format == "JPEG" and clean.content_type == "image/jpeg"
    assert not result.getexif()
    assert b"SpyCam" not in clean.data and b"Exif" not in clean.data


def test_the_orientation_is_applied_before_the_exif_goes() -> None:
    clean = clean_image(photo(800, 600, orientation=6), max_bytes=MAX)  # "rotate 90°"
    assert (clean.width, clean.height) == (600, 800)


def test_a_wide_image_is_downsized_to_1200_pixels() -> None:
    clean = clean_image(photo(3000, 1500), max_bytes=MAX)
    assert (clean.width, clean.height) == (1200, 600)
    assert opened(clean.data).size == (1200, 600)


def test_transparency_is_kept_as_png() -> None:
    image = Image.new("RGBA", (50, 40), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="WEBP", lossless=True)
    clean = clean_image(out.getvalue(), max_bytes=MAX)
    assert clean.content_type == "image/png" and opened(clean.data).mode == "RGBA"


def test_an_animated_gif_becomes_its_first_frame() -> None:
    frames = [Image.new("P", (30, 20), color) for color in (1, 2, 3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    clean = clean_image(out.getvalue(), max_bytes=MAX)
    assert getattr(opened(clean.data), "n_frames", 1) == 1


def test_a_non_image_is_refused() -> None:
    with pytest.raises(ImageRejected, match="not an image"):
        clean_image(b"%PDF-1.7 not a picture at all", max_bytes=MAX)
    with pytest.raises(ImageRejected, match="empty"):
        clean_image(b"", max_bytes=MAX)


def test_a_format_we_do_not_take_is_refused() -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, format="BMP")
    with pytest.raises(ImageRejected, match="not accepted"):
        clean_image(out.getvalue(), max_bytes=MAX)


def test_a_file_over_the_size_limit_is_refused_before_decoding() -> None:
    with pytest.raises(ImageRejected, match="larger than"):
        clean_image(photo(), max_bytes=1000)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb(width: int, height: int) -> bytes:
    """A tiny PNG claiming a huge canvas of zeros: megabytes on disk, gigabytes decoded."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * 64)  # a few rows suffice
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_without_decoding_it() -> None:
    bomb = decompression_bomb(50_000, 50_000)  # 2.5 gigapixels
    assert len(bomb) < 10_000
    with pytest.raises(ImageRejected, match=r"pixels|not an image"):
        clean_image(bomb, max_bytes=MAX)
    # Under Pillow's own limit, ours still holds.
    with pytest.raises(ImageRejected, match="too many pixels"):
        clean_image(decompression_bomb(8000, 6000), max_bytes=MAX)


def test_a_truncated_image_is_refused() -> None:
    data = photo()
    with pytest.raises(ImageRejected):
        clean_image(data[: len(data) // 3], max_bytes=MAX)


def test_a_story_picture_fits_2048_pixels_on_its_long_side_as_jpeg() -> None:
    clean = clean_image(photo(1500, 4000), max_bytes=20_000_000, max_width=None, max_long_side=2048)
    assert (clean.width, clean.height) == (768, 2048)


def test_jpeg_only_flattens_transparency_onto_white() -> None:
    image = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    clean = clean_image(out.getvalue(), max_bytes=MAX, jpeg_only=True)
    result = opened(clean.data)
    assert clean.content_type == "image/jpeg" and result.mode == "RGB"
    assert result.getpixel((5, 5)) == (255, 255, 255)


def test_the_formats_refused_are_named_with_the_ones_taken() -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, format="GIF")
    with pytest.raises(ImageRejected, match="use JPEG or PNG"):
        clean_image(out.getvalue(), max_bytes=MAX, formats=frozenset({"JPEG", "PNG"}))
