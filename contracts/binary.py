"""Bytes inside a JSON message (a piece of a picture in a reply)."""

from __future__ import annotations

import base64
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer


def _from_base64(value: object) -> object:
    return base64.b64decode(value, validate=True) if isinstance(value, str) else value


# Bytes in Python, standard base64 in JSON (both ways: the client validates the decoded
# JSON as Python objects, where pydantic's own base64 setting does not apply).
Base64Data = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(
        lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"
    ),
]
