"""The ambassador network's rules, without any I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.ambassadors import CoreArea, Kind, SignUp, Source, Status
from contracts.errors import ErrorCode, ServiceError
from services.ambassadors import domain
from services.ambassadors.domain import DomainValidationError, GoalRecord
from services.runtime import tokens

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "ambassador-rules-tests-0123456789abcdef"


def fields(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "  Anna   Hansen ",
        "email": "Anna.Hansen@Example.ORG",
        "kind": Kind.CITIZEN,
    }
    return {**base, **overrides}


def failing_fields(exc: pytest.ExceptionInfo[ServiceError]) -> set[str]:
    return {d.field for d in exc.value.error.details}


def test_a_profile_is_normalised() -> None:
    profile = domain.validate_profile(
        fields(
            website="www.frivillig.dk/om",
            skills=["Mad  Lavning", "madlavning", " IT "],
            themes=[3, 1, 3],
            core_areas=[CoreArea.HOUSING],
            phone="+45 12 34 56 78",
        )
    )
    assert profile.name == "Anna Hansen"
    assert profile.email == "Anna.Hansen@example.org"
    assert domain.email_key(profile.email) == "anna.hansen@example.org"
    assert profile.website == "https://www.frivillig.dk/om"
    assert profile.skills == ("it", "mad-lavning", "madlavning")
    assert profile.themes == (1, 3)
    assert profile.phone == "+45 12 34 56 78"


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(DomainValidationError) as exc:
        domain.validate_sign_up(
            fields(email="not-an-address", phone="12", website="http://localhost", kind="company"),
            consent=False,
        )
    assert exc.value.code == ErrorCode.VALIDATION_FAILED
    assert failing_fields(exc) == {"consent", "email", "phone", "website", "organisation"}


@pytest.mark.parametrize("kind", [Kind.ASSOCIATION, Kind.COMPANY, Kind.MUNICIPAL_UNIT, Kind.OTHER])
def test_organisations_need_an_organisation_name(kind: Kind) -> None:
    with pytest.raises(DomainValidationError) as exc:
        domain.validate_profile(fields(kind=kind, organisation="   "))
    assert failing_fields(exc) == {"organisation"}


@pytest.mark.parametrize("kind", [Kind.CITIZEN, Kind.VOLUNTEER])
def test_private_persons_need_no_organisation(kind: Kind) -> None:
    assert domain.validate_profile(fields(kind=kind)).organisation is None


def test_payload_limits_are_enforced_at_the_boundary() -> None:
    with pytest.raises(ValidationError) as exc:
        SignUp.model_validate(
            {
                "name": "x" * 201,
                "email": "a@b.dk",
                "kind": "citizen",
                "consent": True,
                "themes": [13],
                "skills": ["s"] * 21,
                "description": "d" * 1001,
            }
        )
    failing = {".".join(str(p) for p in e["loc"][:1]) for e in exc.value.errors()}
    assert failing == {"name", "themes", "skills", "description"}


def test_an_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValidationError):
        SignUp.model_validate({"name": "A", "email": "a@b.dk", "kind": "alien", "consent": True})


def test_control_characters_and_markup_survive_only_as_text() -> None:
    profile = domain.validate_profile(fields(name="Anna\x00 <b>Hansen</b>"))
    assert profile.name == "Anna <b>Hansen</b>"  # templates escape it; nothing is lost


def self_sign_up(
    existing: domain.Ambassador | None = None, at: datetime = NOW, **changes: object
) -> domain.SignUpOutcome:
    return domain.sign_up(
        domain.validate_profile(fields(**changes)),
        staff=False,
        source=None,
        consent_version="2026-11",
        now=at,
        token_ttl=timedelta(hours=72),
        existing=existing,
        confirmations_per_day=3,
    )


def confirmation_token(a: domain.Ambassador) -> str:
    """The token the confirmation mail carries (signed by the newsletter service)."""
    assert a.confirmation_nonce is not None and a.token_expires_at is not None
    signer = tokens.Signer(SECRET, tokens.AMBASSADOR_CONFIRMATION)
    return signer.sign(a.id, a.confirmation_nonce, tokens.expiry(a.token_expires_at))


def test_a_self_sign_up_is_pending_with_a_nonce_and_stores_no_token() -> None:
    outcome = self_sign_up()
    a = outcome.ambassador
    assert a.status == Status.PENDING and a.source == Source.SELF
    # What the link is made of is kept; the token itself (signed) is stored nowhere.
    assert a.confirmation_nonce and a.token_hash is None
    assert confirmation_token(a) not in a.model_dump_json()
    assert a.token_expires_at == NOW + timedelta(hours=72)
    assert a.consent_version == "2026-11" and a.consented_at == NOW
    assert a.consents == (domain.Consent(version="2026-11", given_at=NOW),)


def test_a_repeated_sign_up_reissues_the_token() -> None:
    first = self_sign_up()
    again = self_sign_up(existing=first.ambassador)
    assert again.token_reissued
    assert again.ambassador.id == first.ambassador.id
    assert again.ambassador.confirmation_nonce != first.ambassador.confirmation_nonce
    assert confirmation_token(again.ambassador) != confirmation_token(first.ambassador)
    # The first link's nonce no longer confirms.
    with pytest.raises(ServiceError) as old:
        domain.check_confirmation(again.ambassador, first.ambassador.confirmation_nonce, NOW)
    assert old.value.code == ErrorCode.INVALID_TOKEN


def test_a_repeated_self_sign_up_changes_nothing_the_address_owner_gave() -> None:
    first = self_sign_up()
    again = self_sign_up(existing=first.ambassador, name="Nogen Andet", phone="12345678")
    assert again.ambassador.profile == first.ambassador.profile
    assert again.ambassador.consents == first.ambassador.consents


def test_an_address_gets_at_most_its_daily_confirmation_mails() -> None:
    outcome = self_sign_up()
    mailed = [outcome.mail]
    for minute in range(1, 10):
        outcome = self_sign_up(existing=outcome.ambassador, at=NOW + timedelta(minutes=minute))
        mailed.append(outcome.mail)
    assert mailed == [True, True, True] + [False] * 7
    # Beyond the limit nothing changes: the last link sent still works.
    assert outcome.ambassador.confirmation_nonce is not None
    tomorrow = self_sign_up(existing=outcome.ambassador, at=NOW + timedelta(days=1, minutes=3))
    assert tomorrow.mail and tomorrow.ambassador.confirmation_nonce != (
        outcome.ambassador.confirmation_nonce
    )


def test_a_self_sign_up_of_an_active_address_only_tells_its_owner() -> None:
    active = activated(self_sign_up().ambassador)
    again = self_sign_up(existing=active, name="Fremmed")
    assert again.already_active and again.mail
    assert again.ambassador.profile == active.profile
    assert again.ambassador.status == Status.ACTIVE


def test_staff_are_told_an_active_address_is_taken() -> None:
    active = activated(self_sign_up().ambassador)
    with pytest.raises(ServiceError) as exc:
        domain.sign_up(
            domain.validate_profile(fields()),
            staff=True,
            source=None,
            consent_version="2026-11",
            now=NOW,
            token_ttl=timedelta(hours=72),
            existing=active,
        )
    assert exc.value.code == ErrorCode.CONFLICT


def activated(a: domain.Ambassador) -> domain.Ambassador:
    cert = domain.new_certificate(a.id, domain.certificate_number(2026, 7), "ABCD-EFGH", NOW)
    return domain.activate(a, now=NOW, certificate=cert)


def test_a_token_confirms_until_it_expires() -> None:
    pending = self_sign_up().ambassador
    nonce = pending.confirmation_nonce
    assert domain.check_confirmation(pending, nonce, NOW + timedelta(hours=71)) is pending
    with pytest.raises(ServiceError) as exc:
        domain.check_confirmation(pending, nonce, NOW + timedelta(hours=73))
    assert exc.value.code == ErrorCode.TOKEN_EXPIRED
    for unknown in (None, "another-nonce"):
        with pytest.raises(ServiceError) as exc:
            domain.check_confirmation(pending, unknown, NOW)
        assert exc.value.code == ErrorCode.INVALID_TOKEN
    with pytest.raises(ServiceError) as exc:
        domain.check_confirmation(None, nonce, NOW)
    assert exc.value.code == ErrorCode.INVALID_TOKEN


def test_activation_issues_a_certificate_and_spends_the_token() -> None:
    pending = self_sign_up().ambassador
    active = activated(pending)
    assert active.status == Status.ACTIVE and active.activated_at == NOW
    assert active.confirmation_nonce is None and active.token_expires_at is None
    assert active.token_hash is None
    assert active.certificate and active.certificate.number == "FRC-2026-000007"
    with pytest.raises(ServiceError):
        domain.check_token(active, NOW)
    # A second click on the spent link: already confirmed, not "invalid".
    assert active.confirmed_nonce == pending.confirmation_nonce
    with pytest.raises(ServiceError) as again:
        domain.check_confirmation(active, pending.confirmation_nonce, NOW)
    assert again.value.code == ErrorCode.INVALID_STATE


def test_withdrawal_keeps_history_and_revokes_the_certificate() -> None:
    active = activated(self_sign_up().ambassador)
    later = NOW + timedelta(days=30)
    gone = domain.withdraw(active, now=later, reason=" moved\taway ")
    assert gone.status == Status.WITHDRAWN and gone.withdrawn_at == later
    assert gone.profile == active.profile and gone.activated_at == NOW
    assert gone.certificate and gone.certificate.revoked_at == later
    assert gone.withdraw_reason == "moved away"


def test_a_withdrawn_ambassador_can_rejoin_on_the_same_record() -> None:
    gone = domain.withdraw(activated(self_sign_up().ambassador), now=NOW, reason=None)
    back = self_sign_up(existing=gone)
    assert back.ambassador.id == gone.id and back.ambassador.status == Status.PENDING
    assert not back.token_reissued
    # The consent of the first membership stays on record; the rejoin adds its own.
    assert [c.version for c in back.ambassador.consents] == ["2026-11", "2026-11"]


def test_erasure_removes_every_personal_field_but_keeps_the_goal_facts() -> None:
    active = activated(
        domain.sign_up(
            domain.validate_profile(
                fields(themes=[2], phone="12345678", description="Jeg hjælper gerne")
            ),
            staff=True,
            source=None,
            consent_version="v",
            now=NOW,
            token_ttl=timedelta(hours=1),
            existing=None,
        ).ambassador
    )
    erased = domain.erase(active, now=NOW)
    dumped = erased.model_dump_json()
    for personal in ("Anna", "Hansen", "example.org", "12345678", "hjælper"):
        assert personal not in dumped
    assert erased.status == Status.ERASED and erased.email_key is None
    assert erased.kind == Kind.CITIZEN and erased.themes == (2,)
    assert erased.activated_at == NOW and erased.left_at == NOW
    with pytest.raises(ServiceError):
        domain.erase(erased, now=NOW)


def test_an_update_reports_what_changed() -> None:
    active = activated(self_sign_up().ambassador)
    updated, changed = domain.update_profile(active, {"themes": [4], "name": "Anna Hansen"})
    assert changed == ["themes"]
    assert updated.themes == (4,)
    with pytest.raises(DomainValidationError):
        domain.update_profile(active, {"kind": Kind.COMPANY})


def test_verification_codes_are_unambiguous_and_forgiving_to_type() -> None:
    code = domain.new_verification_code()
    assert len(code) == 9 and code[4] == "-"
    assert not set(code.replace("-", "")) & set("01ILOU")
    assert domain.normalise_code(code.lower().replace("-", " ")) == code


def record(kind: Kind, activated_at: datetime, left_at: datetime | None = None) -> GoalRecord:
    status = Status.ACTIVE if left_at is None else Status.WITHDRAWN
    return GoalRecord(
        status=status,
        kind=kind,
        themes=[1],
        core_areas=["housing"],
        activated_at=activated_at,
        left_at=left_at,
    )


def test_goals_count_active_ambassadors_and_the_citizen_share_month_by_month() -> None:
    records = [
        record(Kind.CITIZEN, datetime(2026, 9, 5, tzinfo=UTC)),
        record(Kind.COMPANY, datetime(2026, 9, 20, tzinfo=UTC)),
        record(Kind.ASSOCIATION, datetime(2026, 10, 1, tzinfo=UTC)),
        record(Kind.CITIZEN, datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)),
        GoalRecord(Status.PENDING, Kind.CITIZEN, [], [], None, None),
    ]
    goals = domain.compute_goals(records, target=150, citizen_share_target=0.2, now=NOW)
    assert goals.active == 3 and goals.citizens == 1
    assert goals.citizen_share == pytest.approx(1 / 3, abs=1e-4)
    assert goals.progress == pytest.approx(3 / 150, abs=1e-4)
    assert goals.pending == 1 and goals.withdrawn == 1
    assert goals.by_kind["company"] == 1 and goals.by_theme["1"] == 3
    assert [(m.month, m.active, m.citizens, m.activated, m.left) for m in goals.months] == [
        ("2026-09", 2, 1, 2, 0),
        ("2026-10", 4, 2, 2, 0),
        ("2026-11", 3, 1, 0, 1),
    ]


def test_goals_of_an_empty_network() -> None:
    goals = domain.compute_goals([], target=150, citizen_share_target=0.2, now=NOW)
    assert goals.active == 0 and goals.citizen_share == 0 and goals.months == []


def test_a_confirmation_token_never_looks_like_a_command_line_option() -> None:
    signer = tokens.Signer(SECRET, tokens.AMBASSADOR_CONFIRMATION)
    expires = tokens.expiry(NOW)
    made = [signer.sign(f"-{n:x}", tokens.new_nonce(), expires) for n in range(2000)]
    assert not any(token.startswith("-") for token in made)
