"""The one retry helper and the one background loop (services/runtime/background.py).

Backoffs are made tiny (stamina's jittered backoff starts at ``wait_initial``) and every
test waits on a condition, never on a long sleep."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.runtime import background
from services.runtime.background import Cancelled, Loop, retry

TINY = 0.001
# Long enough that a test fails if it is waited for, short enough never to hang the run.
PATIENCE = 2.0


@dataclass
class Logged:
    lines: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def warning(self, message: str, **fields: Any) -> None:
        self.lines.append(("warning", message, fields))

    def debug(self, message: str, **fields: Any) -> None:
        self.lines.append(("debug", message, fields))


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[Logged]:
    found = Logged()
    monkeypatch.setattr(background, "log", found)
    yield found


async def within(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, PATIENCE)


def failing(times: int, then: Any = "done", error: type[Exception] = RuntimeError) -> Any:
    """A step that fails ``times`` times, then returns ``then``; ``calls`` counts."""
    calls: list[float] = []

    async def step() -> Any:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error(f"failure {len(calls)}")
        return then

    step.calls = calls  # type: ignore[attr-defined]
    return step


def calls_of(step: Any) -> list[float]:
    calls: list[float] = step.calls
    return calls


# ---------------------------------------------------------------- retry


async def test_retry_runs_the_step_until_it_succeeds_and_logs_each_failure(
    logged: Logged,
) -> None:
    step = failing(2)
    assert await within(retry(step, what="storing a mail", wait_initial=TINY)) == "done"
    assert len(calls_of(step)) == 3
    assert [(level, message, f["attempt"]) for level, message, f in logged.lines] == [
        ("warning", "storing a mail failed, retrying", 1),
        ("warning", "storing a mail failed, retrying", 2),
    ]
    assert logged.lines[0][2]["error"] == "RuntimeError('failure 1')"


async def test_an_expected_rerun_is_logged_quietly(logged: Logged) -> None:
    await within(retry(failing(1), what="rerun", wait_initial=TINY, quiet=True))
    assert [level for level, _, _ in logged.lines] == ["debug"]


async def test_retry_gives_up_after_its_attempts_with_the_last_error(logged: Logged) -> None:
    step = failing(10)
    with pytest.raises(RuntimeError, match="failure 3"):
        await within(retry(step, what="claiming", attempts=3, wait_initial=TINY))
    assert len(calls_of(step)) == 3
    # The last failure is raised to the caller, not logged as "retrying".
    assert [f["attempt"] for _, _, f in logged.lines] == [1, 2]


async def test_only_the_given_exceptions_are_retried(logged: Logged) -> None:
    step = failing(1, error=KeyError)
    with pytest.raises(KeyError):
        await within(retry(step, what="parsing", on=ValueError, wait_initial=TINY))
    assert len(calls_of(step)) == 1 and logged.lines == []


async def test_the_wait_between_attempts_grows_from_wait_initial() -> None:
    step = failing(2)
    await within(retry(step, what="x", wait_initial=0.02, jitter=0, wait_max=1.0))
    first, second, third = calls_of(step)
    assert second - first >= 0.019 and third - second >= 0.039


async def test_cancel_on_gives_up_a_retry_that_waits_out_a_backoff(logged: Logged) -> None:
    stopping = asyncio.Event()
    failed = asyncio.Event()

    async def step() -> str:
        failed.set()
        raise RuntimeError("down")

    # A backoff far longer than the test: only the cancellation can end it.
    waiting = asyncio.ensure_future(
        retry(step, what="relay", wait_initial=60.0, jitter=0, cancel_on=stopping)
    )
    await within(failed.wait())
    stopping.set()
    with pytest.raises(Cancelled, match="relay"):
        await within(waiting)


async def test_cancel_on_lets_a_running_step_finish_and_its_result_counts() -> None:
    stopping = asyncio.Event()
    running, release = asyncio.Event(), asyncio.Event()

    async def step() -> str:
        running.set()
        await release.wait()
        return "finished"

    waiting = asyncio.ensure_future(retry(step, what="x", cancel_on=stopping))
    await within(running.wait())
    stopping.set()
    await asyncio.sleep(0)
    assert not waiting.done()  # the step is still running: it is not cut off
    release.set()
    assert await within(waiting) == "finished"


async def test_a_step_that_fails_after_cancel_on_was_set_is_not_retried(logged: Logged) -> None:
    stopping = asyncio.Event()
    running, release = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def step() -> str:
        calls.append(1)
        running.set()
        await release.wait()
        raise RuntimeError("down")

    waiting = asyncio.ensure_future(
        retry(step, what="x", wait_initial=TINY, jitter=0, cancel_on=stopping)
    )
    await within(running.wait())
    stopping.set()
    release.set()
    with pytest.raises(Cancelled):
        await within(waiting)
    assert calls == [1]


# ---------------------------------------------------------------- Loop


class Steps:
    """A loop's step that records its runs and returns what it is told to."""

    def __init__(self, answers: Callable[[int], bool] = lambda _n: False) -> None:
        self.runs = 0
        self._answers = answers
        self._reached: dict[int, asyncio.Event] = {}

    async def __call__(self) -> bool:
        self.runs += 1
        for count, event in self._reached.items():
            if self.runs >= count:
                event.set()
        return self._answers(self.runs)

    async def reached(self, count: int) -> None:
        if self.runs >= count:
            return
        await within(self._reached.setdefault(count, asyncio.Event()).wait())


