"""The structured error every command and query answers with when it cannot do its work."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorCode(StrEnum):
    VALIDATION_FAILED = "validation_failed"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    INVALID_STATE = "invalid_state"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL = "internal"


class FieldError(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    field: str
    message: str


class Error(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: ErrorCode
    message: str
    details: list[FieldError] = []


class Reply(BaseModel):
    """What every request/reply subject answers: ``ok`` with a ``result`` or an ``error``."""

    model_config = ConfigDict(extra="ignore")

    ok: bool
    result: dict[str, Any] | list[Any] | None = None
    error: Error | None = None


class ServiceError(Exception):
    """Raised by a handler or a client; carries the structured error to the caller."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message)
        self.error = Error(code=code, message=message, details=details or [])

    @property
    def code(self) -> ErrorCode:
        return self.error.code

    @classmethod
    def from_error(cls, error: Error) -> ServiceError:
        return cls(error.code, error.message, list(error.details))


class DomainValidationError(ServiceError):
    """Fields a service's rules refuse (``validation_failed``), each named with its reason."""

    def __init__(self, details: list[FieldError], message: str | None = None) -> None:
        super().__init__(
            ErrorCode.VALIDATION_FAILED,
            message or "; ".join(f"{d.field}: {d.message}" for d in details),
            details,
        )
