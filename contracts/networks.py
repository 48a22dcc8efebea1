"""Messages of the networks service: challenges, the suggested team (the matching) and the
skill vocabulary; the networks themselves follow.

A challenge ("udfordring") rolls in, often from a dialogue meeting or a theme day (one of
the outcomes of a held meeting); staff ask for a suggested team of ambassadors to meet it.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts import endpoints
from contracts.ambassadors import CoreArea, Kind, Theme, normalise_skill
from contracts.envelope import Event, Message
from contracts.events import MeetingKind
from contracts.text import clean_line, clean_text

SERVICE = "networks"
STREAM = "NETWORKS"
STREAM_SUBJECTS = "networks.v1.>"

# Payload limits: every text and list that crosses the boundary has one.
TITLE_MAX = 200
DESCRIPTION_MAX = 5000
TARGET_GROUP_MAX = 500
REASON_MAX = 500
SKILL_MAX = 40
SKILLS_MAX = 20
OUTCOMES_MAX = 20
TEAM_MAX = 50
EXCLUDE_MAX = 1000
WHY_NOT_MAX = 20
PAGE_MAX = 1000

Id = Annotated[str, Field(min_length=1, max_length=64)]
Skill = Annotated[str, Field(min_length=1, max_length=SKILL_MAX)]
TeamSize = Annotated[int, Field(ge=1, le=TEAM_MAX)]


def _skill_tags(values: list[str]) -> list[str]:
    """Each tag as the ambassadors' profiles write it; empty ones are refused by name."""
    tags = []
    for value in values:
        tag = normalise_skill(value)
        if not tag:
            raise ValueError("a skill tag has at least one letter or digit")
        tags.append(tag)
    return list(dict.fromkeys(tags))


class ChallengeStatus(StrEnum):
    OPEN = "open"
    # A network was formed around it (it stays the challenge of that network).
    TAKEN_UP = "taken_up"
    DROPPED = "dropped"


class NetworkKind(StrEnum):
    # Around one challenge, time-limited.
    ACTION = "action"
    # Volunteers for a concrete, time-limited task.
    VOLUNTEER = "volunteer"
    # Standing: managers with a mandate who commit to take part.
    LEADER = "leader"
    # Standing: professionals who act fast together ("akutteam").
    STAFF = "staff"


# How mails and pages name the kinds (the 2022 organisation's words).
KIND_LABELS: dict[NetworkKind, str] = {
    NetworkKind.ACTION: "Handlingsnetværk",
    NetworkKind.VOLUNTEER: "Frivilligt handlingsnetværk",
    NetworkKind.LEADER: "Fagprofessionelt ledernetværk",
    NetworkKind.STAFF: "Fagprofessionelt medarbejdernetværk (akutteam)",
}

FORMED_KINDS = (NetworkKind.ACTION, NetworkKind.VOLUNTEER)
STANDING_KINDS = (NetworkKind.LEADER, NetworkKind.STAFF)


class NetworkStatus(StrEnum):
    FORMING = "forming"
    ACTIVE = "active"
    CLOSED = "closed"


class MemberState(StrEnum):
    INVITED = "invited"
    JOINED = "joined"
    DECLINED = "declined"
    # No answer within the deadline.
    EXPIRED = "expired"
    # Taken out by staff, or gone from the network of ambassadors (withdrawn, erased).
    REMOVED = "removed"


class Outcome(StrEnum):
    INITIATIVE = "initiative"
    HANDED_OVER = "handed_over"
    NO_RESULT = "no_result"


# ---------------------------------------------------------------- challenges


