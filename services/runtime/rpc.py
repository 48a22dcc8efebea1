"""Request/reply on core NATS: the service side turns bytes into a typed command and a
result or a structured error back into bytes.

Whatever arrives gets an answer. faststream's own decoder is not used (:func:`undecoded`):
it parses JSON before any code of ours runs, and a body it chokes on (nested 10,000 deep, a
number of 5,000 digits) left the caller waiting out its time-out. Here a body over the
limits is refused before it is parsed (:func:`refusal`), and whatever the parser or a
validator then chokes on is ``validation_failed`` too, with one log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pymongo.errors import ConnectionFailure

from contracts.envelope import MAX_MESSAGE_BYTES
from contracts.errors import Error, ErrorCode, FieldError, Reply, ServiceError
from services.runtime.logging import get_logger

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
Result = BaseModel | dict[str, Any] | list[Any] | None
RequestHandler = Callable[[M], Awaitable[Result]]

# What a request or an event may be, checked on the bytes. The largest real requests (an
# import of a few thousand rows) are far below the size; no message of ours nests deeper
# than a few levels or holds a number longer than a timestamp in microseconds.
MAX_BODY_BYTES = MAX_MESSAGE_BYTES
MAX_DEPTH = 32
MAX_DIGITS = 40

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_LONG_NUMBER = re.compile(rb"[0-9]{%d,}" % (MAX_DIGITS + 1))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


async def undecoded(msg: Any) -> bytes:
    """The decoder our subscribers use: the body as it came, for our models to parse."""
    return bytes(msg.body)


def refusal(body: bytes) -> str | None:
    """Why ``body`` is refused unread (too large, too deep, too long a number); None if not."""
    if len(body) > MAX_BODY_BYTES:
        return f"the message is larger than {MAX_BODY_BYTES} bytes"
    # Strings hold anything (brackets, digits); only the structure around them counts.
    bare = _STRING.sub(b'""', body)
    if _LONG_NUMBER.search(bare):
        return f"a number has more than {MAX_DIGITS} digits"
    depth = 0
    for byte in bare.translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPENING else -1
        if depth > MAX_DEPTH:
            return f"the message nests deeper than {MAX_DEPTH} levels"
    return None


def _invalid(reason: str) -> bytes:
    return encode_error(
        Error(
            code=ErrorCode.VALIDATION_FAILED,
            message="the request is not valid",
            details=[FieldError(field="(payload)", message=reason)],
        )
    )


def field_errors(exc: ValidationError) -> list[FieldError]:
    details = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "(payload)"
        details.append(FieldError(field=field, message=err["msg"]))
    return details


def encode_result(result: Result) -> bytes:
    if isinstance(result, BaseModel):
        payload: Any = result.model_dump(mode="json")
    else:
        payload = result
    return Reply(ok=True, result=payload).model_dump_json(exclude_none=True).encode()


def encode_error(error: Error) -> bytes:
    return Reply(ok=False, error=error).model_dump_json().encode()


def error_code(exc: Exception) -> ErrorCode:
    """The code a request that raised ``exc`` is answered with (and audited under)."""
    if isinstance(exc, ServiceError):
        return exc.code
    if isinstance(exc, ValidationError):
        return ErrorCode.VALIDATION_FAILED
    if isinstance(exc, ConnectionFailure):
        return ErrorCode.SERVICE_UNAVAILABLE
    return ErrorCode.INTERNAL


async def answer(model: type[M], handler: RequestHandler[M], data: bytes) -> bytes:
    """Validate the request, run the handler, and always return a reply."""
    refused = refusal(data)
    if refused is not None:
        log.warning("request refused unread", model=model.__name__, reason=refused)
        return _invalid(refused)
    try:
        request = model.model_validate_json(data or b"{}")
    except ValidationError as exc:
        return encode_error(
            Error(
                code=ErrorCode.VALIDATION_FAILED,
                message="the request is not valid",
                details=field_errors(exc),
            )
        )
    except Exception as exc:
        # A validator meeting a value of a type it never expected (a list where a word
        # belongs): the request's fault, not the service's.
        log.warning("request could not be validated", model=model.__name__, error=repr(exc)[:300])
        return _invalid("the request could not be read")
    try:
        return encode_result(await handler(request))
    except ServiceError as exc:
        return encode_error(exc.error)
    except ValidationError as exc:
        return encode_error(
            Error(
                code=ErrorCode.VALIDATION_FAILED,
                message="the request is not valid",
                details=field_errors(exc),
            )
        )
    except ConnectionFailure as exc:
        # The database is down or unreachable: the caller may try again, nothing changed.
        log.warning("request failed: database unavailable", model=model.__name__, error=repr(exc))
        return encode_error(
            Error(
                code=ErrorCode.SERVICE_UNAVAILABLE,
                message="the database is unavailable; try again shortly",
            )
        )
    except Exception as exc:
        log.exception("request failed", model=model.__name__)
        return encode_error(
            Error(code=ErrorCode.INTERNAL, message=f"internal error: {type(exc).__name__}")
        )


def decode_reply(data: bytes) -> Any:
    """Client side: the result, or a ServiceError carrying the structured error."""
    try:
        reply = Reply.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise ServiceError(ErrorCode.INTERNAL, f"unreadable reply: {exc}") from exc
    if not reply.ok:
        raise ServiceError.from_error(
            reply.error or Error(code=ErrorCode.INTERNAL, message="error without details")
        )
    return reply.result
