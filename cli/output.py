"""How the CLI speaks: one human line per error, or the structured error under --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError

from contracts.errors import ErrorCode, ServiceError
from services.runtime.rpc import field_errors

EXIT_ERROR = 1
EXIT_UNAVAILABLE = 3


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def describe(error: ServiceError) -> str:
    line = error.error.message
    if error.error.details:
        fields = "; ".join(f"{d.field}: {d.message}" for d in error.error.details)
        line = f"{line} ({fields})"
    return line


@contextmanager
def reporting(as_json: bool) -> Iterator[None]:
    """Turn a ServiceError into the right output and exit code."""
    try:
        yield
    except ServiceError as exc:
        if as_json:
            emit_json({"ok": False, "error": exc.error.model_dump(mode="json")})
        else:
            typer.echo(f"error: {describe(exc)}", err=True)
        code = EXIT_UNAVAILABLE if exc.code == ErrorCode.SERVICE_UNAVAILABLE else EXIT_ERROR
        raise typer.Exit(code) from None


def show(result: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        emit_json(result)
    else:
        human(result)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = min(max(widths[i], len(cell)), 48)

    def line(values: Sequence[str]) -> str:
        return "  ".join(v[: widths[i]].ljust(widths[i]) for i, v in enumerate(values)).rstrip()

    typer.echo(line(headers))
    typer.echo(line(["-" * w for w in widths]))
    for row in cells:
        typer.echo(line(row))


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        if value in (None, "", []):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        typer.echo(f"{key.ljust(width)}  {value}")


def fail(message: str, as_json: bool, code: ErrorCode = ErrorCode.VALIDATION_FAILED) -> None:
    """A problem found by the CLI itself before anything was sent."""
    if as_json:
        emit_json({"ok": False, "error": {"code": code.value, "message": message, "details": []}})
    else:
        print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_ERROR)


def build(model: type[Any], **values: Any) -> Any:
    """Validate on this side too, so a typo fails before anything is sent."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise ServiceError(
            ErrorCode.VALIDATION_FAILED, "the request is not valid", field_errors(exc)
        ) from None
