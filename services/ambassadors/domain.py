"""Pure rules of the ambassador network: validation, the life of an ambassador, goals.

No I/O here: store.py loads and saves, handlers.py orchestrates.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.ambassadors import (
    THEME_LABELS,
    CoreArea,
    Goals,
    Kind,
    MonthPoint,
    Source,
    Status,
    certificate_object_name,
    normalise_phone,
    normalise_skill,
    organisation_required,
)
from contracts.errors import ErrorCode, FieldError, ServiceError
from contracts.text import (
    clean_line,
    clean_text,
    normalise_email,
    normalise_name,
    normalise_website,
)
from services.runtime.tokens import new_nonce

# The 12 themes of the 2018 strategy, each filmed by citizens.
THEMES = THEME_LABELS

# Crockford's base32 without look-alikes: codes are read aloud and typed from paper.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
CERTIFICATE_PREFIX = "FRC"


class DomainValidationError(ServiceError):
    def __init__(self, details: list[FieldError]) -> None:
        fields = ", ".join(d.field for d in details)
        super().__init__(ErrorCode.VALIDATION_FAILED, f"invalid fields: {fields}", details)


def _fail(code: ErrorCode, message: str) -> ServiceError:
    return ServiceError(code, message)


# ---------------------------------------------------------------- normalising one field


def email_key(email: str) -> str:
    """The form uniqueness is checked on: mailbox providers ignore case in practice."""
    return email.casefold()


# ---------------------------------------------------------------- the profile


class Profile(BaseModel):
    """A validated, normalised profile."""

    model_config = ConfigDict(frozen=True)

    name: str
    email: str
    phone: str | None = None
    kind: Kind
    organisation: str | None = None
    website: str | None = None
    description: str | None = None
    themes: tuple[int, ...] = ()
    core_areas: tuple[CoreArea, ...] = ()
    skills: tuple[str, ...] = ()
    public: bool = False
    networks_at_once: int | None = None
    paused_until: date | None = None

    @property
    def display_name(self) -> str:
        return self.organisation or self.name


def validate_profile(fields: dict[str, Any]) -> Profile:
    """Normalise every field and report every problem at once, each named by its field."""
    errors: list[FieldError] = []
    out: dict[str, Any] = {}

    def check(field: str, fn: Any) -> None:
        try:
            out[field] = fn()
        except ValueError as exc:
            errors.append(FieldError(field=field, message=str(exc)))

    def optional(field: str, fn: Any) -> Any:
        raw = fields.get(field)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return fn(raw)

    kind = Kind(fields["kind"])
    out["kind"] = kind
    check("name", lambda: normalise_name(str(fields.get("name") or "")))
    check("email", lambda: normalise_email(str(fields.get("email") or "")))
    check("phone", lambda: optional("phone", normalise_phone))
    check("organisation", lambda: optional("organisation", normalise_name))
    check("website", lambda: optional("website", normalise_website))
    check("description", lambda: optional("description", clean_text))
    check("themes", lambda: tuple(sorted(set(fields.get("themes") or ()))))
    check("core_areas", lambda: tuple(sorted(set(fields.get("core_areas") or ()))))
    check(
        "skills",
        lambda: tuple(sorted({t for t in map(normalise_skill, fields.get("skills") or ()) if t})),
    )
    out["public"] = bool(fields.get("public", False))
    # Their ranges are the contract's; a stored profile of an older release has neither.
    out["networks_at_once"] = fields.get("networks_at_once")
    out["paused_until"] = fields.get("paused_until")
    missing_organisation = organisation_required(kind, out.get("organisation"))
    if missing_organisation and "organisation" not in {e.field for e in errors}:
        errors.append(FieldError(field="organisation", message=missing_organisation))
    if errors:
        raise DomainValidationError(errors)
    return Profile(**out)


def validate_sign_up(
    fields: dict[str, Any],
    consent: bool,
    *,
    consent_read: str | None = None,
    consent_current: str | None = None,
) -> Profile:
    """A sign-up's profile, with a missing consent reported alongside every bad field.

    ``consent_read`` is the version of the text the person was shown, when the sign-up
    says; consent to an older text than ``consent_current`` is not consent to today's.
    """
    errors: list[FieldError] = []
    if not consent:
        errors.append(
            FieldError(field="consent", message="consent to store the profile is required")
        )
    elif consent_read is not None and consent_read != consent_current:
        errors.append(
            FieldError(
                field="consent_version",
                message=f"the consent text is now version {consent_current}: read it again",
            )
        )
    try:
        profile = validate_profile(fields)
    except DomainValidationError as exc:
        raise DomainValidationError(errors + list(exc.error.details)) from None
    if errors:
        raise DomainValidationError(errors)
    return profile


# ---------------------------------------------------------------- tokens and codes


def new_verification_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_code(code: str) -> str:
    raw = re.sub(r"[\s\-]", "", code).upper().replace("O", "0").replace("I", "1")
    return f"{raw[:4]}-{raw[4:]}" if len(raw) == 8 else raw


def certificate_number(year: int, serial: int) -> str:
    return f"{CERTIFICATE_PREFIX}-{year}-{serial:06d}"


def certificate_with_code(ambassador: Ambassador, code: str) -> Certificate | None:
    """The ambassador's current or past certificate with this verification code."""
    for certificate in (ambassador.certificate, *ambassador.past_certificates):
        if certificate is not None and certificate.verification_code == code:
            return certificate
    return None


