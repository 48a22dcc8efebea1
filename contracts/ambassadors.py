"""Messages of the ambassadors service: its commands, queries, replies and events."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contracts import endpoints, jobs
from contracts.consent import CONSENT_VERSION_MAX
from contracts.envelope import Event, Message
from contracts.text import clean_line, normalise_email, normalise_name, normalise_website

SERVICE = "ambassadors"
STREAM = "AMBASSADORS"
STREAM_SUBJECTS = "ambassadors.v1.>"

# Payload limits: every text and list that crosses the boundary has one.
NAME_MAX = 200
EMAIL_MAX = 254
PHONE_MAX = 40
ORGANISATION_MAX = 200
WEBSITE_MAX = 500
DESCRIPTION_MAX = 1000
SKILLS_MAX = 20
SKILL_MAX = 40
IMPORT_CSV_MAX_BYTES = 512 * 1024
IMPORT_ROWS_MAX = 2000
PAGE_MAX = 1000
# How many networks one ambassador takes part in at once, at most, when they set a limit.
NETWORKS_AT_ONCE_MAX = 10


class Kind(StrEnum):
    CITIZEN = "citizen"
    VOLUNTEER = "volunteer"
    ASSOCIATION = "association"
    ORGANISATION = "organisation"
    COMPANY = "company"
    POLITICIAN = "politician"
    MUNICIPAL_UNIT = "municipal_unit"
    OTHER = "other"


# The 12 themes of the 2018 strategy (each filmed by citizens), as every service shows them.
THEME_LABELS: dict[int, str] = {
    1: "Hele mennesket",
    2: "En by for alle",
    3: "Idræt i fællesskaber",
    4: "Inddrag borgerne",
    5: "Flere ind i fællesskaber",
    6: "Fra udsat til ansat",
    7: "Vær en god ven",
    8: "Netværk og kommunikation",
    9: "Samarbejde på tværs af sektorer",
    10: "Mere frivillighed",
    11: "Fysisk og mental sundhed",
    12: "Forebyg",
}


class CoreArea(StrEnum):
    HOUSING = "housing"
    EMPLOYMENT = "employment"
    HEALTH = "health"


# How the pages, the certificate and the mails name the core areas and the kinds.
CORE_AREA_LABELS: dict[CoreArea, str] = {
    CoreArea.HOUSING: "Bolig",
    CoreArea.EMPLOYMENT: "Beskæftigelse",
    CoreArea.HEALTH: "Lighed i sundhed",
}

KIND_LABELS: dict[Kind, str] = {
    Kind.CITIZEN: "Borger",
    Kind.VOLUNTEER: "Frivillig",
    Kind.ASSOCIATION: "Forening",
    Kind.ORGANISATION: "Organisation",
    Kind.COMPANY: "Virksomhed",
    Kind.POLITICIAN: "Politiker",
    Kind.MUNICIPAL_UNIT: "Kommunal enhed",
    Kind.OTHER: "Andet",
}


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    ERASED = "erased"


class Source(StrEnum):
    SELF = "self"
    STAFF = "staff"
    IMPORT = "import"


# Private persons may sign up without an organisation; everyone else signs up on behalf of one.
PERSONAL_KINDS = frozenset({Kind.CITIZEN, Kind.VOLUNTEER})

Theme = Annotated[int, Field(ge=1, le=12)]
AmbassadorId = Annotated[str, Field(min_length=1, max_length=64)]
# None: no limit of their own. The networks service never suggests someone for more.
NetworksAtOnce = Annotated[int, Field(ge=1, le=NETWORKS_AT_ONCE_MAX)]


# The endpoints are declared at the end of the module, after their models.


# ---------------------------------------------------------------- field rules
# What a field must look like to be accepted is part of the contract: a sign-up with a bad
# e-mail and a name that is too long names both fields in one answer. The domain uses the
# same functions to normalise what it stores.

_PHONE_ALLOWED = re.compile(r"^\+?[0-9 ()\-.]+$")
_SKILL_SEPARATORS = re.compile(r"[\s_]+")
_SKILL_ALLOWED = re.compile(r"^[0-9a-zæøåäöüéèáàñç\-]+$")


def normalise_phone(value: str) -> str:
    phone = clean_line(value)
    digits = re.sub(r"\D", "", phone)
    if not _PHONE_ALLOWED.match(phone) or not 8 <= len(digits) <= 15:
        raise ValueError("a phone number has 8 to 15 digits, optionally a leading +")
    return phone


def normalise_skill(value: str) -> str:
    tag = _SKILL_SEPARATORS.sub("-", clean_line(value).casefold()).strip("-")
    if tag and not _SKILL_ALLOWED.match(tag):
        raise ValueError("a skill is a short tag of letters, digits and hyphens")
    return tag


def organisation_required(kind: Kind | str | None, organisation: str | None) -> str | None:
    """The message when ``kind`` signs up on behalf of an organisation but names none."""
    if kind is None or Kind(kind) in PERSONAL_KINDS or clean_line(organisation or ""):
        return None
    return f"an organisation name is required for kind '{Kind(kind).value}'"


def _accepted(rule: Callable[[str], Any], value: str | None) -> str | None:
    """Raise the rule's own message as the field's error; keep the value as it was sent."""
    if value is None or not value.strip():
        return value
    try:
        rule(value)
    except ValueError as exc:
        raise PydanticCustomError("value_error", str(exc)) from None
    return value


def _skills_accepted(values: list[str] | None) -> list[str] | None:
    for value in values or ():
        _accepted(normalise_skill, value)
    return values


def _missing_organisation(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    kind, organisation = data.get("kind"), data.get("organisation")
    # Any JSON value may arrive as the kind: a list or an object is not hashable.
    if (
        not isinstance(kind, str)
        or kind not in {k.value for k in Kind}
        or not (organisation is None or isinstance(organisation, str))
    ):
        return None
    return organisation_required(kind, organisation)


def _email_accepted(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise PydanticCustomError("value_error", "must not be empty")
    return _accepted(normalise_email, value)


# ---------------------------------------------------------------- commands and queries


class ProfileRules(Message):
    """The field rules a profile's fields follow wherever they arrive (sign-up or update)."""

    @field_validator("name", check_fields=False)
    @classmethod
    def _name_has_text(cls, value: str | None) -> str | None:
        return _accepted(normalise_name, value)

    @field_validator("organisation", check_fields=False)
    @classmethod
    def _organisation_has_text(cls, value: str | None) -> str | None:
        return _accepted(normalise_name, value)

    @field_validator("email", check_fields=False)
    @classmethod
    def _email_is_an_address(cls, value: str | None) -> str | None:
        return _email_accepted(value)

    @field_validator("phone", check_fields=False)
    @classmethod
    def _phone_is_a_number(cls, value: str | None) -> str | None:
        return _accepted(normalise_phone, value)

    @field_validator("website", check_fields=False)
    @classmethod
    def _website_is_a_url(cls, value: str | None) -> str | None:
        return _accepted(normalise_website, value)

    @field_validator("skills", check_fields=False)
    @classmethod
    def _skills_are_tags(cls, value: list[str] | None) -> list[str] | None:
        return _skills_accepted(value)


