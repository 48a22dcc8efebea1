"""Signing up, against the real ambassadors service process: validation, double opt-in,
staff sign-ups, the certificate, and the envelope every published event carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.ambassadors import Endpoints
from contracts.consent import CONSENT_TEXTS, CURRENT_CONSENT_VERSION
from contracts.errors import ErrorCode, ServiceError
from tests.integration.ambassadors_harness import (
    CERTIFICATE_BUCKET,
    Ambassadors,
    StreamEvent,
    confirmation_token,
    object_store_digest,
    pdf_text,
    squash,
    unique_email,
)

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration


async def rejected(
    ambassadors: Ambassadors, subject: str, payload: dict[str, object]
) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await ambassadors.request(subject, payload)
    return caught.value


def bad_fields(error: ServiceError) -> set[str]:
    # "themes.1" names the second theme; the field is "themes".
    return {detail.field.split(".")[0] for detail in error.error.details}


# ---------------------------------------------------------------- validation


BAD_FIELDS: dict[str, dict[str, object]] = {
    "email": {"email": "not-an-address"},
    "consent": {"consent": False},
    "organisation": {"kind": "company", "organisation": "   "},
    "themes": {"themes": [3, 13]},
    "name": {"name": "N" * 201},
}


async def test_a_bad_sign_up_names_every_bad_field_and_stores_nothing(
    ambassadors: Ambassadors,
) -> None:
    everything_wrong: dict[str, object] = {}
    for fields in BAD_FIELDS.values():
        everything_wrong.update(fields)

    error = await rejected(ambassadors, Endpoints.SIGN_UP.subject, everything_wrong)

    assert error.code == ErrorCode.VALIDATION_FAILED
    assert bad_fields(error) == set(BAD_FIELDS)
    assert all(detail.message for detail in error.error.details)

    for field, fields in BAD_FIELDS.items():
        alone = {"name": "Anna Hansen", "email": unique_email(), "kind": "citizen", "consent": True}
        error = await rejected(ambassadors, Endpoints.SIGN_UP.subject, {**alone, **fields})
        assert error.code == ErrorCode.VALIDATION_FAILED, field
        assert bad_fields(error) == {field}

    assert await ambassadors.request(Endpoints.LIST.subject, {}) == {"total": 0, "items": []}
    for collection in ("ambassadors", "outbox", "counters"):
        assert await ambassadors.db[collection].count_documents({}) == 0, collection

    # The outbox publishes in order: once a good sign-up's event is on the stream, anything
    # the bad ones had produced would be there before it.
    good = await ambassadors.sign_up(staff=True)
    good_id = good["ambassador"]["id"]
    await ambassadors.wait_for_events([good_id], "activated")
    assert {e.ambassador_id for e in await ambassadors.events()} == {good_id}


async def test_consent_is_to_the_text_the_service_answers_and_an_older_one_is_sent_back(
    ambassadors: Ambassadors,
) -> None:
    shown = await ambassadors.request(Endpoints.CONSENT.subject, {})
    assert shown == {"version": CURRENT_CONSENT_VERSION, "text": CONSENT_TEXTS[shown["version"]]}

    person = {"name": "Anna Hansen", "kind": "citizen", "consent": True}
    old = await rejected(
        ambassadors,
        Endpoints.SIGN_UP.subject,
        {**person, "email": unique_email(), "consent_version": "2019-01"},
    )
    assert old.code == ErrorCode.VALIDATION_FAILED and bad_fields(old) == {"consent_version"}
    assert await ambassadors.db.ambassadors.count_documents({}) == 0

    read = await ambassadors.sign_up(email=unique_email(), consent_version=shown["version"])
    assert read["ambassador"]["consent_version"] == shown["version"]


# ---------------------------------------------------------------- double opt-in


async def test_a_self_sign_up_is_confirmed_by_e_mail_and_then_gets_its_certificate(
    ambassadors: Ambassadors,
) -> None:
    name = f"Mette Sørensen {uuid.uuid4().hex[:4]}"
    email = unique_email("Mette.S")
    profile: dict[str, Any] = {"name": name, "kind": "volunteer", "public": True, "themes": [7, 10]}

    first = await ambassadors.sign_up(email=email, **profile)
    pending = first["ambassador"]
    ambassador_id = pending["id"]
    assert pending["status"] == "pending"
    assert pending["source"] == "self"
    assert pending["consent_version"] and pending["consented_at"]
    assert pending.get("activated_at") is None and pending.get("certificate") is None

    [signed] = await ambassadors.wait_for_events([ambassador_id], "signed_up")
    first_token = confirmation_token(signed.data)
    assert first_token
    assert signed.data["email"] == email and signed.data["name"] == name
    assert datetime.fromisoformat(signed.data["token_expires_at"]) > datetime.now(UTC)

    # The same address in another case is the same person asking for a new mail.
    shouted = email.split("@")[0].upper() + "@" + email.split("@")[1]
    again = await ambassadors.sign_up(email=shouted, **profile)
    assert again["ambassador"]["id"] == ambassador_id
    assert again["ambassador"]["status"] == "pending"
    signed_events = await ambassadors.wait_for_events([ambassador_id], "signed_up", count=2)
    new_token = confirmation_token(signed_events[1].data)
    assert new_token and new_token != first_token

    old = await rejected(ambassadors, Endpoints.CONFIRM.subject, {"token": first_token})
    assert old.code == ErrorCode.INVALID_TOKEN
    assert (await ambassadors.show(ambassador_id))["status"] == "pending"

    active = await ambassadors.request(Endpoints.CONFIRM.subject, {"token": new_token})
    assert active["id"] == ambassador_id
    assert active["status"] == "active"
    assert active["activated_at"]
    certificate = active["certificate"]
    assert certificate["number"].startswith("FRC-") and certificate["verification_code"]

    [activated] = await ambassadors.wait_for_events([ambassador_id], "activated")
    ref = activated.data["certificate"]
    assert ref["number"] == certificate["number"]
    assert ref["verification_code"] == certificate["verification_code"]
    assert ref["bucket"] == CERTIFICATE_BUCKET
    assert ref["object_name"]

    [issued] = await ambassadors.wait_for_events([ambassador_id], "certificate_issued")
    assert issued.data["object_name"] == ref["object_name"]
    assert issued.data["number"] == certificate["number"]
    pdf, stored_digest = await ambassadors.certificate_object(ref["object_name"])
    assert squash(name) in pdf_text(pdf)
    assert certificate["number"] in pdf_text(pdf)
    assert issued.data["digest"] == stored_digest == object_store_digest(pdf)
    assert issued.data["size"] == len(pdf)

    location = await ambassadors.request(
        Endpoints.CERTIFICATE.subject, {"ambassador_id": ambassador_id}
    )
    assert location == {
        "ambassador_id": ambassador_id,
        "number": certificate["number"],
        "bucket": CERTIFICATE_BUCKET,
        "object_name": ref["object_name"],
        "digest": stored_digest,
        "size": len(pdf),
    }

    verified = await ambassadors.request(
        Endpoints.VERIFY.subject,
        {"code": certificate["verification_code"].lower().replace("-", "")},
    )
    assert verified["genuine"] is True and verified["valid"] is True
    assert verified["holder"] == name

    twice = await rejected(ambassadors, Endpoints.CONFIRM.subject, {"token": new_token})
    assert twice.code == ErrorCode.INVALID_STATE
    assert "already confirmed" in twice.error.message
    assert len(await ambassadors.events([ambassador_id], "activated")) == 1


async def test_an_expired_confirmation_token_is_refused_and_a_new_sign_up_helps(
    ambassadors: Ambassadors,
) -> None:
    email = unique_email()
    first = await ambassadors.sign_up(email=email)
    ambassador_id = first["ambassador"]["id"]
    [signed] = await ambassadors.wait_for_events([ambassador_id], "signed_up")

    # The shortest token lifetime the settings allow is an hour and the service runs in its
    # own process with the real clock, so the test ages the token where the service keeps it.
    yesterday = datetime.now(UTC) - timedelta(days=1)
    changed = await ambassadors.db.ambassadors.update_one(
        {"_id": ambassador_id}, {"$set": {"token_expires_at": yesterday}}
    )
    assert changed.modified_count == 1

    expired = await rejected(
        ambassadors, Endpoints.CONFIRM.subject, {"token": confirmation_token(signed.data)}
    )
    assert expired.code == ErrorCode.TOKEN_EXPIRED
    assert "expired" in expired.error.message
    assert (await ambassadors.show(ambassador_id))["status"] == "pending"

    again = await ambassadors.sign_up(email=email)
    assert again["ambassador"]["id"] == ambassador_id
    fresh = (await ambassadors.wait_for_events([ambassador_id], "signed_up", count=2))[1]
    active = await ambassadors.request(
        Endpoints.CONFIRM.subject, {"token": confirmation_token(fresh.data)}
    )
    assert active["status"] == "active"


# ---------------------------------------------------------------- staff sign-ups


async def test_a_staff_sign_up_is_active_at_once_with_each_event_exactly_once(
    ambassadors: Ambassadors,
) -> None:
    result = await ambassadors.sign_up(
        name="Kontaktperson Kirkens Korshær",
        kind="association",
        organisation="Kirkens Korshær Fredericia",
        core_areas=["housing"],
        staff=True,
    )
    ambassador = result["ambassador"]
    ambassador_id = ambassador["id"]
    assert ambassador["status"] == "active"
    assert ambassador["source"] == "staff"
    assert ambassador["certificate"]["number"]

    await ambassadors.wait_for_events([ambassador_id], "certificate_issued")
    await ambassadors.outbox_drained()
    events = await ambassadors.events([ambassador_id])
    assert sorted(e.name for e in events) == ["activated", "certificate_issued", "signed_up"]
    by_name = {e.name: e for e in events}
    signed, activated = by_name["signed_up"], by_name["activated"]
    assert signed.seq < activated.seq < by_name["certificate_issued"].seq
    assert signed.data["source"] == "staff"
    assert signed.data.get("confirmation_token") is None
    # The activation was caused by the staff sign-up and belongs to its conversation.
    assert activated.data["causation_id"] == signed.data["event_id"]
    assert activated.data["correlation_id"] == signed.data["event_id"]
    assert activated.data["organisation"] == "Kirkens Korshær Fredericia"


# ---------------------------------------------------------------- the envelope


def assert_envelope(event: StreamEvent) -> None:
    data = event.data
    assert str(uuid.UUID(data["event_id"])) == data["event_id"], event
    occurred = datetime.fromisoformat(data["occurred_at"])
    assert occurred.utcoffset() == timedelta(0), event
    assert abs(datetime.now(UTC) - occurred) < timedelta(minutes=5), event
    assert data["producer"] == "ambassadors", event
    assert data["schema_version"] == 1, event
    assert event.headers.get("Nats-Msg-Id") == data["event_id"], event
    assert event.subject == f"ambassadors.v1.{event.name}"


async def test_every_event_carries_the_envelope_and_a_unique_id(ambassadors: Ambassadors) -> None:
    staff = (await ambassadors.sign_up(staff=True, phone="+45 20 30 40 50"))["ambassador"]["id"]
    own = (await ambassadors.sign_up())["ambassador"]["id"]
    [signed] = await ambassadors.wait_for_events([own], "signed_up")
    await ambassadors.request(Endpoints.CONFIRM.subject, {"token": confirmation_token(signed.data)})
    await ambassadors.request(
        Endpoints.UPDATE.subject, {"ambassador_id": own, "description": "Laver mad i varmestuen."}
    )
    await ambassadors.request(
        Endpoints.WITHDRAW.subject, {"ambassador_id": own, "reason": "flytter"}
    )
    await ambassadors.request(Endpoints.ERASE.subject, {"ambassador_id": staff})
    await ambassadors.wait_for_events([staff], "erased")
    await ambassadors.wait_for_events([own], "withdrawn")
    await ambassadors.outbox_drained()

    events = await ambassadors.events()
    assert {e.ambassador_id for e in events} == {staff, own}
    assert {e.name for e in events} >= {
        "signed_up",
        "activated",
        "profile_updated",
        "withdrawn",
        "erased",
    }
    for event in events:
        assert_envelope(event)
    ids = [e.data["event_id"] for e in events]
    assert len(ids) == len(set(ids))