# ---------------------------------------------------------------- the ambassador


class Certificate(BaseModel):
    number: str
    verification_code: str
    issued_at: datetime
    object_name: str
    revoked_at: datetime | None = None
    digest: str | None = None
    size: int | None = None
    rendered_at: datetime | None = None


class Membership(BaseModel):
    """One stretch of time an ambassador was active."""

    activated_at: datetime
    left_at: datetime


class Consent(BaseModel):
    """One accepted consent text: which version, when. Nothing personal: kept through erasure
    as the record that the profile was stored with consent."""

    version: str
    given_at: datetime


class Ambassador(BaseModel):
    """An ambassador as the service stores it."""

    id: str
    status: Status
    source: Source
    profile: Profile | None
    email_key: str | None
    consent_version: str | None = None
    consented_at: datetime | None = None
    # Every consent given, oldest first (a rejoin adds one).
    consents: tuple[Consent, ...] = ()
    signed_up_at: datetime
    activated_at: datetime | None = None
    withdrawn_at: datetime | None = None
    withdraw_reason: str | None = None
    erased_at: datetime | None = None
    # The pending sign-up's confirmation: the nonce its (signed) link carries, and until
    # when the link works. Signing up again replaces the nonce: the older link stops working.
    confirmation_nonce: str | None = None
    token_expires_at: datetime | None = None
    # When confirmation mails were asked for in the last day: a stranger repeating the
    # sign-up cannot flood the address (see sign_up).
    confirmations_asked: tuple[datetime, ...] = ()
    # The nonce of the link that confirmed the address, so that a second click on it is
    # told "already confirmed" rather than "not valid".
    confirmed_nonce: str | None = None
    # What older releases stored instead: the hashes of random tokens.
    token_hash: str | None = None
    confirmed_token_hash: str | None = None
    certificate: Certificate | None = None
    # Certificates of earlier memberships (revoked): their paper still verifies as genuine.
    past_certificates: tuple[Certificate, ...] = ()
    # Earlier memberships of someone who left and rejoined: the goals' history keeps them.
    earlier_memberships: tuple[Membership, ...] = ()
    # Kept through erasure so goal history stays true; none of it identifies a person.
    kind: Kind
    themes: tuple[int, ...] = ()
    core_areas: tuple[CoreArea, ...] = ()

    @property
    def left_at(self) -> datetime | None:
        return self.withdrawn_at or self.erased_at


