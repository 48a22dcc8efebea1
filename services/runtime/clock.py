"""The time every rule asks for: real time, or, for tests, a time they travel to.

Tests (and nobody else) set ``SAMSKAB_CLOCK_FILE`` to a file holding one ISO 8601 instant:
from the moment the file is written, the clock reads that instant and runs on from it. A
test travels by writing the file again; every service of the stack reading the same file
sees the same time. Without the setting, or without the file, it is the real time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.runtime.logging import get_logger

log = get_logger(__name__)


def _milliseconds(value: datetime) -> datetime:
    # MongoDB keeps milliseconds: a reply must not show a time that a later read no longer has.
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


class Clock:
    def __init__(self, travel_file: Path | None = None) -> None:
        self._file = travel_file
        self._seen: tuple[int, float] | None = None  # (mtime_ns, offset seconds)

    def now(self) -> datetime:
        real = datetime.now(UTC)
        return _milliseconds(real + timedelta(seconds=self._offset(real)))

    __call__ = now

    def _offset(self, real: datetime) -> float:
        if self._file is None:
            return 0.0
        try:
            mtime_ns = os.stat(self._file).st_mtime_ns
        except FileNotFoundError:
            return 0.0
        if self._seen is not None and self._seen[0] == mtime_ns:
            return self._seen[1]
        try:
            target = datetime.fromisoformat(self._file.read_text().strip())
        except (OSError, ValueError):
            log.warning("clock file unreadable, using real time", path=str(self._file))
            return 0.0
        if target.tzinfo is None:
            target = target.replace(tzinfo=UTC)
        written = datetime.fromtimestamp(mtime_ns / 1e9, UTC)
        offset = (target - written).total_seconds()
        self._seen = (mtime_ns, offset)
        log.info("clock travelled", to=target.isoformat())
        return offset


def travel(path: Path, to: datetime) -> None:
    """Set every clock reading ``path`` to ``to`` (tests only)."""
    if to.tzinfo is None:
        raise ValueError("travel to an aware instant")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(to.astimezone(UTC).isoformat())
    os.replace(tmp, path)
