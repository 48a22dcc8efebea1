"""How often one client may use the forms and the pages behind a mail's links: a moving
window per client address (the ``limits`` library), in this process's memory."""

from __future__ import annotations

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimits:
    def __init__(self, rate: str) -> None:
        self._item = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @property
    def window_seconds(self) -> int:
        return int(self._item.get_expiry())

    def allow(self, what: str, client: str) -> bool:
        """Count one use of ``what`` by ``client``; False once the limit is reached."""
        return self._limiter.hit(self._item, what, client)