class RaiseChallenge(Message):
    audit_target: ClassVar[str | None] = None

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    description: str = Field(min_length=1, max_length=DESCRIPTION_MAX)
    themes: list[Theme] = Field(default_factory=list, max_length=12)
    core_areas: list[CoreArea] = Field(default_factory=list, max_length=3)
    skills: list[Skill] = Field(default_factory=list, max_length=SKILLS_MAX)
    target_group: str | None = Field(default=None, max_length=TARGET_GROUP_MAX)
    # The held meeting whose outcome this is, and which of its outcomes (1 = the first);
    # the number may be left out when the meeting had one outcome.
    from_meeting: Id | None = None
    from_outcome: int | None = Field(default=None, ge=1, le=OUTCOMES_MAX)

    @field_validator("title")
    @classmethod
    def _title_is_a_line(cls, value: str) -> str:
        title = clean_line(value)
        if not title:
            raise ValueError("a challenge has a title")
        return title

    @field_validator("description")
    @classmethod
    def _description_has_text(cls, value: str) -> str:
        text = clean_text(value)
        if not text:
            raise ValueError("a challenge has a description")
        return text

    @field_validator("target_group")
    @classmethod
    def _target_group_is_a_line(cls, value: str | None) -> str | None:
        return clean_line(value) or None if value is not None else None

    @field_validator("skills")
    @classmethod
    def _skills_are_tags(cls, value: list[str]) -> list[str]:
        return _skill_tags(value)

    @model_validator(mode="after")
    def _outcome_of_a_meeting(self) -> RaiseChallenge:
        if self.from_outcome is not None and self.from_meeting is None:
            raise ValueError("from_outcome names an outcome of the meeting in from_meeting")
        return self


class DropChallenge(Message):
    audit_target: ClassVar[str | None] = "challenge_id"

    challenge_id: Id
    reason: str = Field(min_length=1, max_length=REASON_MAX)

    @field_validator("reason")
    @classmethod
    def _reason_is_a_line(cls, value: str) -> str:
        reason = clean_line(value)
        if not reason:
            raise ValueError("say why the challenge is dropped")
        return reason


class ListChallenges(Message):
    status: ChallengeStatus | None = None
    limit: int = Field(default=200, ge=1, le=PAGE_MAX)
    offset: int = Field(default=0, ge=0)


class ShowChallenge(Message):
    challenge_id: Id


class ListCandidates(Message):
    """Outcomes of held meetings that no challenge has taken up yet."""


# ---------------------------------------------------------------- suggesting a team


class Suggest(Message):
    """Which team to suggest for a challenge: its skills are required, and these rules
    come on top."""

    challenge_id: Id
    size_min: TeamSize = 5
    size_max: TeamSize = 8
    require_skills: list[Skill] = Field(default_factory=list, max_length=SKILLS_MAX)
    # At least N members of a kind, or with a core area (e.g. one citizen, one association).
    require_kinds: dict[Kind, TeamSize] = Field(default_factory=dict)
    require_core_areas: dict[CoreArea, TeamSize] = Field(default_factory=dict)
    exclude: list[Id] = Field(default_factory=list, max_length=EXCLUDE_MAX)
    # Ambassadors to explain: why they are not in the team.
    why_not: list[Id] = Field(default_factory=list, max_length=WHY_NOT_MAX)

    @field_validator("require_skills")
    @classmethod
    def _skills_are_tags(cls, value: list[str]) -> list[str]:
        return _skill_tags(value)

    @model_validator(mode="after")
    def _size_is_a_range(self) -> Suggest:
        if self.size_min > self.size_max:
            raise ValueError(
                f"size {self.size_min}-{self.size_max}: the minimum exceeds the maximum"
            )
        return self


class ListSkills(Message):
    pass


class MergeSkills(Message):
    """From now on ``from_skill`` is read as ``into_skill`` (two names of one skill)."""

    audit_target: ClassVar[str | None] = None

    from_skill: Skill
    into_skill: Skill

    @field_validator("from_skill", "into_skill")
    @classmethod
    def _is_a_tag(cls, value: str) -> str:
        return _skill_tags([value])[0]

    @model_validator(mode="after")
    def _two_skills(self) -> MergeSkills:
        if self.from_skill == self.into_skill:
            raise ValueError("a skill cannot be merged into itself")
        return self


# ---------------------------------------------------------------- networks

MEMBERS_MAX = 1000
SUMMARY_MAX = 5000
REPLY_DAYS_MAX = 60


def _title_line(value: str | None) -> str | None:
    if value is None:
        return None
    title = clean_line(value)
    if not title:
        raise ValueError("a title has at least one letter or digit")
    return title


