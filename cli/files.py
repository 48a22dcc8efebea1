"""Files the CLI writes for staff: whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from contracts.errors import ErrorCode, ServiceError


@contextmanager
def replacing(
    path: Path, *, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[TextIO]:
    """A temporary file next to ``path``, renamed into place once the block ends without
    an error (and removed if it does not): a reader never sees half a file, and a failed
    export leaves the last good one."""
    target = path.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise unwritable(path, exc) from exc
    try:
        with os.fdopen(handle, "w", encoding=encoding, newline=newline) as out:
            yield out
        os.replace(temporary, target)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise unwritable(path, exc) from exc
        raise


def unwritable(path: Path, exc: OSError) -> ServiceError:
    """The one-line error a command gives for a file it cannot write (a missing folder
    it may not create, a full disk, no permission), before or after asking anyone."""
    return ServiceError(
        ErrorCode.VALIDATION_FAILED, f"{path}: cannot be written ({exc.strerror or exc})"
    )