@dataclass(frozen=True)
class SignUpOutcome:
    ambassador: Ambassador
    token_reissued: bool = False
    # False when the address had its day's confirmation mails: nothing is sent.
    mail: bool = True
    # A self sign-up with an active ambassador's address: its owner is told, that is all.
    already_active: bool = False


CONFIRMATIONS_WINDOW = timedelta(days=1)


def sign_up(
    profile: Profile,
    *,
    staff: bool,
    source: Source | None,
    consent_version: str,
    now: datetime,
    token_ttl: timedelta,
    existing: Ambassador | None,
    confirmations_per_day: int = 3,
) -> SignUpOutcome:
    """A new sign-up, or the right answer to a repeated one.

    - same address pending, self sign-up again: a fresh link replaces the old one, and
      nothing else changes (anyone may type the address: what its owner gave stays), at
      most ``confirmations_per_day`` times a day; beyond that no mail is sent;
    - same address withdrawn: the person rejoins on the same record;
    - same address active: staff are told it is taken (a conflict); a self sign-up
      changes nothing, and the owner is told (within the same daily limit).
    """
    if existing is not None and not staff and existing.status in (Status.ACTIVE, Status.PENDING):
        active = existing.status == Status.ACTIVE
        asked = tuple(t for t in existing.confirmations_asked if t > now - CONFIRMATIONS_WINDOW)
        if len(asked) >= confirmations_per_day:
            return SignUpOutcome(
                ambassador=existing, token_reissued=not active, mail=False, already_active=active
            )
        if active:
            told = existing.model_copy(update={"confirmations_asked": (*asked, now)})
            return SignUpOutcome(ambassador=told, already_active=True)
        again = existing.model_copy(
            update={
                "confirmation_nonce": new_nonce(),
                "token_expires_at": now + token_ttl,
                "confirmations_asked": (*asked, now),
            }
        )
        return SignUpOutcome(ambassador=again, token_reissued=True)
    if existing is not None and existing.status == Status.ACTIVE:
        raise ServiceError(
            ErrorCode.CONFLICT,
            "an active ambassador already has this e-mail address",
            [FieldError(field="email", message="already registered")],
        )
    origin = source or (Source.STAFF if staff else Source.SELF)
    nonce = None if staff else new_nonce()
    base = existing.model_copy() if existing is not None else None
    earlier = base.earlier_memberships if base else ()
    if base is not None and base.activated_at is not None and base.left_at is not None:
        # A withdrawn ambassador rejoins: the membership that ended stays in the history.
        earlier = (*earlier, Membership(activated_at=base.activated_at, left_at=base.left_at))
    ambassador = Ambassador(
        id=base.id if base else uuid.uuid4().hex,
        status=Status.PENDING,
        source=origin,
        profile=profile,
        email_key=email_key(profile.email),
        consent_version=consent_version,
        consented_at=now,
        consents=(*(base.consents if base else ()), Consent(version=consent_version, given_at=now)),
        signed_up_at=base.signed_up_at if base else now,
        kind=profile.kind,
        themes=profile.themes,
        core_areas=profile.core_areas,
        certificate=base.certificate if base else None,
        past_certificates=base.past_certificates if base else (),
        earlier_memberships=earlier,
        confirmation_nonce=nonce,
        token_expires_at=now + token_ttl if nonce else None,
        confirmations_asked=(now,) if nonce else (),
    )
    return SignUpOutcome(ambassador=ambassador)


def check_confirmation(
    ambassador: Ambassador | None, nonce: str | None, now: datetime
) -> Ambassador:
    """The pending ambassador a genuine confirmation link (its ambassador and nonce) is for,
    if the link still confirms."""
    if ambassador is not None and nonce is not None:
        if ambassador.confirmation_nonce == nonce:
            return check_token(ambassador, now)
        if ambassador.confirmed_nonce == nonce:
            return check_token(None, now, confirmed=ambassador)
    return check_token(None, now)


