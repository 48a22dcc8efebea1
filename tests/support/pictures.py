"""Pictures for tests: a phone photo carrying EXIF with a GPS position."""

from __future__ import annotations

import io

from PIL import Image

GPS_IFD = 0x8825


def photo(
    width: int = 800,
    height: int = 600,
    *,
    orientation: int | None = None,
    color: tuple[int, int, int] = (200, 40, 40),
) -> bytes:
    """A JPEG with EXIF: a GPS position, a camera make, optionally an orientation."""
    image = Image.new("RGB", (width, height), color)
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[GPS_IFD] = {1: "N", 2: (55.0, 33.0, 0.0), 3: "E", 4: (9.0, 45.0, 0.0)}
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=b"taken at home")
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))