class FormNetwork(Message):
    """An action or volunteer network around a challenge: the members are invited; the
    rules it was formed by are kept, so a replacement for one who declines keeps them."""

    audit_target: ClassVar[str | None] = "challenge_id"

    challenge_id: Id
    kind: NetworkKind = NetworkKind.ACTION
    members: list[Id] = Field(min_length=1, max_length=TEAM_MAX)
    lead: Id | None = None
    # Left out: the challenge's title.
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    ends: date | None = None
    reply_within_days: int = Field(default=7, ge=1, le=REPLY_DAYS_MAX)
    size_min: TeamSize | None = None
    size_max: TeamSize | None = None
    require_skills: list[Skill] = Field(default_factory=list, max_length=SKILLS_MAX)
    require_kinds: dict[Kind, TeamSize] = Field(default_factory=dict)
    require_core_areas: dict[CoreArea, TeamSize] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _size_is_a_range(self) -> FormNetwork:
        low, high = self.size_min, self.size_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"size {low}-{high}: the minimum exceeds the maximum")
        return self

    @field_validator("kind")
    @classmethod
    def _formed_kind(cls, value: NetworkKind) -> NetworkKind:
        if value not in FORMED_KINDS:
            raise ValueError("a leader or staff network is created (networks create), not formed")
        return value

    @field_validator("title")
    @classmethod
    def _title_is_a_line(cls, value: str | None) -> str | None:
        return _title_line(value)

    @field_validator("require_skills")
    @classmethod
    def _skills_are_tags(cls, value: list[str]) -> list[str]:
        return _skill_tags(value)


class CreateNetwork(Message):
    """A standing network (leader or staff): active at once, its members invited."""

    audit_target: ClassVar[str | None] = None

    kind: NetworkKind
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    members: list[Id] = Field(default_factory=list, max_length=MEMBERS_MAX)
    reply_within_days: int = Field(default=7, ge=1, le=REPLY_DAYS_MAX)

    @field_validator("kind")
    @classmethod
    def _standing_kind(cls, value: NetworkKind) -> NetworkKind:
        if value not in STANDING_KINDS:
            raise ValueError("an action or volunteer network is formed around a challenge")
        return value

    @field_validator("title")
    @classmethod
    def _title_is_a_line(cls, value: str) -> str:
        title = _title_line(value)
        assert title is not None
        return title


class InviteMembers(Message):
    audit_target: ClassVar[str | None] = "network_id"

    network_id: Id
    ambassador_ids: list[Id] = Field(min_length=1, max_length=MEMBERS_MAX)


class RemoveMember(Message):
    audit_target: ClassVar[str | None] = "network_id"

    network_id: Id
    ambassador_id: Id


class AnswerNetworkInvitation(Message):
    """The member's answer through the link in their invitation mail."""

    token: str = Field(min_length=10, max_length=300)
    accept: bool


class ShowNetworkInvitation(Message):
    token: str = Field(min_length=10, max_length=300)


class StartNetwork(Message):
    audit_target: ClassVar[str | None] = "network_id"

    network_id: Id


class CloseNetwork(Message):
    audit_target: ClassVar[str | None] = "network_id"

    network_id: Id
    outcome: Outcome
    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    # What the initiative is called (an outcome "initiative"); left out: the network's title.
    initiative_title: str | None = Field(default=None, max_length=TITLE_MAX)

    @field_validator("summary")
    @classmethod
    def _summary_has_text(cls, value: str) -> str:
        text = clean_text(value)
        if not text:
            raise ValueError("say what came of the network")
        return text

    @field_validator("initiative_title")
    @classmethod
    def _title_is_a_line(cls, value: str | None) -> str | None:
        return _title_line(value)

    @model_validator(mode="after")
    def _initiative_title_for_an_initiative(self) -> CloseNetwork:
        if self.initiative_title is not None and self.outcome != Outcome.INITIATIVE:
            raise ValueError("an initiative title goes with the outcome initiative")
        return self


ALERT_MESSAGE_MAX = 2000