class ProfileFields(ProfileRules):
    """The fields an ambassador's profile is made of, as they arrive (not yet normalised)."""

    name: str = Field(min_length=1, max_length=NAME_MAX)
    email: str = Field(min_length=3, max_length=EMAIL_MAX)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    kind: Kind
    organisation: str | None = Field(default=None, max_length=ORGANISATION_MAX)
    website: str | None = Field(default=None, max_length=WEBSITE_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    themes: list[Theme] = Field(default_factory=list, max_length=12)
    core_areas: list[CoreArea] = Field(default_factory=list, max_length=3)
    skills: list[Annotated[str, Field(max_length=SKILL_MAX)]] = Field(
        default_factory=list, max_length=SKILLS_MAX
    )
    public: bool = False
    # Availability for networks: at most this many at once, and not asked until the day
    # after ``paused_until`` (a holiday, a busy season).
    networks_at_once: NetworksAtOnce | None = None
    paused_until: date | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem_at_once(
        cls, data: Any, handler: ModelWrapValidatorHandler[ProfileFields]
    ) -> ProfileFields:
        """A rejected profile also names a missing organisation.

        Whether a kind needs an organisation is the domain's rule (it reports it with every
        other problem); but when the message already fails here, the domain never sees it,
        so the answer would name only half of what is wrong.
        """
        try:
            return handler(data)
        except ValidationError as exc:
            problem = _missing_organisation(data)
            if problem is None or any(e["loc"][:1] == ("organisation",) for e in exc.errors()):
                raise
            errors: list[InitErrorDetails] = [
                {
                    "type": PydanticCustomError(e["type"], e["msg"]),
                    "loc": e["loc"],
                    "input": e["input"],
                }
                for e in exc.errors()
            ]
            errors.append(
                {
                    "type": PydanticCustomError("value_error", problem),
                    "loc": ("organisation",),
                    "input": data.get("organisation"),
                }
            )
            raise ValidationError.from_exception_data(cls.__name__, errors) from None


class SignUp(ProfileFields):
    """A person signing up themselves: pending until they follow the link in the mail. (A
    ``staff`` field sent along is ignored: entering someone active at once is
    :class:`Register`, a staff power on a subject of its own.)"""

    consent: bool
    # The version of the consent text the person was shown (the website sends it); a
    # sign-up that read an older text than the service's is sent back to read the new one.
    consent_version: str | None = Field(default=None, max_length=CONSENT_VERSION_MAX)

    @field_validator("consent")
    @classmethod
    def _consent_is_given(cls, value: bool) -> bool:
        if not value:
            raise PydanticCustomError("value_error", "consent to store the profile is required")
        return value


class Register(SignUp):
    """Staff entering an ambassador who is active at once (a project leader who met the
    person, an import): ``consent`` is staff's word that the person agreed."""


class Confirm(Message):
    token: str = Field(min_length=10, max_length=200)


class UpdateProfile(ProfileRules):
    """Only the fields that are set change."""

    audit_target: ClassVar[str | None] = "ambassador_id"

    ambassador_id: AmbassadorId
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    email: str | None = Field(default=None, min_length=3, max_length=EMAIL_MAX)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    kind: Kind | None = None
    organisation: str | None = Field(default=None, max_length=ORGANISATION_MAX)
    website: str | None = Field(default=None, max_length=WEBSITE_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    themes: list[Theme] | None = Field(default=None, max_length=12)
    core_areas: list[CoreArea] | None = Field(default=None, max_length=3)
    skills: list[Annotated[str, Field(max_length=SKILL_MAX)]] | None = Field(
        default=None, max_length=SKILLS_MAX
    )
    public: bool | None = None
    # Sent as null, these two are cleared (no limit, not paused); left out, they stay.
    networks_at_once: NetworksAtOnce | None = None
    paused_until: date | None = None


class Withdraw(Message):
    audit_target: ClassVar[str | None] = "ambassador_id"

    ambassador_id: AmbassadorId
    reason: str | None = Field(default=None, max_length=500)


class Erase(Message):
    audit_target: ClassVar[str | None] = "ambassador_id"

    ambassador_id: AmbassadorId


class ImportCsv(Message):
    csv_text: str = Field(min_length=1, max_length=IMPORT_CSV_MAX_BYTES)
    filename: str | None = Field(default=None, max_length=255)


class GetCertificate(Message):
    audit_target: ClassVar[str | None] = "ambassador_id"

    ambassador_id: AmbassadorId


class ListAmbassadors(Message):
    status: Status | None = None
    kind: Kind | None = None
    theme: Theme | None = None
    skill: str | None = Field(default=None, max_length=SKILL_MAX)
    limit: int = Field(default=200, ge=1, le=PAGE_MAX)
    offset: int = Field(default=0, ge=0)


class ShowAmbassador(Message):
    ambassador_id: AmbassadorId


class VerifyCertificate(Message):
    code: str = Field(min_length=4, max_length=40)


class GetDirectory(Message):
    pass


class GetGoals(Message):
    pass


class GetConsentText(Message):
    pass


# ---------------------------------------------------------------- replies


class View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CertificateSummary(View):
    number: str
    verification_code: str
    issued_at: AwareDatetime
    revoked_at: AwareDatetime | None = None


class AmbassadorView(View):
    audit_target: ClassVar[str | None] = "id"

    id: str
    status: Status
    source: Source
    name: str | None
    email: str | None
    phone: str | None = None
    kind: Kind
    organisation: str | None = None
    website: str | None = None
    description: str | None = None
    themes: list[int] = []
    core_areas: list[CoreArea] = []
    skills: list[str] = []
    public: bool = False
    networks_at_once: int | None = None
    paused_until: date | None = None
    consent_version: str | None = None
    consented_at: AwareDatetime | None = None
    signed_up_at: AwareDatetime
    activated_at: AwareDatetime | None = None
    withdrawn_at: AwareDatetime | None = None
    erased_at: AwareDatetime | None = None
    certificate: CertificateSummary | None = None


class AmbassadorPage(View):
    total: int
    items: list[AmbassadorView]


class SignUpReceived(View):
    """The answer to a self sign-up, the same whatever the address: if it can be used, a
    mail is on its way to it (the confirmation link, or word to its owner that they are an
    ambassador already). Nothing in it tells a known address from an unknown one."""

    received: bool = True


class SignUpResult(View):
    """Staff's answer to ``register``: the ambassador, active."""

    audit_target: ClassVar[str | None] = "ambassador.id"

    ambassador: AmbassadorView


class DirectoryEntry(View):
    id: str
    display_name: str
    kind: Kind
    organisation: str | None = None
    description: str | None = None
    website: str | None = None
    themes: list[int] = []
    core_areas: list[CoreArea] = []


class Directory(View):
    generated_at: AwareDatetime
    entries: list[DirectoryEntry]


class MonthPoint(View):
    month: str  # YYYY-MM
    active: int
    citizens: int
    activated: int
    left: int


class Goals(View):
    active: int
    target: int
    progress: float
    citizens: int
    citizen_share: float
    citizen_share_target: float
    by_kind: dict[str, int]
    by_theme: dict[str, int]
    by_core_area: dict[str, int]
    pending: int
    withdrawn: int
    erased: int
    months: list[MonthPoint]


class ConsentText(View):
    """The consent a sign-up gives now, in full, and its version."""

    version: str
    text: str


class VerifyResult(View):
    code: str
    genuine: bool
    valid: bool
    number: str | None = None
    holder: str | None = None
    organisation: str | None = None
    issued_on: date | None = None
    status: str


class CertificateLocation(View):
    ambassador_id: str
    number: str
    bucket: str
    object_name: str
    digest: str
    size: int


class ImportRowError(View):
    row: int
    message: str
    details: list[dict[str, str]] = []


class ImportResult(View):
    audit_target: ClassVar[str | None] = "ambassador_ids"

    imported: int
    skipped_existing: int
    errors: list[ImportRowError]
    ambassador_ids: list[str]


# ---------------------------------------------------------------- events


class AmbassadorEvent(Event):
    producer_name: ClassVar[str] = SERVICE
    # Every event is about one ambassador: erasure finds and purges them all by this key.
    key_field: ClassVar[str | None] = "ambassador_id"
    person_field: ClassVar[str | None] = "ambassador_id"
    ambassador_id: str


def certificate_object_name(ambassador_id: str, number: str) -> str:
    """The name an ambassador's certificate PDF has in the certificates bucket."""
    return f"{number}-{ambassador_id}.pdf"


class CertificateRef(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    number: str
    verification_code: str
    bucket: str
    object_name: str

    def belongs_to(self, ambassador_id: str) -> bool:
        """Is this the PDF of ``ambassador_id``'s certificate (not someone else's object)?
        (Which bucket a service may read at all is the NATS permissions' business.)"""
        return self.object_name == certificate_object_name(ambassador_id, self.number)


class SignedUp(AmbassadorEvent):
    """Someone signed up. A self sign-up carries what the confirmation mail's link is made
    of (the nonce and the expiry): the newsletter service signs the link with the secret it
    shares with this service, so no usable token ever travels on the stream."""

    subject: ClassVar[str] = "ambassadors.v1.signed_up"

    name: str
    email: str
    kind: Kind
    source: Source
    confirmation_nonce: str | None = None
    token_expires_at: AwareDatetime | None = None
    consent_version: str


class SignedUpAgain(AmbassadorEvent):
    """Someone signed up with the address of an active ambassador: nothing changes, and the
    owner is told at the address on record. It carries nothing the sender typed."""

    subject: ClassVar[str] = "ambassadors.v1.signed_up_again"


class Activated(AmbassadorEvent):
    """The ambassador is active: confirmed by e-mail or entered by staff.

    The certificate PDF is rendered right after; ``certificate_issued`` says when it is in
    the bucket under ``certificate.object_name``.
    """

    subject: ClassVar[str] = "ambassadors.v1.activated"

    name: str
    email: str
    kind: Kind
    organisation: str | None = None
    public: bool
    themes: list[int] = []
    core_areas: list[CoreArea] = []
    skills: list[str] = []
    networks_at_once: int | None = None
    paused_until: date | None = None
    certificate: CertificateRef


class CertificateIssued(AmbassadorEvent):
    subject: ClassVar[str] = "ambassadors.v1.certificate_issued"

    number: str
    bucket: str
    object_name: str
    digest: str  # "SHA-256=<base64url>", as the Object Store reports it
    size: int


class ProfileUpdated(AmbassadorEvent):
    subject: ClassVar[str] = "ambassadors.v1.profile_updated"

    name: str
    email: str
    kind: Kind
    organisation: str | None = None
    public: bool
    themes: list[int] = []
    core_areas: list[CoreArea] = []
    skills: list[str] = []
    networks_at_once: int | None = None
    paused_until: date | None = None
    changed: list[str]
    status: Status


class Withdrawn(AmbassadorEvent):
    subject: ClassVar[str] = "ambassadors.v1.withdrawn"

    reason: str | None = None


class Erased(AmbassadorEvent):
    """Every service removes or anonymises what it holds about this ambassador."""

    subject: ClassVar[str] = "ambassadors.v1.erased"


EVENTS: tuple[type[AmbassadorEvent], ...] = (
    SignedUp,
    SignedUpAgain,
    Activated,
    CertificateIssued,
    ProfileUpdated,
    Withdrawn,
    Erased,
)


# ---------------------------------------------------------------- endpoints


class Endpoints(endpoints.Endpoints):
    """What the ambassadors service answers."""

    SIGN_UP = endpoints.command(
        "ambassadors.cmd.sign_up",
        SignUp,
        SignUpReceived,
        "A person signs up: pending until the link in the confirmation mail is followed. "
        "The answer is the same for every address.",
        public=True,
    )
    REGISTER = endpoints.command(
        "ambassadors.cmd.register",
        Register,
        SignUpResult,
        "Staff enter an ambassador, active at once (the person's consent given to staff).",
    )
    CONFIRM = endpoints.command(
        "ambassadors.cmd.confirm",
        Confirm,
        AmbassadorView,
        "Confirm a self sign-up with the token from the confirmation mail.",
        public=True,
    )
    UPDATE = endpoints.command(
        "ambassadors.cmd.update", UpdateProfile, AmbassadorView, "Change the given profile fields."
    )
    WITHDRAW = endpoints.command(
        "ambassadors.cmd.withdraw",
        Withdraw,
        AmbassadorView,
        "The ambassador leaves the network; history is kept, the certificate revoked.",
    )
    ERASE = endpoints.command(
        "ambassadors.cmd.erase",
        Erase,
        AmbassadorView,
        "Remove every personal field; an anonymous record keeps the goals' history true.",
    )
    IMPORT = jobs.job(
        "ambassadors.cmd.import",
        ImportCsv,
        ImportResult,
        "Import a CSV list as staff sign-ups, as a job; each bad row is reported, good rows "
        "go in, and the same list sent again imports nobody twice.",
        unit="rows",
    )
    JOB = jobs.show_job(SERVICE)
    CERTIFICATE = endpoints.command(
        "ambassadors.cmd.certificate",
        GetCertificate,
        CertificateLocation,
        "Where the certificate PDF is in the Object Store (rendered now if not yet).",
    )
    LIST = endpoints.query(
        "ambassadors.query.list",
        ListAmbassadors,
        AmbassadorPage,
        "Ambassadors, filtered by status, kind, theme or skill.",
    )
    SHOW = endpoints.query(
        "ambassadors.query.show", ShowAmbassador, AmbassadorView, "One ambassador."
    )
    VERIFY = endpoints.query(
        "ambassadors.query.verify",
        VerifyCertificate,
        VerifyResult,
        "Is a certificate with this verification code genuine and still valid?",
        public=True,
    )
    DIRECTORY = endpoints.query(
        "ambassadors.query.directory",
        GetDirectory,
        Directory,
        "The public directory: active ambassadors who chose to be listed.",
        public=True,
    )
    GOALS = endpoints.query(
        "ambassadors.query.goals",
        GetGoals,
        Goals,
        "Active ambassadors and citizen share against the strategy's targets, month by month "
        "(counts only: public).",
        public=True,
    )
    CONSENT = endpoints.query(
        "ambassadors.query.consent",
        GetConsentText,
        ConsentText,
        "The consent text a sign-up accepts now, in full, with its version.",
        public=True,
    )
