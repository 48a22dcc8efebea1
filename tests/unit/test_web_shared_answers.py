"""The website keeps the services' answers that are the same for every visitor for a few
seconds: a burst of visitors asks each service once; nothing personal is kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.ambassadors import Directory, GetDirectory, VerifyCertificate, VerifyResult
from contracts.ambassadors import Endpoints as Ambassadors
from contracts.errors import ErrorCode, ServiceError
from tests.unit.test_web_pages import StandIn
from web.shared_answers import SharedAnswers

pytestmark = pytest.mark.asyncio

DIRECTORY = Directory(generated_at=datetime(2026, 12, 1, tzinfo=UTC), entries=[])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def asked(services: StandIn, subject: str) -> int:
    return services.subjects().count(subject)


async def test_the_directory_is_asked_once_within_the_window_and_again_after_it() -> None:
    services, clock = StandIn(), Clock()
    services.replies[Ambassadors.DIRECTORY.subject] = DIRECTORY
    shared = SharedAnswers(services, 5.0, clock=clock)
    for _ in range(10):
        assert await shared.call(Ambassadors.DIRECTORY, GetDirectory()) == DIRECTORY
    assert asked(services, Ambassadors.DIRECTORY.subject) == 1
    clock.now += 5.1
    await shared.call(Ambassadors.DIRECTORY, GetDirectory())
    assert asked(services, Ambassadors.DIRECTORY.subject) == 2


async def test_visitors_arriving_together_wait_for_one_request() -> None:
    services = StandIn()
    release = asyncio.Event()

    async def slow_call(endpoint: Any, request: Any, *, timeout: float | None = None) -> Any:
        services.calls.append((endpoint.subject, request))
        await release.wait()
        return DIRECTORY

    services.call = slow_call  # type: ignore[method-assign]
    shared = SharedAnswers(services, 5.0)
    visitors = [
        asyncio.create_task(shared.call(Ambassadors.DIRECTORY, GetDirectory())) for _ in range(20)
    ]
    await asyncio.sleep(0)
    visitors[0].cancel()  # one leaves; the others still get the answer
    release.set()
    answers = await asyncio.gather(*visitors[1:])
    assert answers == [DIRECTORY] * 19
    assert asked(services, Ambassadors.DIRECTORY.subject) == 1


async def test_a_failure_is_not_kept() -> None:
    services = StandIn()  # no reply: the service is down
    shared = SharedAnswers(services, 5.0)
    with pytest.raises(ServiceError) as down:
        await shared.call(Ambassadors.DIRECTORY, GetDirectory())
    assert down.value.code == ErrorCode.SERVICE_UNAVAILABLE
    services.replies[Ambassadors.DIRECTORY.subject] = DIRECTORY
    assert await shared.call(Ambassadors.DIRECTORY, GetDirectory()) == DIRECTORY


async def test_a_personal_answer_and_a_zero_window_always_go_to_the_service() -> None:
    services = StandIn()
    services.replies[Ambassadors.VERIFY.subject] = VerifyResult(
        code="ABCD-EFGH", genuine=False, valid=False, status="unknown"
    )
    services.replies[Ambassadors.DIRECTORY.subject] = DIRECTORY
    shared = SharedAnswers(services, 5.0)
    for _ in range(3):
        await shared.call(Ambassadors.VERIFY, VerifyCertificate(code="ABCD-EFGH"))
    assert asked(services, Ambassadors.VERIFY.subject) == 3
    never = SharedAnswers(services, 0)
    for _ in range(3):
        await never.call(Ambassadors.DIRECTORY, GetDirectory())
    assert asked(services, Ambassadors.DIRECTORY.subject) == 3