class AlertNetwork(Message):
    """A staff network ("akutteam") called out now: every member is mailed at once and
    answers whether they can help within the deadline."""

    audit_target: ClassVar[str | None] = "network_id"

    network_id: Id
    message: str = Field(min_length=1, max_length=ALERT_MESSAGE_MAX)
    answer_within_hours: int = Field(default=2, ge=1, le=72)

    @field_validator("message")
    @classmethod
    def _message_has_text(cls, value: str) -> str:
        text = clean_text(value)
        if not text:
            raise ValueError("say what the call-out is about")
        return text


class AnswerAlert(Message):
    """A member's answer through the link in the call-out mail."""

    token: str = Field(min_length=10, max_length=300)
    can_help: bool


class ShowAlert(Message):
    token: str = Field(min_length=10, max_length=300)


class ListNetworks(Message):
    kind: NetworkKind | None = None
    status: NetworkStatus | None = None
    limit: int = Field(default=200, ge=1, le=PAGE_MAX)
    offset: int = Field(default=0, ge=0)


class ShowNetwork(Message):
    network_id: Id


class GetPublicNetworks(Message):
    """The website's page of networks: active ones and their results."""


class GetInitiatives(Message):
    """The initiatives goal (counts only)."""


# ---------------------------------------------------------------- replies


class View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MeetingRef(View):
    """The held meeting (and its outcome) a challenge came from."""

    meeting_id: str
    title: str
    kind: MeetingKind
    date: date
    outcome_number: int
    outcome: str


class ChallengeView(View):
    audit_target: ClassVar[str | None] = "id"

    id: str
    title: str
    description: str
    themes: list[int] = []
    core_areas: list[CoreArea] = []
    # As raised, and as the vocabulary reads them (what the matching looks for).
    skills: list[str] = []
    skills_as_matched: list[str] = []
    target_group: str | None = None
    status: ChallengeStatus
    from_meeting: MeetingRef | None = None
    raised_at: AwareDatetime
    raised_by: str
    dropped_at: AwareDatetime | None = None
    drop_reason: str | None = None


class ChallengePage(View):
    total: int
    items: list[ChallengeView]


class OutcomeCandidate(View):
    """An outcome of a held meeting that no challenge has taken up."""

    meeting: MeetingRef


class Candidates(View):
    items: list[OutcomeCandidate]


class Pick(View):
    """One suggested member and why: what they cover, which rule they fill, the terms of
    their score (relevance as positive points, fatigue as negative)."""

    ambassador_id: str
    name: str
    organisation: str | None = None
    kind: Kind
    score: int
    terms: dict[str, int] = {}
    covers: list[str] = []
    fills: list[str] = []
    reason: str


class Explanation(View):
    ambassador_id: str
    reason: str


class Suggestion(View):
    challenge_id: str
    size_min: int
    size_max: int
    # The skills the team must cover (the challenge's and the request's, as matched).
    required_skills: list[str]
    members: list[Pick]
    # Required skills no active ambassador who can be asked has, and rules no team meets.
    gaps: list[str] = []
    unmet: list[str] = []
    # optimal: proven best; feasible: the best found in the time limit; greedy: the
    # fallback's team.
    method: str
    objective: int
    considered: int
    shortlisted: int
    why_not: list[Explanation] = []


class ChangeView(View):
    """One step of a network's life: what, who did it, when."""

    what: str
    actor: str
    at: AwareDatetime
    detail: str | None = None


class MemberView(View):
    ambassador_id: str
    # Gone from the network of ambassadors since (kept for the record): no name.
    name: str
    organisation: str | None = None
    kind: Kind | None = None
    state: MemberState
    lead: bool = False
    invited_at: AwareDatetime
    reply_by: AwareDatetime | None = None
    answered_at: AwareDatetime | None = None


class MemberCounts(View):
    invited: int = 0
    joined: int = 0
    declined: int = 0
    expired: int = 0
    removed: int = 0


class NetworkView(View):
    audit_target: ClassVar[str | None] = "id"

    id: str
    kind: NetworkKind
    title: str
    status: NetworkStatus
    challenge_id: str | None = None
    lead: str | None = None
    ends: date | None = None
    reply_within_days: int
    counts: MemberCounts
    created_at: AwareDatetime
    started_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    outcome: Outcome | None = None
    summary: str | None = None
    initiative_title: str | None = None
    history: list[ChangeView] = []


