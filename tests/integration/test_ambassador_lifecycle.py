"""Profile updates, withdrawal and rejoining, against the real ambassadors service process."""

from __future__ import annotations

import pytest

from contracts.ambassadors import Endpoints
from contracts.errors import ErrorCode, ServiceError
from tests.integration.ambassadors_harness import Ambassadors, confirmation_token, unique_email

pytest_plugins = ["tests.integration.ambassadors_fixtures"]
pytestmark = pytest.mark.integration


async def test_an_update_changes_only_the_given_fields_and_says_which(
    ambassadors: Ambassadors,
) -> None:
    before = (
        await ambassadors.sign_up(
            name="Kontaktperson Frivilligcenter",
            kind="association",
            organisation="Frivilligcenter Fredericia",
            website="frivilligcenter.example.dk",
            themes=[10],
            skills=["Frivillighed"],
            public=True,
            staff=True,
        )
    )["ambassador"]
    ambassador_id = before["id"]

    after = await ambassadors.request(
        Endpoints.UPDATE.subject,
        {
            "ambassador_id": ambassador_id,
            "description": "Formidler frivilligt arbejde.",
            "skills": ["Frivillighed", "Mad Lavning"],
        },
    )

    assert after["description"] == "Formidler frivilligt arbejde."
    assert after["skills"] == ["frivillighed", "mad-lavning"]
    untouched = {k: v for k, v in before.items() if k not in {"description", "skills"}}
    assert {k: after.get(k) for k in untouched} == untouched
    assert await ambassadors.show(ambassador_id) == after

    [updated] = await ambassadors.wait_for_events([ambassador_id], "profile_updated")
    assert updated.data["changed"] == ["description", "skills"]
    assert updated.data["status"] == "active"
    assert updated.data["organisation"] == "Frivilligcenter Fredericia"
    assert updated.data["skills"] == ["frivillighed", "mad-lavning"]

    # Sending what is already there changes nothing, so nothing is announced.
    same = await ambassadors.request(
        Endpoints.UPDATE.subject, {"ambassador_id": ambassador_id, "themes": [10]}
    )
    assert same == after
    other = (await ambassadors.sign_up(staff=True))["ambassador"]["id"]
    await ambassadors.wait_for_events([other], "activated")
    assert len(await ambassadors.events([ambassador_id], "profile_updated")) == 1


async def test_an_update_cannot_take_another_ambassadors_address_or_an_unknown_id(
    ambassadors: Ambassadors,
) -> None:
    taken = unique_email("taken")
    await ambassadors.sign_up(email=taken, staff=True)
    mine = (await ambassadors.sign_up(staff=True))["ambassador"]

    with pytest.raises(ServiceError) as conflict:
        await ambassadors.request(
            Endpoints.UPDATE.subject, {"ambassador_id": mine["id"], "email": taken.upper()}
        )
    assert conflict.value.code == ErrorCode.CONFLICT
    assert (await ambassadors.show(mine["id"]))["email"] == mine["email"]

    with pytest.raises(ServiceError) as missing:
        await ambassadors.request(
            Endpoints.UPDATE.subject, {"ambassador_id": "no-such-ambassador", "name": "Nogen"}
        )
    assert missing.value.code == ErrorCode.NOT_FOUND

    with pytest.raises(ServiceError) as invalid:
        await ambassadors.request(
            Endpoints.UPDATE.subject, {"ambassador_id": mine["id"], "email": "nope", "phone": "12"}
        )
    assert invalid.value.code == ErrorCode.VALIDATION_FAILED
    assert {d.field for d in invalid.value.error.details} == {"email", "phone"}


async def history(ambassadors: Ambassadors) -> dict[str, int]:
    """Active now, and activations and departures summed over the goals' months."""
    goals = await ambassadors.request(Endpoints.GOALS.subject, {})
    return {
        "active": goals["active"],
        "activated": sum(m["activated"] for m in goals["months"]),
        "left": sum(m["left"] for m in goals["months"]),
    }


async def test_a_withdrawn_ambassador_keeps_a_revoked_certificate_and_can_rejoin(
    ambassadors: Ambassadors,
) -> None:
    email = unique_email("rejoin")
    joined = (await ambassadors.sign_up(email=email, public=True, staff=True))["ambassador"]
    ambassador_id = joined["id"]
    old_code = joined["certificate"]["verification_code"]
    await ambassadors.wait_for_events([ambassador_id], "certificate_issued")

    left = await ambassadors.request(
        Endpoints.WITHDRAW.subject, {"ambassador_id": ambassador_id, "reason": "Flytter fra byen"}
    )
    assert left["status"] == "withdrawn"
    assert left["withdrawn_at"]
    assert left["certificate"]["revoked_at"]
    assert left["email"] == email  # withdrawal keeps the history; erasure removes it

    [withdrawn] = await ambassadors.wait_for_events([ambassador_id], "withdrawn")
    assert withdrawn.data["reason"] == "Flytter fra byen"

    verified = await ambassadors.request(Endpoints.VERIFY.subject, {"code": old_code})
    assert verified["genuine"] is True
    assert verified["valid"] is False
    assert verified["status"] == "revoked"

    with pytest.raises(ServiceError) as no_certificate:
        await ambassadors.request(Endpoints.CERTIFICATE.subject, {"ambassador_id": ambassador_id})
    assert no_certificate.value.code == ErrorCode.INVALID_STATE
    directory = await ambassadors.request(Endpoints.DIRECTORY.subject, {})
    assert ambassador_id not in {e["id"] for e in directory["entries"]}

    with pytest.raises(ServiceError) as twice:
        await ambassadors.request(Endpoints.WITHDRAW.subject, {"ambassador_id": ambassador_id})
    assert twice.value.code == ErrorCode.INVALID_STATE

    again = (await ambassadors.sign_up(email=email))["ambassador"]
    assert again["id"] == ambassador_id
    assert again["status"] == "pending"
    # Rejoining does not rewrite history: the first membership still counts in its months.
    assert await history(ambassadors) == {"active": 0, "activated": 1, "left": 1}
    signed = (await ambassadors.wait_for_events([ambassador_id], "signed_up", count=2))[-1]
    back = await ambassadors.request(
        Endpoints.CONFIRM.subject, {"token": confirmation_token(signed.data)}
    )
    assert back["status"] == "active"
    assert back["certificate"]["number"] == joined["certificate"]["number"]
    new_code = back["certificate"]["verification_code"]
    assert new_code != old_code

    assert (await ambassadors.request(Endpoints.VERIFY.subject, {"code": new_code}))[
        "valid"
    ] is True
    # The paper from the first membership stays revoked, and is still known as genuine.
    old = await ambassadors.request(Endpoints.VERIFY.subject, {"code": old_code})
    assert (old["genuine"], old["valid"]) == (True, False)

    page = await ambassadors.request(Endpoints.LIST.subject, {})
    assert page["total"] == 1
    assert len(await ambassadors.events([ambassador_id], "activated")) == 2
    assert await history(ambassadors) == {"active": 1, "activated": 2, "left": 1}
