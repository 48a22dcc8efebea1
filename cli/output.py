"""How the CLI speaks: one human line per error, or the structured error under --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from contracts.errors import ErrorCode, ServiceError
from services.runtime.rpc import field_errors

EXIT_ERROR = 1
EXIT_UNAVAILABLE = 3

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def plain(value: Any) -> str:
    """A value as human output shows it: as the JSON has it (times in ISO 8601, an enum as
    its value), nothing for None."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date | time):
        return str(to_jsonable_python(value))
    return str(value)


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


def show(result: R, as_json: bool, human: Callable[[R], None]) -> None:
    """A reply model (or what a command made of several) as JSON, or for a human: the JSON
    of a reply is the model dumped as the service sent it."""
    if as_json:
        emit_json(result.model_dump(mode="json") if isinstance(result, BaseModel) else result)
    else:
        human(result)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[plain(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = min(max(widths[i], len(cell)), 48)

    last = len(headers) - 1

    def line(values: Sequence[str]) -> str:
        # Nothing follows the last column: it is shown whole (an outcome, a reason).
        return "  ".join(
            v if i == last else v[: widths[i]].ljust(widths[i]) for i, v in enumerate(values)
        ).rstrip()

    typer.echo(line(headers))
    typer.echo(line(["-" * w for w in widths]))
    for row in cells:
        typer.echo(line(row))


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        if value in (None, "", []):
            continue
        text = ", ".join(plain(v) for v in value) if isinstance(value, list) else plain(value)
        typer.echo(f"{key.ljust(width)}  {text}")


def fail(message: str, as_json: bool, code: ErrorCode = ErrorCode.VALIDATION_FAILED) -> NoReturn:
    """A problem found by the CLI itself before anything was sent."""
    if as_json:
        emit_json({"ok": False, "error": {"code": code.value, "message": message, "details": []}})
    else:
        print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_ERROR)


def read_text_file(file: Path, as_json: bool, *, what: str, empty: str, max_chars: int) -> str:
    """A text file the command sends (minutes, a story), or a one-line error before anything
    is sent: missing, unreadable, not UTF-8, empty or too long. ``-`` reads stdin."""
    if str(file) == "-":
        text = sys.stdin.read()
    else:
        if not file.is_file():
            fail(f"{file}: {'not a file' if file.exists() else 'no such file'}", as_json)
        try:
            raw = file.read_bytes()
        except OSError as exc:
            fail(f"{file}: cannot be read ({exc.strerror or exc})", as_json)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            fail(f"{file}: not UTF-8 text (save {what} as UTF-8)", as_json)
    if not text.strip():
        fail(f"{file}: empty; {empty}", as_json)
    if len(text) > max_chars:
        fail(f"{file}: longer than {max_chars} characters", as_json)
    return text


def build(model: type[M], cleared: Iterable[str] = (), /, **values: Any) -> M:
    """Validate on this side too, so a typo fails before anything is sent. A None value is
    left out (the default applies), except for the fields in ``cleared``: they are sent as
    null, which an update reads as "clear it"."""
    keep = set(cleared)
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None or k in keep})
    except ValidationError as exc:
        raise ServiceError(
            ErrorCode.VALIDATION_FAILED, "the request is not valid", field_errors(exc)
        ) from None
