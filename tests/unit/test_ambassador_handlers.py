"""The ambassadors service's commands and queries, each run by the kit the way the runtime
runs it (endpoint adapter, unit of work, audit), on a database in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from contracts.ambassadors import (
    Activated,
    AmbassadorView,
    Confirm,
    Endpoints,
    Erase,
    Erased,
    ListAmbassadors,
    ProfileUpdated,
    Register,
    ShowAmbassador,
    SignedUp,
    SignedUpAgain,
    SignUp,
    SignUpReceived,
    Status,
    UpdateProfile,
    Withdraw,
    Withdrawn,
)
from contracts.errors import ErrorCode
from services.ambassadors.app import build
from services.ambassadors.context import Context
from services.ambassadors.settings import AmbassadorsSettings
from services.runtime import tokens
from services.runtime.testing import ServiceHarness

SECRET = "ambassadors-handler-tests-0123456789abcdef"


def settings() -> AmbassadorsSettings:
    return AmbassadorsSettings(_env_file=None, ambassadors_token_secret=SECRET, demo_import=False)


@pytest.fixture
async def service() -> AsyncIterator[tuple[ServiceHarness, Context]]:
    yield await ServiceHarness.start(build, settings())


ANNA: dict[str, object] = {
    "name": "Anna Hansen",
    "email": "anna@example.org",
    "kind": "citizen",
    "themes": [3],
    "consent": True,
}


def anna(**changes: object) -> SignUp:
    """Anna signing up herself."""
    return SignUp.model_validate({**ANNA, **changes})


def entered(**changes: object) -> Register:
    """Anna entered by staff."""
    return Register.model_validate({**ANNA, **changes})


async def signed_up(h: ServiceHarness, request: SignUp) -> AmbassadorView:
    """Sign up as anyone may (the answer is the same for every address), then look the
    ambassador up as staff would, by the id the ``signed_up`` event carries."""
    assert await h.call(Endpoints.SIGN_UP, request, actor="public") == SignUpReceived()
    ambassador_id = h.emitted_of(SignedUp)[-1].ambassador_id
    return await h.call(Endpoints.SHOW, ShowAmbassador(ambassador_id=ambassador_id))


def confirmation_token(event: SignedUp) -> str:
    """The token the newsletter service would put in the confirmation mail."""
    assert event.confirmation_nonce is not None and event.token_expires_at is not None
    signer = tokens.Signer(SECRET, tokens.AMBASSADOR_CONFIRMATION)
    return signer.sign(
        event.ambassador_id, event.confirmation_nonce, tokens.expiry(event.token_expires_at)
    )


async def test_a_self_sign_up_waits_for_its_confirmation_and_carries_no_token(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    pending = await signed_up(h, anna())
    assert pending.status == Status.PENDING
    [signed] = h.emitted_of(SignedUp)
    assert signed.ambassador_id == pending.id
    assert signed.confirmation_nonce
    assert "confirmation_token" not in signed.model_dump()
    assert h.emitted_of(Activated) == []


async def test_the_confirmation_link_activates_once_and_then_says_already_confirmed(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.call(Endpoints.SIGN_UP, anna())
    token = confirmation_token(h.emitted_of(SignedUp)[0])
    active = await h.call(Endpoints.CONFIRM, Confirm(token=token))
    assert active.status == Status.ACTIVE and active.certificate is not None
    [activated] = h.emitted_of(Activated)
    assert activated.certificate.number == active.certificate.number
    again = await h.fails(Endpoints.CONFIRM, Confirm(token=token))
    assert again.code == ErrorCode.INVALID_STATE


async def test_signing_up_again_replaces_the_link(service: tuple[ServiceHarness, Context]) -> None:
    h, _ = service
    await h.call(Endpoints.SIGN_UP, anna())
    first = confirmation_token(h.emitted_of(SignedUp)[0])
    assert await h.call(Endpoints.SIGN_UP, anna()) == SignUpReceived()
    second = confirmation_token(h.emitted_of(SignedUp)[1])
    assert (await h.fails(Endpoints.CONFIRM, Confirm(token=first))).code == ErrorCode.INVALID_TOKEN
    assert (await h.call(Endpoints.CONFIRM, Confirm(token=second))).status == Status.ACTIVE


async def test_an_expired_link_is_refused(service: tuple[ServiceHarness, Context]) -> None:
    h, _ = service
    await h.call(Endpoints.SIGN_UP, anna())
    token = confirmation_token(h.emitted_of(SignedUp)[0])
    h.clock.travel(timedelta(hours=73))
    assert (await h.fails(Endpoints.CONFIRM, Confirm(token=token))).code == ErrorCode.TOKEN_EXPIRED


async def test_a_forged_or_foreign_token_confirms_nobody(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    pending = await signed_up(h, anna())
    signed = h.emitted_of(SignedUp)[0]
    assert signed.confirmation_nonce is not None
    other_key = tokens.Signer("another-secret-0123456789abcdef0123", tokens.AMBASSADOR_CONFIRMATION)
    forged = other_key.sign(pending.id, signed.confirmation_nonce, 2_000_000_000)
    for token in (forged, "x" * 40):
        assert (
            await h.fails(Endpoints.CONFIRM, Confirm(token=token))
        ).code == ErrorCode.INVALID_TOKEN


async def test_a_staff_sign_up_is_active_at_once_and_announced_twice(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    result = await h.call(Endpoints.REGISTER, entered())
    assert result.ambassador.status == Status.ACTIVE
    signed, activated = h.emitted
    assert isinstance(signed, SignedUp) and isinstance(activated, Activated)
    assert activated.causation_id == signed.event_id
    assert signed.confirmation_nonce is None


async def test_ten_sign_ups_of_one_address_send_at_most_the_days_confirmations(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, ctx = service
    for n in range(10):
        await h.call(Endpoints.SIGN_UP, anna(name=f"Fremmed {n}"))
    signed = h.emitted_of(SignedUp)
    assert len(signed) == ctx.settings.confirmation_mails_per_day == 3
    # The first name typed for the address stays; no later one is ever mailed.
    assert {event.name for event in signed} == {"Fremmed 0"}
    [stored] = h.db.documents("ambassadors")
    assert stored["profile"]["name"] == "Fremmed 0"


async def test_the_answer_never_tells_a_known_address_from_an_unknown_one(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    answers = [await h.call(Endpoints.SIGN_UP, anna(email="ny@example.org"), actor="public")]
    await h.call(Endpoints.REGISTER, entered())
    # Anna is active: her address signed up again only tells her so (no new confirmation).
    answers.append(await h.call(Endpoints.SIGN_UP, anna(name="Fremmed"), actor="public"))
    assert answers == [SignUpReceived(), SignUpReceived()]
    [again] = h.emitted_of(SignedUpAgain)
    assert again.model_dump().keys() >= {"ambassador_id"} and "email" not in again.model_dump()
    [anna_doc] = [
        d for d in h.db.documents("ambassadors") if d["profile"]["email"] == ANNA["email"]
    ]
    assert anna_doc["profile"]["name"] == "Anna Hansen"


async def test_a_self_sign_up_cannot_make_itself_a_staff_sign_up(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    # What a caller of the public subject might send: the field does not exist there.
    result = await signed_up(h, SignUp.model_validate({**ANNA, "staff": True}))
    assert result.status == Status.PENDING
    assert [type(event) for event in h.emitted] == [SignedUp]


async def test_an_active_address_cannot_sign_up_again_and_nothing_changes(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.call(Endpoints.REGISTER, entered())
    before = h.db.documents("ambassadors")
    error = await h.fails(Endpoints.REGISTER, entered(name="Anna Anden"))
    assert error.code == ErrorCode.CONFLICT
    assert h.db.documents("ambassadors") == before
    assert len(h.emitted) == 2


async def test_a_profile_change_is_announced_once_with_what_changed(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    created = (await h.call(Endpoints.REGISTER, entered())).ambassador
    view = await h.call(
        Endpoints.UPDATE, UpdateProfile(ambassador_id=created.id, description="Laver mad")
    )
    assert view.description == "Laver mad"
    [updated] = h.emitted_of(ProfileUpdated)
    assert updated.changed == ["description"]
    await h.call(Endpoints.UPDATE, UpdateProfile(ambassador_id=created.id, description="Laver mad"))
    assert len(h.emitted_of(ProfileUpdated)) == 1  # nothing changed: nothing announced


async def test_availability_for_networks_is_kept_announced_and_cleared_by_null(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    created = (
        await h.call(Endpoints.REGISTER, entered(networks_at_once=2, paused_until="2027-01-31"))
    ).ambassador
    assert (created.networks_at_once, created.paused_until) == (2, date(2027, 1, 31))
    [activated] = h.emitted_of(Activated)
    assert (activated.networks_at_once, activated.paused_until) == (2, date(2027, 1, 31))
    # Sent as null, both are lifted; left out, they stay.
    kept = await h.call(Endpoints.UPDATE, UpdateProfile(ambassador_id=created.id, themes=[3, 5]))
    assert (kept.networks_at_once, kept.paused_until) == (2, date(2027, 1, 31))
    lifted = await h.call(
        Endpoints.UPDATE,
        UpdateProfile.model_validate(
            {"ambassador_id": created.id, "networks_at_once": None, "paused_until": None}
        ),
    )
    assert (lifted.networks_at_once, lifted.paused_until) == (None, None)
    updated = h.emitted_of(ProfileUpdated)[-1]
    assert updated.changed == ["networks_at_once", "paused_until"]
    assert (updated.networks_at_once, updated.paused_until) == (None, None)


def test_a_limit_outside_one_to_ten_networks_is_refused_by_the_contract() -> None:
    for bad in (0, 11, "many"):
        with pytest.raises(ValidationError) as refused:
            entered(networks_at_once=bad)
        assert [e["loc"] for e in refused.value.errors()] == [("networks_at_once",)]
    with pytest.raises(ValidationError):
        entered(paused_until="31/31/2027")


async def test_withdraw_and_erase(service: tuple[ServiceHarness, Context]) -> None:
    h, _ = service
    created = (await h.call(Endpoints.REGISTER, entered())).ambassador
    withdrawn = await h.call(
        Endpoints.WITHDRAW, Withdraw(ambassador_id=created.id, reason="Flytter")
    )
    assert withdrawn.status == Status.WITHDRAWN
    assert h.emitted_of(Withdrawn)[0].reason == "Flytter"
    erased = await h.call(Endpoints.ERASE, Erase(ambassador_id=created.id))
    assert erased.status == Status.ERASED and erased.name is None and erased.email is None
    assert [e.ambassador_id for e in h.emitted_of(Erased)] == [created.id]
    [doc] = h.db.documents("ambassadors")
    assert "anna@example.org" not in repr(doc)
    # The runtime's erasure: the person's events leave the stream once published.
    [erasure] = h.db.documents("erasures")
    assert erasure["_id"] == created.id and erasure["keep_subjects"] == [Erased.subject]


async def test_every_command_leaves_an_audit_record_with_ids_only(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    created = (await h.call(Endpoints.REGISTER, entered(), actor="staff:jens")).ambassador
    await h.fails(Endpoints.WITHDRAW, Withdraw(ambassador_id="nobody"))
    await h.call(Endpoints.LIST, ListAmbassadors())  # a query: not audited
    trail = h.audit_trail()
    assert [(r["actor"], r["command"], r["targets"], r["outcome"]) for r in trail] == [
        ("staff:jens", "ambassadors.cmd.register", [created.id], "ok"),
        ("operator:tests", "ambassadors.cmd.withdraw", ["nobody"], "not_found"),
    ]
    assert "anna" not in repr(trail).lower()


async def test_a_command_without_an_actor_is_refused_and_changes_nothing(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    error = await h.fails(Endpoints.SIGN_UP, anna(), actor=None)
    assert error.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in error.error.details] == ["Samskab-Actor"]
    assert h.db.documents("ambassadors") == [] and h.emitted == []
