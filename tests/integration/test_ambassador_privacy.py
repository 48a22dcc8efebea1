"""Personal data: erasure leaves no trace in the service's database or the certificate
bucket, and the public directory shows only what ambassadors chose to show."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contracts.ambassadors import Endpoints
from contracts.errors import ErrorCode, ServiceError
from tests.integration.ambassadors_harness import (
    Ambassadors,
    confirmation_token,
    eventually,
    unique_email,
)

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration


def texts(value: Any) -> Iterator[str]:
    """Every key and value of a stored document as text; bytes (the outbox's JSON payloads)
    decoded, so an e-mail inside a serialised event is found too."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from texts(item)
    elif isinstance(value, bytes | bytearray):
        yield bytes(value).decode("utf-8", errors="replace")
    else:
        yield str(value)


async def traces(ambassadors: Ambassadors, needles: list[str]) -> list[str]:
    """``collection: needle`` for every needle found in any document of any collection."""
    wanted = {n.casefold() for n in needles} | {json.dumps(n)[1:-1].casefold() for n in needles}
    found = []
    for collection in sorted(await ambassadors.db.list_collection_names()):
        async for doc in ambassadors.db[collection].find({}):
            text = "\n".join(texts(doc)).casefold()
            found += [f"{collection}: {needle}" for needle in wanted if needle in text]
    return sorted(set(found))


async def test_erasure_leaves_no_trace_of_the_person_but_keeps_the_history_true(
    ambassadors: Ambassadors,
) -> None:
    name = f"Testperson Åse Ørskov {uuid.uuid4().hex[:6]}"
    email = unique_email("Aase.Oerskov")
    phone = "+45 71 72 73 74"
    needles = [name, email, phone, phone.replace(" ", "")]

    bystander = (await ambassadors.sign_up(staff=True))["ambassador"]["id"]
    signed_up = await ambassadors.sign_up(
        name=name, email=email, phone=phone, kind="citizen", public=True
    )
    ambassador_id = signed_up["ambassador"]["id"]
    [signed] = await ambassadors.wait_for_events([ambassador_id], "signed_up")
    active = await ambassadors.request(
        Endpoints.CONFIRM.subject, {"token": confirmation_token(signed.data)}
    )
    code = active["certificate"]["verification_code"]
    await ambassadors.request(
        Endpoints.UPDATE.subject, {"ambassador_id": ambassador_id, "description": f"Jeg er {name}."}
    )
    [issued] = await ambassadors.wait_for_events([ambassador_id], "certificate_issued")
    object_name = issued.data["object_name"]
    await ambassadors.wait_for_events([ambassador_id], "profile_updated")
    await ambassadors.outbox_drained()
    # Before erasure the person is where one would expect: their record and their events.
    assert any(t.startswith("ambassadors:") for t in await traces(ambassadors, needles))
    published = await ambassadors.events([ambassador_id])
    assert {e.name for e in published} == {
        "signed_up",
        "activated",
        "certificate_issued",
        "profile_updated",
    }
    assert any(email in json.dumps(e.data) for e in published)

    erased = await ambassadors.request(Endpoints.ERASE.subject, {"ambassador_id": ambassador_id})

    assert erased["status"] == "erased"
    assert erased["erased_at"]
    assert (erased["name"], erased["email"], erased.get("phone")) == (None, None, None)
    [event] = await ambassadors.wait_for_events([ambassador_id], "erased")
    assert set(event.data) - {"event_id", "occurred_at", "producer", "schema_version"} == {
        "ambassador_id",
        "correlation_id",
        "causation_id",
    }
    await ambassadors.certificate_gone(object_name)
    await ambassadors.outbox_drained()

    async def purged_from_stream() -> bool:
        return not [e for e in published if await ambassadors.on_stream(e)]

    # Consumers that have not read them yet must not learn the person from the stream
    # either; only "erased" stays, so they know there is nothing to keep.
    await eventually(purged_from_stream, what="the person's events to leave the stream")
    assert await ambassadors.on_stream(event)

    async def scrubbed() -> bool:
        return not await traces(ambassadors, needles)

    # A sweep finishes what the erasure began; give it a moment, then name whatever is left.
    with contextlib.suppress(AssertionError):
        await eventually(scrubbed, what="no collection to hold the name, e-mail or phone")
    assert await traces(ambassadors, needles) == []

    verified = await ambassadors.request(Endpoints.VERIFY.subject, {"code": code})
    assert verified["genuine"] is True and verified["valid"] is False
    assert verified.get("holder") is None
    with pytest.raises(ServiceError) as again:
        await ambassadors.request(Endpoints.ERASE.subject, {"ambassador_id": ambassador_id})
    assert again.value.code == ErrorCode.INVALID_STATE

    goals = await ambassadors.request(Endpoints.GOALS.subject, {})
    assert goals["active"] == 1  # the bystander
    assert goals["erased"] == 1
    assert goals["by_kind"]["citizen"] == 1  # the bystander is a citizen too; one, not two
    assert sum(m["activated"] for m in goals["months"]) == 2
    assert sum(m["left"] for m in goals["months"]) == 1
    assert goals["months"][-1]["active"] == 1

    # The address is free again: signing up with it is a new person, not the erased record.
    back = await ambassadors.sign_up(email=email)
    assert back["ambassador"]["id"] not in {ambassador_id, bystander}


async def test_the_directory_lists_only_active_public_ambassadors_and_no_contact_details(
    ambassadors: Ambassadors,
) -> None:
    contact = f"Kontaktperson {uuid.uuid4().hex[:6]}"
    listed_org = await ambassadors.sign_up(
        name=contact,
        email=unique_email("kontakt"),
        phone="+45 75 92 00 00",
        kind="association",
        organisation="Fredericia Frivilligcenter",
        description="Formidler frivilligt arbejde.",
        website="https://frivilligcenter.example.dk",
        themes=[10],
        public=True,
        staff=True,
    )
    listed_citizen = await ambassadors.sign_up(
        name="Testborger Hansen",
        email=unique_email("borger"),
        phone="+45 22 33 44 55",
        kind="citizen",
        public=True,
        staff=True,
    )
    private = await ambassadors.sign_up(public=False, staff=True)
    pending = await ambassadors.sign_up(public=True)
    withdrawn = await ambassadors.sign_up(public=True, staff=True)
    await ambassadors.request(
        Endpoints.WITHDRAW.subject, {"ambassador_id": withdrawn["ambassador"]["id"]}
    )
    everyone = [listed_org, listed_citizen, private, pending, withdrawn]

    raw = await ambassadors.raw_request(Endpoints.DIRECTORY.subject, {})
    directory = json.loads(raw)["result"]

    entries = {e["id"]: e for e in directory["entries"]}
    assert set(entries) == {listed_org["ambassador"]["id"], listed_citizen["ambassador"]["id"]}
    org = entries[listed_org["ambassador"]["id"]]
    assert org["display_name"] == "Fredericia Frivilligcenter"
    assert org["website"] == "https://frivilligcenter.example.dk"
    assert org["themes"] == [10]
    assert entries[listed_citizen["ambassador"]["id"]]["display_name"] == "Testborger Hansen"

    text = raw.decode()
    assert "@" not in text
    for result in everyone:
        ambassador = result["ambassador"]
        assert ambassador["email"] not in text
        if ambassador.get("phone"):
            assert ambassador["phone"] not in text
            assert ambassador["phone"].replace(" ", "") not in text.replace(" ", "")
    # An organisation's contact person stays out of the public listing.
    assert contact not in text
    keys = {key for entry in entries.values() for key in entry}
    assert not keys & {"email", "phone", "name", "consent_version", "source", "skills"}
