"""Running the ambassadors service as two replicas, and not running it at all."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from contracts.ambassadors import Endpoints
from contracts.errors import ErrorCode, ServiceError
from stack.processes import ManagedProcess
from tests.integration.ambassadors_harness import AmbassadorsFactory, unique_email

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration

SIGN_UPS = 100


def sign_ups_answered(process: ManagedProcess) -> int:
    """How many sign-ups this replica handled, by the service's own debug line for each."""
    lines = process.log_path.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if "sign-up handled" in line)


async def test_two_replicas_store_every_sign_up_once_and_publish_every_event_once(
    start_ambassadors: AmbassadorsFactory,
) -> None:
    # At DEBUG the service logs each sign-up it handles: that tells the replicas' work apart.
    ambassadors = await start_ambassadors({"SAMSKAB_LOG_LEVEL": "DEBUG"}, replicas=2)
    emails = [unique_email(f"replica{i}") for i in range(SIGN_UPS)]

    results = await asyncio.gather(
        *(ambassadors.sign_up(email=email, kind="citizen", staff=True) for email in emails)
    )

    ids = [r["ambassador"]["id"] for r in results]
    assert len(set(ids)) == SIGN_UPS
    assert {r["ambassador"]["status"] for r in results} == {"active"}
    stored = [doc async for doc in ambassadors.db.ambassadors.find({})]
    assert sorted(doc["_id"] for doc in stored) == sorted(ids)
    assert {doc["email_key"] for doc in stored} == {email.casefold() for email in emails}
    numbers = {doc["certificate"]["number"] for doc in stored}
    assert len(numbers) == SIGN_UPS  # the serial counter holds under concurrent transactions

    await ambassadors.wait_for_events(ids, "activated", count=SIGN_UPS, timeout=60)
    await ambassadors.outbox_drained()
    events = await ambassadors.events(ids)
    per_kind = Counter((e.name, e.ambassador_id) for e in events)
    for name in ("signed_up", "activated"):
        assert {i for (n, i) in per_kind if n == name} == set(ids), name
    assert max(per_kind.values()) == 1, per_kind.most_common(3)
    event_ids = [e.data["event_id"] for e in events]
    assert len(event_ids) == len(set(event_ids))
    assert len([e for e in events if e.name in ("signed_up", "activated")]) == 2 * SIGN_UPS

    answered = [sign_ups_answered(p) for p in ambassadors.processes]
    if sum(answered) == 0:
        pytest.skip("the replicas' logs no longer show which requests each one answered")
    assert sum(answered) == SIGN_UPS
    assert all(n > 0 for n in answered), answered  # the queue group shares the requests


async def test_a_request_to_a_stopped_service_says_it_is_not_running(
    start_ambassadors: AmbassadorsFactory,
) -> None:
    ambassadors = await start_ambassadors()
    assert (await ambassadors.request(Endpoints.GOALS.subject, {}))["active"] == 0
    ambassadors.processes[0].stop()

    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        await ambassadors.request(Endpoints.LIST.subject, {})

    assert caught.value.code == ErrorCode.SERVICE_UNAVAILABLE
    assert caught.value.error.message == "the ambassadors service is not running"
    assert time.monotonic() - started < 2  # told at once, not after the request timeout