class AlertSummary(View):
    id: str
    message: str
    sent_at: AwareDatetime
    answer_by: AwareDatetime
    sent_to: int
    # Answered "I can help" within the deadline, and later.
    can_help: list[str] = []
    can_help_late: list[str] = []
    cannot: list[str] = []


class NetworkDetail(View):
    network: NetworkView
    members: list[MemberView]
    alerts: list[AlertSummary] = []


class NetworkPage(View):
    total: int
    items: list[NetworkView]


class InvitationAnswer(View):
    network_id: str
    ambassador_id: str
    state: MemberState


class NetworkInvitation(View):
    """What the invitation page shows the invited: the network, and their answer so far."""

    network_id: str
    kind: NetworkKind
    title: str
    status: NetworkStatus
    challenge_title: str | None = None
    challenge_description: str | None = None
    ends: date | None = None
    state: MemberState
    reply_by: AwareDatetime | None = None


class PublicNetwork(View):
    """A network as the public sees it: what it works on and which organisations take
    part (members listed publicly only); never a person."""

    id: str
    kind: NetworkKind
    title: str
    status: NetworkStatus
    challenge_title: str | None = None
    target_group: str | None = None
    started_on: date | None = None
    ends: date | None = None
    organisations: list[str] = []
    outcome: Outcome | None = None
    initiative_title: str | None = None
    summary: str | None = None
    closed_on: date | None = None


class PublicNetworks(View):
    active: list[PublicNetwork]
    results: list[PublicNetwork]


class InitiativeMonth(View):
    month: str  # YYYY-MM
    networks: int
    meetings: int
    # Since the period began, up to the end of this month.
    total: int


class Initiatives(View):
    """Initiatives started in the goal period: action and volunteer networks started, and
    dialogue meetings, theme days and workshops held."""

    period_start: date
    period_end: date
    target: int
    started: int
    progress: float
    networks: int
    meetings: int
    by_kind: dict[str, int]
    months: list[InitiativeMonth]


class AlertAnswerView(View):
    """What the call-out page shows the member: the message, the deadline, their answer."""

    alert_id: str
    network_title: str
    message: str
    sent_at: AwareDatetime
    answer_by: AwareDatetime
    can_help: bool | None = None
    answered_at: AwareDatetime | None = None


class SkillEntry(View):
    skill: str
    # Other names read as this skill: the vocabulary's synonyms and staff's merges.
    synonyms: list[str] = []
    # Active ambassadors with the skill.
    count: int
    in_vocabulary: bool


class SkillVocabulary(View):
    items: list[SkillEntry]


class SkillsMerged(View):
    from_skill: str
    into_skill: str
    # Active ambassadors who have ``into_skill`` now.
    ambassadors: int


# ---------------------------------------------------------------- events


class NetworksEvent(Event):
    producer_name: ClassVar[str] = SERVICE


class ChallengeEvent(NetworksEvent):
    key_field: ClassVar[str | None] = "challenge_id"
    challenge_id: str


class ChallengeRaised(ChallengeEvent):
    """A challenge was raised (names no person)."""

    subject: ClassVar[str] = "networks.v1.challenge_raised"

    title: str
    themes: list[int] = []
    core_areas: list[CoreArea] = []
    skills: list[str] = []
    target_group: str | None = None
    from_meeting_id: str | None = None
    from_outcome: int | None = None


class ChallengeDropped(ChallengeEvent):
    subject: ClassVar[str] = "networks.v1.challenge_dropped"

    reason: str


class SkillsMergedEvent(NetworksEvent):
    subject: ClassVar[str] = "networks.v1.skills_merged"

    from_skill: str
    into_skill: str


