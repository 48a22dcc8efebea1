"""Messages of the ambassadors service: its commands, queries, replies and events."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.envelope import Event, Message

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


class Kind(StrEnum):
    CITIZEN = "citizen"
    VOLUNTEER = "volunteer"
    ASSOCIATION = "association"
    ORGANISATION = "organisation"
    COMPANY = "company"
    POLITICIAN = "politician"
    MUNICIPAL_UNIT = "municipal_unit"
    OTHER = "other"


class CoreArea(StrEnum):
    HOUSING = "housing"
    EMPLOYMENT = "employment"
    HEALTH = "health"


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"
    ERASED = "erased"


class Source(StrEnum):
    SELF = "self"
    STAFF = "staff"
    IMPORT = "import"


Theme = Annotated[int, Field(ge=1, le=12)]
AmbassadorId = Annotated[str, Field(min_length=1, max_length=64)]


class Subjects:
    """Request/reply subjects the service answers on."""

    SIGN_UP = "ambassadors.cmd.sign_up"
    CONFIRM = "ambassadors.cmd.confirm"
    UPDATE = "ambassadors.cmd.update"
    WITHDRAW = "ambassadors.cmd.withdraw"
    ERASE = "ambassadors.cmd.erase"
    IMPORT = "ambassadors.cmd.import"
    CERTIFICATE = "ambassadors.cmd.certificate"
    LIST = "ambassadors.query.list"
    SHOW = "ambassadors.query.show"
    VERIFY = "ambassadors.query.verify"
    DIRECTORY = "ambassadors.query.directory"
    GOALS = "ambassadors.query.goals"


# ---------------------------------------------------------------- commands and queries


class ProfileFields(Message):
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


class SignUp(ProfileFields):
    consent: bool
    # Staff sign-ups (entered by a project leader) are active at once; self sign-ups wait
    # for the e-mail confirmation.
    staff: bool = False


class Confirm(Message):
    token: str = Field(min_length=10, max_length=200)


class UpdateProfile(Message):
    """Only the fields that are set change."""

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


class Withdraw(Message):
    ambassador_id: AmbassadorId
    reason: str | None = Field(default=None, max_length=500)


class Erase(Message):
    ambassador_id: AmbassadorId


class ImportCsv(Message):
    csv_text: str = Field(min_length=1, max_length=IMPORT_CSV_MAX_BYTES)
    filename: str | None = Field(default=None, max_length=255)


class GetCertificate(Message):
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


# ---------------------------------------------------------------- replies


class View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CertificateSummary(View):
    number: str
    verification_code: str
    issued_at: AwareDatetime
    revoked_at: AwareDatetime | None = None


class AmbassadorView(View):
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


class SignUpResult(View):
    ambassador: AmbassadorView
    # True when the address had a pending self sign-up and a fresh token was sent instead.
    token_reissued: bool = False


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
    imported: int
    skipped_existing: int
    errors: list[ImportRowError]
    ambassador_ids: list[str]


# ---------------------------------------------------------------- events


class AmbassadorEvent(Event):
    producer_name: ClassVar[str] = SERVICE
    ambassador_id: str


class CertificateRef(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    number: str
    verification_code: str
    bucket: str
    object_name: str


class SignedUp(AmbassadorEvent):
    """Someone signed up. A self sign-up carries the token for the confirmation mail."""

    subject: ClassVar[str] = "ambassadors.v1.signed_up"

    name: str
    email: str
    kind: Kind
    source: Source
    confirmation_token: str | None = None
    token_expires_at: AwareDatetime | None = None
    consent_version: str


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
    Activated,
    CertificateIssued,
    ProfileUpdated,
    Withdrawn,
    Erased,
)
