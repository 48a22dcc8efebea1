"""Request/reply on core NATS: the service side turns bytes into a typed command and a
result or a structured error back into bytes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pymongo.errors import ConnectionFailure

from contracts.errors import Error, ErrorCode, FieldError, Reply, ServiceError
from services.runtime.logging import get_logger

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
Result = BaseModel | dict[str, Any] | list[Any] | None
RequestHandler = Callable[[M], Awaitable[Result]]


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
