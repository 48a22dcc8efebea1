"""Work that must outlive failures: the one retry helper and the one background loop.

Everything that retries or repeats (the outbox relay, mail delivery, invitation rounds,
certificate rendering, a consumer waiting for a stream, a transaction rerun after a unique
key clash) goes through :func:`retry`, built on stamina: exponential backoff with jitter,
each failure logged with what was being done. :class:`Loop` is a background loop built on
it: a step run again and again, at once while it says there is more, otherwise after an
interval or when woken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import stamina
from stamina.instrumentation import set_on_retry_hooks

from services.runtime.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# Our own line per failure says what failed; stamina's default hooks would log it again.
set_on_retry_hooks([])


class Cancelled(Exception):
    """A retry given up because ``cancel_on`` was set (the work is stopping)."""


async def retry(
    step: Callable[[], Awaitable[T]],
    *,
    what: str,
    on: type[Exception] | tuple[type[Exception], ...] = Exception,
    attempts: int | None = None,
    wait_initial: float = 0.2,
    wait_max: float = 30.0,
    jitter: float | None = None,
    cancel_on: asyncio.Event | None = None,
    quiet: bool = False,
) -> T:
    """Run ``step`` until it returns; an exception of type ``on`` is logged and retried
    after an exponentially growing, jittered wait (up to ``wait_max``). ``attempts=None``
    retries forever. When ``cancel_on`` is set, a retry still waiting is given up with
    :class:`Cancelled` (a step already running is allowed to finish first). ``quiet``: log
    retries at debug level (an expected rerun, not a problem)."""

    idle = asyncio.Event()  # set while no step is running: waiting out a backoff

    async def attempts_of_step() -> T:
        async for attempt in stamina.retry_context(
            on=on,
            attempts=attempts,
            timeout=None,
            wait_initial=wait_initial,
            wait_max=wait_max,
            wait_jitter=wait_initial if jitter is None else jitter,
        ):
            with attempt:
                idle.clear()
                try:
                    return await step()
                except on as exc:
                    if attempts is not None and attempt.num >= attempts:
                        raise
                    (log.debug if quiet else log.warning)(
                        f"{what} failed, retrying", attempt=attempt.num, error=repr(exc)
                    )
                    raise
                finally:
                    idle.set()
        raise AssertionError("unreachable")  # stamina either returns or raises

    if cancel_on is None:
        return await attempts_of_step()
    task = asyncio.ensure_future(attempts_of_step())
    try:
        await _first(task, cancel_on.wait())
        if not task.done():
            # Stopping: a running step may finish (and its result counts); a backoff may not.
            await _first(task, idle.wait())
    except asyncio.CancelledError:
        # Whoever waits for this retry is cancelled: so is the step, and its retries.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise Cancelled(what)


async def _first(task: asyncio.Future[T], other: Coroutine[Any, Any, Any]) -> None:
    """Wait until ``task`` is done or ``other`` completes, whichever is first."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(other)
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


Step = Callable[[], Awaitable[bool | None]]


class Loop:
    """Background work: ``step`` runs again and again until the loop is stopped.

    A step returns True when there is more to do at once; otherwise the loop waits
    ``every`` seconds, or until :meth:`wake`. A failing step is retried with backoff
    (:func:`retry`), so the loop outlives database and NATS outages. :meth:`stop` cancels
    the loop (a step is a unit of work or leased, so a cancelled one is done again after a
    restart); ``stop(graceful=True)`` lets a running step finish first.
    """

    def __init__(
        self,
        what: str,
        step: Step,
        *,
        every: float,
        wait_initial: float = 0.5,
        wait_max: float = 30.0,
    ) -> None:
        self.what = what
        self._step = step
        self.every = every
        self._wait_initial = wait_initial
        self._wait_max = wait_max
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Run the step now (new work was committed), not after the interval."""
        self._wakeup.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.what)

    async def run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                more = await retry(
                    self._step,
                    what=self.what,
                    wait_initial=self._wait_initial,
                    wait_max=self._wait_max,
                    cancel_on=self._stopping,
                )
            except Cancelled:
                return
            if more:
                await asyncio.sleep(0)  # let requests and other loops in between steps
                continue
            waiting = asyncio.ensure_future(self._wakeup.wait())
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait(
                    [waiting, stopping], timeout=self.every, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiting.cancel()
                stopping.cancel()

    async def stop(self, *, graceful: bool = False) -> None:
        self._stopping.set()
        if self._task is None:
            return
        if not graceful:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