def check_token(
    ambassador: Ambassador | None, now: datetime, *, confirmed: Ambassador | None = None
) -> Ambassador:
    """The pending ambassador ``ambassador`` whose link this is, if it still confirms.

    ``confirmed`` is the ambassador this link already confirmed, if any.
    """
    if ambassador is None and confirmed is not None and confirmed.status == Status.ACTIVE:
        raise _fail(
            ErrorCode.INVALID_STATE,
            "this e-mail address is already confirmed: the ambassador is active",
        )
    if ambassador is None or ambassador.status != Status.PENDING:
        raise _fail(ErrorCode.INVALID_TOKEN, "the confirmation link is not valid")
    if ambassador.token_expires_at is None or ambassador.token_expires_at < now:
        raise _fail(
            ErrorCode.TOKEN_EXPIRED,
            "the confirmation link has expired; sign up again to get a new one",
        )
    return ambassador


def activate(ambassador: Ambassador, *, now: datetime, certificate: Certificate) -> Ambassador:
    if ambassador.status != Status.PENDING:
        raise _fail(ErrorCode.INVALID_STATE, f"the ambassador is {ambassador.status.value}")
    past = ambassador.past_certificates
    previous = ambassador.certificate
    if previous is not None and previous.verification_code != certificate.verification_code:
        # Rejoining: the old paper stays revoked, and verifiable as such.
        past = (*past, previous.model_copy(update={"revoked_at": previous.revoked_at or now}))
    return ambassador.model_copy(
        update={
            "past_certificates": past,
            "status": Status.ACTIVE,
            "activated_at": now,
            "withdrawn_at": None,
            "withdraw_reason": None,
            "confirmation_nonce": None,
            "token_expires_at": None,
            "confirmed_nonce": ambassador.confirmation_nonce,
            "token_hash": None,
            "confirmed_token_hash": ambassador.token_hash,
            "certificate": certificate,
        }
    )


def new_certificate(ambassador_id: str, number: str, code: str, now: datetime) -> Certificate:
    return Certificate(
        number=number,
        verification_code=code,
        issued_at=now,
        object_name=certificate_object_name(ambassador_id, number),
    )


def update_profile(ambassador: Ambassador, changes: dict[str, Any]) -> tuple[Ambassador, list[str]]:
    """Apply the given fields; returns the new ambassador and the names of changed fields."""
    if ambassador.status == Status.ERASED or ambassador.profile is None:
        raise _fail(ErrorCode.INVALID_STATE, "an erased ambassador cannot be updated")
    current = ambassador.profile.model_dump()
    merged = {**current, **changes}
    profile = validate_profile(merged)
    changed = sorted(k for k, v in profile.model_dump().items() if current.get(k) != v)
    updated = ambassador.model_copy(
        update={
            "profile": profile,
            "email_key": email_key(profile.email),
            "kind": profile.kind,
            "themes": profile.themes,
            "core_areas": profile.core_areas,
        }
    )
    return updated, changed


def withdraw(ambassador: Ambassador, *, now: datetime, reason: str | None) -> Ambassador:
    if ambassador.status not in (Status.ACTIVE, Status.PENDING):
        raise _fail(ErrorCode.INVALID_STATE, f"the ambassador is {ambassador.status.value}")
    certificate = ambassador.certificate
    if certificate is not None and certificate.revoked_at is None:
        certificate = certificate.model_copy(update={"revoked_at": now})
    return ambassador.model_copy(
        update={
            "status": Status.WITHDRAWN,
            "withdrawn_at": now,
            "withdraw_reason": clean_line(reason) if reason else None,
            "confirmation_nonce": None,
            "token_expires_at": None,
            "confirmed_nonce": None,
            "token_hash": None,
            "confirmed_token_hash": None,
            "certificate": certificate,
        }
    )