@pytest.fixture
async def loops() -> Any:
    started: list[Loop] = []

    def make(step: Callable[[], Awaitable[bool | None]], **options: Any) -> Loop:
        options = {"every": 60.0, "wait_initial": TINY, "wait_max": 0.01, **options}
        loop = Loop("test loop", step, **options)
        started.append(loop)
        loop.start()
        return loop

    yield make
    for loop in started:
        await loop.stop()


async def test_the_loop_runs_again_at_once_while_the_step_says_there_is_more(loops: Any) -> None:
    steps = Steps(lambda n: n < 5)
    loops(steps)  # every 60 s: only "more" can make it run five times here
    await steps.reached(5)
    await asyncio.sleep(0.02)
    assert steps.runs == 5  # then it waits


async def test_the_loop_waits_its_interval_when_there_is_nothing_more(loops: Any) -> None:
    steps = Steps()
    runs: list[float] = []

    async def timed() -> bool:
        runs.append(time.monotonic())
        return await steps()

    loops(timed, every=0.03)
    await steps.reached(3)
    assert all(later - earlier >= 0.025 for earlier, later in itertools.pairwise(runs))


async def test_wake_runs_the_step_at_once(loops: Any) -> None:
    steps = Steps()
    loop = loops(steps)
    await steps.reached(1)
    loop.wake()
    await steps.reached(2)
    loop.wake()
    await steps.reached(3)


async def test_stop_ends_a_waiting_loop(loops: Any) -> None:
    steps = Steps()
    loop = loops(steps)
    await steps.reached(1)
    assert loop.running
    await within(loop.stop())
    assert not loop.running
    loop.wake()
    await asyncio.sleep(0.01)
    assert steps.runs == 1


async def test_stop_cancels_a_running_step(loops: Any) -> None:
    running, release, cut_off = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def step() -> bool:
        running.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cut_off.set()
            raise
        return False

    loop = loops(step)
    await within(running.wait())
    await within(loop.stop())
    was_cut_off = cut_off.is_set()
    # Whatever happened, no step of this test outlives it.
    release.set()
    await asyncio.sleep(0)
    assert was_cut_off


async def test_a_graceful_stop_lets_the_running_step_finish(loops: Any) -> None:
    running, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    async def step() -> bool:
        running.set()
        await release.wait()
        finished.append(1)
        return True  # there would be more: the loop stops all the same

    loop = loops(step)
    await within(running.wait())
    stopping = asyncio.ensure_future(loop.stop(graceful=True))
    await asyncio.sleep(0.01)
    assert not stopping.done() and finished == []
    release.set()
    await within(stopping)
    assert finished == [1] and not loop.running


async def test_a_failing_step_is_retried_and_the_loop_survives(loops: Any, logged: Logged) -> None:
    step = failing(3, then=False)
    steps = Steps()

    async def flaky() -> bool:
        result: bool = await step()
        return await steps() or result

    loop = loops(flaky)
    await steps.reached(1)
    assert len(calls_of(step)) == 4 and loop.running
    assert [message for _, message, _ in logged.lines] == ["test loop failed, retrying"] * 3
    loop.wake()
    await steps.reached(2)  # and it goes on as before