class NetworkInfo(BaseModel):
    """A network as every message shows it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    network_id: str
    kind: NetworkKind
    title: str
    challenge_id: str | None = None
    challenge_title: str | None = None
    ends: date | None = None


class NetworkEvent(NetworksEvent):
    key_field: ClassVar[str | None] = "network_id"
    network_id: str


class NetworkFormed(NetworkEvent):
    """Formed around a challenge (or a standing network created); the members' invitations
    follow, one ``member_invited`` each. Names no person."""

    subject: ClassVar[str] = "networks.v1.formed"

    network: NetworkInfo
    invited: int


class MemberEvent(NetworksEvent):
    """About one member: purged from the stream when the ambassador is erased."""

    key_field: ClassVar[str | None] = "ambassador_id"
    person_field: ClassVar[str | None] = "ambassador_id"

    network_id: str
    ambassador_id: str


class MemberInvited(MemberEvent):
    """Invited to take part (voluntary: the mail invites, never summons). The newsletter
    service mails it, with accept/decline links it signs for this network and member with
    the secret it shares with this service; no token travels on the stream."""

    subject: ClassVar[str] = "networks.v1.member_invited"

    email: str
    name: str
    network: NetworkInfo
    reply_by: AwareDatetime


class MemberJoined(MemberEvent):
    subject: ClassVar[str] = "networks.v1.member_joined"

    network: NetworkInfo


class MemberLeft(MemberEvent):
    """A member who had joined is no longer in the network (taken out by staff, withdrawn
    or erased as an ambassador, the network closed does not count)."""

    subject: ClassVar[str] = "networks.v1.member_left"

    reason: str


class NetworkStarted(NetworkEvent):
    """Started: it counts toward the initiatives goal."""

    subject: ClassVar[str] = "networks.v1.started"

    network: NetworkInfo
    started_on: date
    members: int


class NetworkClosed(NetworkEvent):
    """Closed with what came of it; ``organisations``: those of its members who are listed
    publicly (organisations are public by what they are)."""

    subject: ClassVar[str] = "networks.v1.closed"

    network: NetworkInfo
    outcome: Outcome
    summary: str
    initiative_title: str | None = None
    closed_on: date
    organisations: list[str] = Field(default_factory=list, max_length=TEAM_MAX)


class NetworkAlerted(MemberEvent):
    """One member of a staff network is called out: the newsletter service mails them at
    once, with "I can help" / "I cannot" links it signs for this alert and member."""

    subject: ClassVar[str] = "networks.v1.alerted"

    alert_id: str
    email: str
    name: str
    network: NetworkInfo
    message: str
    answer_by: AwareDatetime


class NoticeKind(StrEnum):
    # A member declined or did not answer in time: the best replacement is offered.
    REPLACEMENT = "replacement"
    # A member left (withdrawn, erased, taken out) and the network no longer meets its rules.
    BELOW_RULES = "below_rules"
    # The network's end date is a week away.
    ENDING_SOON = "ending_soon"


class Replacement(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    ambassador_id: str
    covers: list[str] = []
    fills: list[str] = []


class StaffNotice(NetworkEvent):
    """Something staff are to know about a network (the newsletter service mails the
    project leaders): names ambassadors by id only."""

    subject: ClassVar[str] = "networks.v1.staff_notice"

    kind: NoticeKind
    network: NetworkInfo
    # Who declined, did not answer or left (a replacement or a broken rule).
    about: str | None = None
    why: str | None = None
    replacements: list[Replacement] = Field(default_factory=list, max_length=TEAM_MAX)
    # declined, expired (no answer in time), withdrawn, removed (taken out by staff),
    # erased (then ``about`` is left out: nothing names an erased person).
    # The rules it no longer meets, in Danish (the project leaders' mail shows them).
    unmet: list[str] = Field(default_factory=list, max_length=TEAM_MAX)


EVENTS: tuple[type[NetworksEvent], ...] = (
    ChallengeRaised,
    ChallengeDropped,
    SkillsMergedEvent,
    NetworkFormed,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    NetworkStarted,
    NetworkClosed,
    NetworkAlerted,
    StaffNotice,
)


# ---------------------------------------------------------------- endpoints


class Endpoints(endpoints.Endpoints):
    """What the networks service answers."""

    RAISE_CHALLENGE = endpoints.command(
        "networks.cmd.raise_challenge",
        RaiseChallenge,
        ChallengeView,
        "Raise a challenge, possibly as the outcome of a held meeting.",
    )
    DROP_CHALLENGE = endpoints.command(
        "networks.cmd.drop_challenge",
        DropChallenge,
        ChallengeView,
        "Drop an open challenge, with the reason.",
    )
    LIST_CHALLENGES = endpoints.query(
        "networks.query.challenges", ListChallenges, ChallengePage, "Challenges, newest first."
    )
    SHOW_CHALLENGE = endpoints.query(
        "networks.query.challenge", ShowChallenge, ChallengeView, "One challenge."
    )
    CANDIDATES = endpoints.query(
        "networks.query.candidates",
        ListCandidates,
        Candidates,
        "Outcomes of held meetings no challenge has taken up yet.",
    )
    SUGGEST = endpoints.query(
        "networks.query.suggest",
        Suggest,
        Suggestion,
        "A team for a challenge: every required skill covered, every composition minimum "
        "met, within the size, most relevant and least asked; every pick explained.",
    )
    SKILLS = endpoints.query(
        "networks.query.skills",
        ListSkills,
        SkillVocabulary,
        "The skill vocabulary with its synonyms and how many active ambassadors have each.",
    )
    FORM = endpoints.command(
        "networks.cmd.form",
        FormNetwork,
        NetworkDetail,
        "Form an action or volunteer network around a challenge; the members are invited.",
    )
    CREATE = endpoints.command(
        "networks.cmd.create",
        CreateNetwork,
        NetworkDetail,
        "Create a standing leader or staff network; its members are invited.",
    )
    INVITE = endpoints.command(
        "networks.cmd.invite",
        InviteMembers,
        NetworkDetail,
        "Invite more members (someone who declined may be asked again).",
    )
    REMOVE = endpoints.command(
        "networks.cmd.remove", RemoveMember, NetworkDetail, "Take a member out of a network."
    )
    ANSWER = endpoints.command(
        "networks.cmd.answer",
        AnswerNetworkInvitation,
        InvitationAnswer,
        "Accept or decline an invitation with the token from its mail.",
        public=True,
    )
    INVITATION = endpoints.query(
        "networks.query.invitation",
        ShowNetworkInvitation,
        NetworkInvitation,
        "The network an invitation's token is for, and the answer so far.",
        public=True,
    )
    START = endpoints.command(
        "networks.cmd.start", StartNetwork, NetworkDetail, "Start a forming network."
    )
    CLOSE = endpoints.command(
        "networks.cmd.close",
        CloseNetwork,
        NetworkDetail,
        "Close a network with its outcome (an initiative, handed over, no result).",
    )
    ALERT = endpoints.command(
        "networks.cmd.alert",
        AlertNetwork,
        AlertSummary,
        "Call out a staff network now: every member is mailed at once.",
    )
    ANSWER_ALERT = endpoints.command(
        "networks.cmd.answer_alert",
        AnswerAlert,
        AlertAnswerView,
        "A member answers a call-out (I can help / I cannot) with the token from its mail.",
        public=True,
    )
    SHOW_ALERT = endpoints.query(
        "networks.query.alert",
        ShowAlert,
        AlertAnswerView,
        "The call-out a token is for, and the member's answer so far.",
        public=True,
    )
    LIST = endpoints.query(
        "networks.query.list", ListNetworks, NetworkPage, "Networks, newest first."
    )
    SHOW = endpoints.query(
        "networks.query.show", ShowNetwork, NetworkDetail, "One network with its members."
    )
    PUBLIC = endpoints.query(
        "networks.query.public",
        GetPublicNetworks,
        PublicNetworks,
        "Active action and volunteer networks and the results of closed ones, as the public "
        "sees them (organisations of members listed publicly; no person).",
        public=True,
    )
    INITIATIVES = endpoints.query(
        "networks.query.initiatives",
        GetInitiatives,
        Initiatives,
        "Initiatives started in the goal period against the target, month by month (counts "
        "only: public).",
        public=True,
    )
    MERGE_SKILLS = endpoints.command(
        "networks.cmd.merge_skills",
        MergeSkills,
        SkillsMerged,
        "Read one skill as another from now on (two names of one skill).",
    )