def erase(ambassador: Ambassador, *, now: datetime) -> Ambassador:
    """Remove every personal field; keep what the goals need (kind, themes, dates)."""
    if ambassador.status == Status.ERASED:
        raise _fail(ErrorCode.INVALID_STATE, "the ambassador is already erased")
    certificate = ambassador.certificate
    if certificate is not None:
        certificate = certificate.model_copy(
            update={"revoked_at": certificate.revoked_at or now, "digest": None, "size": None}
        )
    # A pending sign-up that never confirmed was never an ambassador: it leaves no
    # activation in the history either way.
    return ambassador.model_copy(
        update={
            "status": Status.ERASED,
            "profile": None,
            "email_key": None,
            "consent_version": None,
            "consented_at": None,
            "withdraw_reason": None,
            "confirmation_nonce": None,
            "token_expires_at": None,
            "confirmed_nonce": None,
            "token_hash": None,
            "confirmed_token_hash": None,
            "erased_at": now,
            "certificate": certificate,
        }
    )


# ---------------------------------------------------------------- goals


@dataclass(frozen=True)
class GoalRecord:
    """What the goals need of one ambassador: nothing personal."""

    status: Status
    kind: Kind
    themes: Sequence[int]
    core_areas: Sequence[str]
    activated_at: datetime | None
    left_at: datetime | None
    # (activated, left) of memberships before a rejoin.
    earlier: Sequence[tuple[datetime, datetime]] = ()

    def periods(self) -> list[tuple[datetime, datetime | None]]:
        """Every stretch of time this ambassador was active, the current one last."""
        current = [(self.activated_at, self.left_at)] if self.activated_at is not None else []
        return [*self.earlier, *current]


def _month_end(year: int, month: int) -> datetime:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC)


def _months(first: date, last: date) -> Iterable[tuple[int, int]]:
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def compute_goals(
    records: Sequence[GoalRecord], *, target: int, citizen_share_target: float, now: datetime
) -> Goals:
    active = [r for r in records if r.status == Status.ACTIVE]
    citizens = sum(1 for r in active if r.kind == Kind.CITIZEN)
    by_kind = {k.value: sum(1 for r in active if r.kind == k) for k in Kind}
    by_theme = {str(t): sum(1 for r in active if t in r.themes) for t in THEMES}
    by_area = {a.value: sum(1 for r in active if a.value in r.core_areas) for a in CoreArea}
    periods = [(r, begun, left) for r in records for begun, left in r.periods()]
    months: list[MonthPoint] = []
    if periods:
        for y, m in _months(min(begun for _, begun, _ in periods).date(), now.date()):
            start = datetime(y, m, 1, tzinfo=UTC)
            end = _month_end(y, m)
            # At the end of the month: one ambassador counts once, whichever period it is in.
            active_then = {
                id(r): r
                for r, begun, left in periods
                if begun < end and (left is None or left >= end)
            }
            months.append(
                MonthPoint(
                    month=f"{y:04d}-{m:02d}",
                    active=len(active_then),
                    citizens=sum(1 for r in active_then.values() if r.kind == Kind.CITIZEN),
                    activated=sum(1 for _, begun, _ in periods if start <= begun < end),
                    left=sum(1 for _, _, left in periods if left and start <= left < end),
                )
            )
    count = len(active)
    return Goals(
        active=count,
        target=target,
        progress=round(count / target, 4) if target else 0.0,
        citizens=citizens,
        citizen_share=round(citizens / count, 4) if count else 0.0,
        citizen_share_target=citizen_share_target,
        by_kind=by_kind,
        by_theme=by_theme,
        by_core_area=by_area,
        pending=sum(1 for r in records if r.status == Status.PENDING),
        withdrawn=sum(1 for r in records if r.status == Status.WITHDRAWN),
        erased=sum(1 for r in records if r.status == Status.ERASED),
        months=months,
    )
