"""Every request gets an answer (services/runtime/rpc.py): a body over the limits is refused
unread, and whatever the parser or a validator chokes on is ``validation_failed``, never
silence or an internal error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import field_validator

from contracts.ambassadors import SignUp
from contracts.envelope import Message
from services.runtime.rpc import MAX_BODY_BYTES, MAX_DEPTH, MAX_DIGITS, answer, refusal

DEEP = b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
LONG_NUMBER = b'{"limit": ' + b"9" * 5_000 + b"}"


class Fragile(Message):
    """A request whose validator assumes the type it was written for."""

    name: Any = None

    @field_validator("name")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if value is not None else None  # AttributeError on a list


async def never_called(request: Message) -> None:
    raise AssertionError("the handler must not run")


async def reply_to(body: bytes, model: type[Message] = Fragile) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(await answer(model, never_called, body))
    return reply


@pytest.mark.parametrize("body", [DEEP, LONG_NUMBER, b"x" * (MAX_BODY_BYTES + 1)])
async def test_a_body_over_the_limits_is_refused_unread(body: bytes) -> None:
    reply = await reply_to(body)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "validation_failed"
    assert reply["error"]["details"][0]["field"] == "(payload)"


def test_the_limits_look_only_at_structure_not_inside_strings() -> None:
    assert refusal(b'{"note": "' + b"[" * 100 + b"9" * 100 + b'\\" ["}') is None
    assert refusal(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is None
    assert refusal(b"[" * (MAX_DEPTH + 1)) is not None
    assert refusal(b'{"n": ' + b"1" * MAX_DIGITS + b"}") is None


@pytest.mark.parametrize("body", [b'{"name": ["x"]}', b"not json", b'{"name": "\\ud800"}'])
async def test_what_a_validator_or_the_parser_chokes_on_is_a_validation_error(
    body: bytes,
) -> None:
    reply = await reply_to(body)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "validation_failed"


@pytest.mark.parametrize("kind", [["citizen"], {"a": 1}])
async def test_a_sign_up_with_a_kind_of_the_wrong_type_names_the_kind(kind: Any) -> None:
    body = json.dumps(
        {"name": "Anna", "email": "anna@example.org", "kind": kind, "consent": True}
    ).encode()
    reply = await reply_to(body, SignUp)
    assert reply["error"]["code"] == "validation_failed"
    assert "kind" in {detail["field"] for detail in reply["error"]["details"]}
