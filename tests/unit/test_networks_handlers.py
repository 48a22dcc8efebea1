"""The networks service's handlers in memory: challenges raised from held meetings'
outcomes, the suggested team from the ambassadors it knows, and the skill vocabulary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts.ambassadors import (
    Activated,
    CertificateRef,
    CoreArea,
    Erased,
    Kind,
    ProfileUpdated,
    Withdrawn,
)
from contracts.ambassadors import Status as AmbassadorStatus
from contracts.errors import ErrorCode
from contracts.events import MeetingHeld, MeetingKind
from contracts.networks import (
    AlertNetwork,
    AnswerAlert,
    AnswerNetworkInvitation,
    ChallengeRaised,
    ChallengeStatus,
    CloseNetwork,
    CreateNetwork,
    DropChallenge,
    Endpoints,
    FormNetwork,
    GetInitiatives,
    InviteMembers,
    ListCandidates,
    ListChallenges,
    ListNetworks,
    ListSkills,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberState,
    MergeSkills,
    NetworkAlerted,
    NetworkClosed,
    NetworkDetail,
    NetworkFormed,
    NetworkKind,
    NetworkStarted,
    NetworkStatus,
    NoticeKind,
    Outcome,
    RaiseChallenge,
    RemoveMember,
    ShowChallenge,
    ShowNetwork,
    ShowNetworkInvitation,
    StaffNotice,
    StartNetwork,
    Suggest,
    Suggestion,
)
from services.networks import initiatives, notices
from services.networks.app import build
from services.networks.context import Context
from services.networks.settings import NetworksSettings
from services.runtime.testing import ServiceHarness
from services.runtime.tokens import ALERT_ANSWER, NETWORK_ANSWER, Signer

HELD_AT = datetime(2027, 3, 4, 19, 0, tzinfo=UTC)
SECRET = "networks-handler-tests-0123456789abcdef"


@pytest.fixture
async def service() -> AsyncIterator[tuple[ServiceHarness, Context]]:
    yield await ServiceHarness.start(
        build, NetworksSettings(_env_file=None, networks_token_secret=SECRET)
    )


def held(
    meeting_id: str = "m1", outcomes: tuple[str, ...] = ("Et værested om vinteren",)
) -> MeetingHeld:
    return MeetingHeld(
        meeting_id=meeting_id,
        kind=MeetingKind.DIALOGUE_MEETING,
        title="Dialogmøde om hjemløshed",
        date=date(2027, 3, 4),
        starts_at=HELD_AT,
        held_at=HELD_AT,
        attendee_count=12,
        outcomes=list(outcomes),
    )


def ambassador(ambassador_id: str, kind: Kind, skills: list[str], **fields: Any) -> Activated:
    return Activated(
        ambassador_id=ambassador_id,
        name=f"Kontakt {ambassador_id}",
        email=f"{ambassador_id}@example.org",
        kind=kind,
        organisation=None if kind == Kind.CITIZEN else f"Organisation {ambassador_id}",
        public=True,
        skills=skills,
        certificate=CertificateRef(
            number="FRC-2027-000001", verification_code="ABCD-EFGH", bucket="c", object_name="o"
        ),
        **fields,
    )


def challenge(**fields: Any) -> RaiseChallenge:
    return RaiseChallenge.model_validate(
        {"title": "Vinterværested", "description": "Et varmt sted om vinteren.", **fields}
    )


# ---------------------------------------------------------------- challenges


async def test_a_held_meetings_outcome_is_a_candidate_until_a_challenge_takes_it_up(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(held(outcomes=("Et værested om vinteren", "Gældsrådgivning på biblioteket")))
    listed = await h.call(Endpoints.CANDIDATES, ListCandidates())
    assert [(c.meeting.meeting_id, c.meeting.outcome_number) for c in listed.items] == [
        ("m1", 1),
        ("m1", 2),
    ]
    raised = await h.call(
        Endpoints.RAISE_CHALLENGE, challenge(from_meeting="m1", from_outcome=2, themes=[6])
    )
    assert raised.status == ChallengeStatus.OPEN and raised.raised_by == "operator:tests"
    assert raised.from_meeting is not None
    assert raised.from_meeting.outcome == "Gældsrådgivning på biblioteket"
    [event] = h.emitted_of(ChallengeRaised)
    assert (event.from_meeting_id, event.from_outcome) == ("m1", 2)
    left = await h.call(Endpoints.CANDIDATES, ListCandidates())
    assert [c.meeting.outcome_number for c in left.items] == [1]
    # The same outcome cannot be taken up twice.
    again = await h.fails(Endpoints.RAISE_CHALLENGE, challenge(from_meeting="m1", from_outcome=2))
    assert again.code == ErrorCode.CONFLICT and raised.id in again.error.message


async def test_which_outcome_must_be_said_when_the_meeting_had_several(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(held(outcomes=("Et", "To")), held("m2", outcomes=("Kun ét",)))
    unsaid = await h.fails(Endpoints.RAISE_CHALLENGE, challenge(from_meeting="m1"))
    assert unsaid.code == ErrorCode.VALIDATION_FAILED
    assert [d.field for d in unsaid.error.details] == ["from_outcome"]
    assert "1: Et; 2: To" in unsaid.error.details[0].message
    too_far = await h.fails(Endpoints.RAISE_CHALLENGE, challenge(from_meeting="m1", from_outcome=3))
    assert [d.field for d in too_far.error.details] == ["from_outcome"]
    only = await h.call(Endpoints.RAISE_CHALLENGE, challenge(from_meeting="m2"))
    assert only.from_meeting is not None and only.from_meeting.outcome == "Kun ét"
    unknown = await h.fails(Endpoints.RAISE_CHALLENGE, challenge(from_meeting="m9"))
    assert unknown.code == ErrorCode.NOT_FOUND
    assert len(h.emitted_of(ChallengeRaised)) == 1


async def test_a_dropped_challenge_keeps_its_reason_and_cannot_be_dropped_again(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    raised = await h.call(Endpoints.RAISE_CHALLENGE, challenge(skills=["Lektie hjælp"]))
    assert raised.skills == ["lektie-hjælp"] and raised.skills_as_matched == ["lektiehjælp"]
    dropped = await h.call(
        Endpoints.DROP_CHALLENGE, DropChallenge(challenge_id=raised.id, reason="Løst af andre")
    )
    assert dropped.status == ChallengeStatus.DROPPED and dropped.drop_reason == "Løst af andre"
    twice = await h.fails(
        Endpoints.DROP_CHALLENGE, DropChallenge(challenge_id=raised.id, reason="Igen")
    )
    assert twice.code == ErrorCode.INVALID_STATE
    page = await h.call(Endpoints.LIST_CHALLENGES, ListChallenges(status=ChallengeStatus.OPEN))
    assert page.total == 0
    shown = await h.call(Endpoints.SHOW_CHALLENGE, ShowChallenge(challenge_id=raised.id))
    assert shown == dropped
    refused = await h.fails(Endpoints.SUGGEST, Suggest(challenge_id=raised.id))
    assert refused.code == ErrorCode.INVALID_STATE


async def test_a_challenge_needs_a_title_and_a_description_with_text(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    refused = await h.fails(
        Endpoints.RAISE_CHALLENGE, {"title": "  ", "description": "\u200b", "themes": [13]}
    )
    assert refused.code == ErrorCode.VALIDATION_FAILED
    assert {d.field for d in refused.error.details} == {"title", "description", "themes.0"}
    assert h.db.documents("challenges") == []


# ---------------------------------------------------------------- the suggested team


async def test_the_team_covers_the_skills_and_the_minimums_and_explains_each_pick(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(
        ambassador("c1", Kind.CITIZEN, ["lektie-hjælp"], core_areas=[CoreArea.HOUSING]),
        ambassador("c2", Kind.CITIZEN, ["skak"]),
        ambassador("m1", Kind.MUNICIPAL_UNIT, ["gældsrådgivning"]),
        ambassador("a1", Kind.ASSOCIATION, ["madlavning", "frivillige"]),
        ambassador("a2", Kind.ASSOCIATION, ["skak"]),
        ambassador("o1", Kind.ORGANISATION, ["rådgivning"]),
    )
    raised = await h.call(
        Endpoints.RAISE_CHALLENGE,
        challenge(skills=["lektiehjælp", "gæld"], core_areas=["housing"]),
    )
    team = await h.call(
        Endpoints.SUGGEST,
        Suggest(
            challenge_id=raised.id,
            size_min=3,
            size_max=4,
            require_skills=["mad"],
            require_kinds={Kind.CITIZEN: 1, Kind.MUNICIPAL_UNIT: 1, Kind.ASSOCIATION: 1},
            why_not=["c2", "nobody"],
        ),
    )
    assert team.required_skills == ["lektiehjælp", "gældsrådgivning", "madlavning"]
    ids = {p.ambassador_id for p in team.members}
    assert {"c1", "m1", "a1"} <= ids and 3 <= len(ids) <= 4
    assert team.gaps == [] and team.unmet == []
    [c1] = [p for p in team.members if p.ambassador_id == "c1"]
    assert c1.covers == ["lektiehjælp"] and "kind:citizen" in c1.fills
    assert c1.terms["skills"] > 0 and c1.terms["core_areas"] > 0
    assert "lektiehjælp" in c1.reason and c1.name == "Kontakt c1"
    why = {w.ambassador_id: w.reason for w in team.why_not}
    assert set(why) == {"c2", "nobody"} and why["c2"] and why["nobody"]


async def test_nobody_paused_excluded_withdrawn_or_at_their_limit_is_suggested(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(
        ambassador("p1", Kind.CITIZEN, ["mentor"], paused_until=date(2099, 1, 1)),
        ambassador("x1", Kind.CITIZEN, ["mentor"]),
        ambassador("w1", Kind.CITIZEN, ["mentor"]),
        ambassador("ok", Kind.ASSOCIATION, ["madlavning"]),
    )
    await h.deliver(Withdrawn(ambassador_id="w1"))
    raised = await h.call(Endpoints.RAISE_CHALLENGE, challenge(skills=["mentor"]))
    team = await h.call(
        Endpoints.SUGGEST,
        Suggest(challenge_id=raised.id, size_min=1, size_max=3, exclude=["x1"], why_not=["p1"]),
    )
    assert [p.ambassador_id for p in team.members] == ["ok"]
    assert team.gaps and "mentor" in team.gaps[0]
    assert "2099-01-01" in team.why_not[0].reason


async def test_a_profile_change_reaches_the_next_suggestion(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(ambassador("a1", Kind.ASSOCIATION, ["skak"]))
    raised = await h.call(Endpoints.RAISE_CHALLENGE, challenge(skills=["mentor"]))
    before = await h.call(
        Endpoints.SUGGEST, Suggest(challenge_id=raised.id, size_min=1, size_max=2)
    )
    assert before.gaps
    await h.deliver(
        ProfileUpdated(
            ambassador_id="a1",
            name="Kontakt a1",
            email="a1@example.org",
            kind=Kind.ASSOCIATION,
            organisation="Organisation a1",
            public=True,
            skills=["mentorordning"],
            changed=["skills"],
            status=AmbassadorStatus.ACTIVE,
        )
    )
    after = await h.call(Endpoints.SUGGEST, Suggest(challenge_id=raised.id, size_min=1, size_max=2))
    assert after.gaps == [] and [p.covers for p in after.members] == [["mentor"]]


# ---------------------------------------------------------------- skills


async def test_the_vocabulary_counts_ambassadors_and_a_merge_joins_two_names(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(
        ambassador("a1", Kind.ASSOCIATION, ["lektie-hjælp", "skak"]),
        ambassador("a2", Kind.ASSOCIATION, ["lektiecafé", "brætspil"]),
    )
    vocabulary = {e.skill: e for e in (await h.call(Endpoints.SKILLS, ListSkills())).items}
    assert vocabulary["lektiehjælp"].count == 2 and vocabulary["lektiehjælp"].in_vocabulary
    assert "lektiecafé" in vocabulary["lektiehjælp"].synonyms
    assert vocabulary["skak"].count == 1 and not vocabulary["skak"].in_vocabulary
    merged = await h.call(
        Endpoints.MERGE_SKILLS, MergeSkills(from_skill="skak", into_skill="brætspil")
    )
    assert (merged.into_skill, merged.ambassadors) == ("brætspil", 2)
    after = {e.skill: e for e in (await h.call(Endpoints.SKILLS, ListSkills())).items}
    assert "skak" not in after and after["brætspil"].count == 2
    assert after["brætspil"].synonyms == ["skak"]
    backwards = await h.fails(
        Endpoints.MERGE_SKILLS, MergeSkills(from_skill="brætspil", into_skill="skak")
    )
    assert backwards.code == ErrorCode.CONFLICT


# ---------------------------------------------------------------- networks


def link(network_id: str, ambassador_id: str) -> str:
    """The token the newsletter service puts in the invitation mail."""
    return Signer(SECRET, NETWORK_ANSWER).sign(network_id, ambassador_id)


async def formed(h: ServiceHarness, **fields: Any) -> NetworkDetail:
    await h.deliver(
        ambassador("c1", Kind.CITIZEN, ["lektiehjælp"]),
        ambassador("m1", Kind.MUNICIPAL_UNIT, ["rådgivning"]),
        ambassador("a1", Kind.ASSOCIATION, ["madlavning"]),
    )
    raised = await h.call(Endpoints.RAISE_CHALLENGE, challenge(skills=["lektiehjælp"]))
    return await h.call(
        Endpoints.FORM,
        FormNetwork.model_validate(
            {"challenge_id": raised.id, "members": ["c1", "m1", "a1"], "lead": "m1", **fields}
        ),
    )


async def test_forming_invites_every_member_by_mail_and_takes_the_challenge_up(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    detail = await formed(h, ends="2099-06-30", size_min=3, size_max=5)
    network = detail.network
    assert (network.kind, network.status, network.title) == (
        NetworkKind.ACTION,
        NetworkStatus.FORMING,
        "Vinterværested",
    )
    assert network.counts.invited == 3 and network.lead == "m1"
    assert [m.ambassador_id for m in detail.members if m.lead] == ["m1"]
    invited = h.emitted_of(MemberInvited)
    assert sorted(e.ambassador_id for e in invited) == ["a1", "c1", "m1"]
    assert all(
        e.email.endswith("@example.org") and e.network.title == "Vinterværested" for e in invited
    )
    # The reply deadline is a week from now; no token travels.
    assert all(e.reply_by == h.clock.now() + timedelta(days=7) for e in invited)
    assert "token" not in invited[0].model_dump()
    [event] = h.emitted_of(NetworkFormed)
    assert event.invited == 3
    shown = await h.call(
        Endpoints.SHOW_CHALLENGE, ShowChallenge(challenge_id=network.challenge_id or "")
    )
    assert shown.status == ChallengeStatus.TAKEN_UP
    assert [c.what for c in network.history] == ["formed"]
    assert network.history[0].actor == "operator:tests"


async def test_forming_with_someone_not_active_names_them_and_changes_nothing(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(ambassador("c1", Kind.CITIZEN, []))
    raised = await h.call(Endpoints.RAISE_CHALLENGE, challenge())
    refused = await h.fails(
        Endpoints.FORM, FormNetwork(challenge_id=raised.id, members=["c1", "ghost"])
    )
    assert refused.code == ErrorCode.VALIDATION_FAILED and "ghost" in refused.error.message
    assert h.db.documents("networks") == [] and h.db.documents("memberships") == []
    backwards = await h.fails(
        Endpoints.FORM,
        {"challenge_id": raised.id, "members": ["c1"], "size_min": 8, "size_max": 3},
    )
    assert backwards.code == ErrorCode.VALIDATION_FAILED
    wrong_kind = await h.fails(
        Endpoints.FORM, {"challenge_id": raised.id, "members": ["c1"], "kind": "staff"}
    )
    assert [d.field for d in wrong_kind.error.details] == ["kind"]


async def test_members_answer_through_their_links_and_a_network_starts_with_one(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    network = (await formed(h)).network
    not_yet = await h.fails(Endpoints.START, StartNetwork(network_id=network.id))
    assert not_yet.code == ErrorCode.INVALID_STATE
    joined = await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "c1"), accept=True)
    )
    assert joined.state == MemberState.JOINED
    # The link clicked again changes nothing and announces nothing again.
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "c1"), accept=True)
    )
    assert [e.ambassador_id for e in h.emitted_of(MemberJoined)] == ["c1"]
    declined = await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "a1"), accept=False)
    )
    assert declined.state == MemberState.DECLINED
    page = await h.call(Endpoints.INVITATION, ShowNetworkInvitation(token=link(network.id, "a1")))
    assert page.state == MemberState.DECLINED and page.challenge_title == "Vinterværested"
    forged = await h.fails(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "nobody"), accept=True)
    )
    assert forged.code == ErrorCode.INVALID_TOKEN
    started = await h.call(Endpoints.START, StartNetwork(network_id=network.id))
    assert started.network.status == NetworkStatus.ACTIVE
    [event] = h.emitted_of(NetworkStarted)
    assert event.members == 1
    # Someone who declined may be asked again.
    again = await h.call(
        Endpoints.INVITE, InviteMembers(network_id=network.id, ambassador_ids=["a1", "c1"])
    )
    assert again.network.counts.invited == 2 and again.network.counts.joined == 1
    assert [c.what for c in again.network.history] == ["formed", "started", "invited"]


async def test_closing_with_an_initiative_names_the_public_organisations(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    network = (await formed(h)).network
    for who in ("c1", "m1"):
        await h.call(
            Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, who), accept=True)
        )
    await h.call(Endpoints.START, StartNetwork(network_id=network.id))
    closed = await h.call(
        Endpoints.CLOSE,
        CloseNetwork(
            network_id=network.id, outcome=Outcome.INITIATIVE, summary="Værestedet åbnede."
        ),
    )
    assert closed.network.status == NetworkStatus.CLOSED
    assert closed.network.initiative_title == "Vinterværested"  # the network's own title
    [event] = h.emitted_of(NetworkClosed)
    # The citizen is no organisation; the declined or unanswered are not members.
    assert event.organisations == ["Organisation m1"] and event.outcome == Outcome.INITIATIVE
    twice = await h.fails(
        Endpoints.CLOSE,
        CloseNetwork(network_id=network.id, outcome=Outcome.NO_RESULT, summary="Igen"),
    )
    assert twice.code == ErrorCode.INVALID_STATE
    late = await h.fails(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "a1"), accept=True)
    )
    assert late.code == ErrorCode.INVALID_STATE
    gone = await h.fails(Endpoints.REMOVE, RemoveMember(network_id=network.id, ambassador_id="c1"))
    assert gone.code == ErrorCode.INVALID_STATE
    # A closed network weighs on nobody.
    assert all(not d["network_open"] for d in h.db.documents("memberships"))


async def test_a_member_who_withdraws_or_is_erased_leaves_every_network(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    network = (await formed(h)).network
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "c1"), accept=True)
    )
    await h.deliver(Withdrawn(ambassador_id="c1"), Erased(ambassador_id="a1"))
    [left] = h.emitted_of(MemberLeft)
    assert (left.ambassador_id, left.reason) == ("c1", "withdrawn")
    shown = await h.call(Endpoints.SHOW, ShowNetwork(network_id=network.id))
    states = {m.ambassador_id: m.state for m in shown.members}
    assert states == {"c1": MemberState.REMOVED, "m1": MemberState.INVITED}
    assert not any(d["ambassador_id"] == "a1" for d in h.db.documents("memberships"))


async def test_a_standing_staff_network_is_active_at_once_and_a_member_can_be_removed(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(*(ambassador(f"s{i}", Kind.MUNICIPAL_UNIT, []) for i in range(5)))
    created = await h.call(
        Endpoints.CREATE,
        CreateNetwork(
            kind=NetworkKind.STAFF, title="Akutteam", members=[f"s{i}" for i in range(5)]
        ),
    )
    assert created.network.status == NetworkStatus.ACTIVE and created.network.counts.invited == 5
    network_id = created.network.id
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network_id, "s0"), accept=True)
    )
    removed = await h.call(
        Endpoints.REMOVE, RemoveMember(network_id=network_id, ambassador_id="s0")
    )
    assert removed.network.counts.removed == 1
    [left] = h.emitted_of(MemberLeft)
    assert left.reason == "removed"
    listed = await h.call(Endpoints.LIST, ListNetworks(kind=NetworkKind.STAFF))
    assert [n.id for n in listed.items] == [network_id]


async def test_the_networks_someone_is_in_weigh_on_their_next_suggestion(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    network = (await formed(h)).network
    raised = await h.call(Endpoints.RAISE_CHALLENGE, challenge(skills=["lektiehjælp"]))
    ask = Suggest(challenge_id=raised.id, size_min=1, size_max=3)

    def terms_of_c1(team: Suggestion) -> dict[str, int]:
        [c1] = [p for p in team.members if p.ambassador_id == "c1"]
        return c1.terms

    invited_only = terms_of_c1(await h.call(Endpoints.SUGGEST, ask))
    assert "active_networks" not in invited_only and invited_only["recent_invitations"] < 0
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "c1"), accept=True)
    )
    joined = terms_of_c1(await h.call(Endpoints.SUGGEST, ask))
    assert joined["active_networks"] < 0 and joined["recent_invitations"] < 0
    # Invitations older than the window weigh no more.
    h.clock.travel(timedelta(days=91))
    later = terms_of_c1(await h.call(Endpoints.SUGGEST, ask))
    assert "recent_invitations" not in later and later["active_networks"] < 0


# ---------------------------------------------------------------- the initiatives goal


def test_initiatives_count_networks_started_and_meetings_held_in_the_period_only() -> None:
    found = initiatives.initiatives(
        [(date(2026, 3, 2), NetworkKind.ACTION), (date(2026, 3, 9), NetworkKind.STAFF),
         (date(2025, 12, 31), NetworkKind.VOLUNTEER)],
        [(date(2026, 1, 15), MeetingKind.DIALOGUE_MEETING),
         (date(2026, 3, 1), MeetingKind.THEME_DAY),
         (date(2026, 2, 1), MeetingKind.AMBASSADOR_MEETING)],
        start=date(2026, 1, 1), end=date(2027, 12, 31), target=30, today=date(2026, 4, 10),
    )  # fmt: skip
    # A staff network is standing, not an initiative; an ambassador meeting is not either.
    assert (found.started, found.networks, found.meetings) == (3, 1, 2)
    assert found.by_kind == {"action": 1, "dialogue_meeting": 1, "theme_day": 1}
    assert [(m.month, m.total) for m in found.months] == [
        ("2026-01", 1), ("2026-02", 1), ("2026-03", 3), ("2026-04", 3),
    ]  # fmt: skip
    assert found.progress == pytest.approx(0.1)


async def test_the_initiatives_goal_counts_what_the_service_saw_started_and_held(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    h.clock.travel(to=datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    network = (await formed(h)).network
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "c1"), accept=True)
    )
    await h.call(Endpoints.START, StartNetwork(network_id=network.id))
    meeting = held("m7").model_copy(update={"date": date(2026, 5, 20)})
    await h.deliver(meeting)
    found = await h.call(Endpoints.INITIATIVES, GetInitiatives())
    assert (found.started, found.networks, found.meetings, found.target) == (2, 1, 1, 30)
    assert found.months[-1].month == "2026-06" and found.months[-1].total == 2


# ---------------------------------------------------------------- staff are told


async def test_a_decline_offers_staff_the_replacement_that_keeps_the_rules(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(
        ambassador("c2", Kind.CITIZEN, ["lektiehjælp"]),
        ambassador("a2", Kind.ASSOCIATION, ["lektiehjælp"]),
    )
    network = (
        await formed(h, require_kinds={"citizen": 1, "municipal_unit": 1}, size_min=3)
    ).network
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "c1"), accept=False)
    )
    [notice] = h.emitted_of(StaffNotice)
    assert (notice.kind, notice.about, notice.why) == (NoticeKind.REPLACEMENT, "c1", "declined")
    # The citizen who declined leaves the minimum of one citizen to fill: c2, not a2.
    assert [r.ambassador_id for r in notice.replacements] == ["c2"]
    assert notice.replacements[0].fills == ["kind:citizen"]


async def test_an_invitation_past_its_deadline_expires_and_a_replacement_is_offered(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, ctx = service
    network = (await formed(h)).network
    for who in ("c1", "m1"):
        await h.call(
            Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, who), accept=True)
        )
    await notices.step(ctx)
    assert h.emitted_of(StaffNotice) == []
    h.clock.travel(timedelta(days=8))
    await notices.step(ctx)
    [notice] = h.emitted_of(StaffNotice)
    assert (notice.about, notice.why) == ("a1", "expired")
    shown = await h.call(Endpoints.SHOW, ShowNetwork(network_id=network.id))
    assert {m.ambassador_id: m.state for m in shown.members}["a1"] == MemberState.EXPIRED
    await notices.step(ctx)  # once only
    assert len(h.emitted_of(StaffNotice)) == 1
    # A late no needs no second replacement: one was offered when it expired.
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "a1"), accept=False)
    )
    assert len(h.emitted_of(StaffNotice)) == 1
    # A late yes is still welcome.
    late = await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "a1"), accept=True)
    )
    assert late.state == MemberState.JOINED


async def test_staff_are_told_when_a_member_leaves_the_network_below_its_rules(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    network = (await formed(h, require_kinds={"municipal_unit": 1})).network
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "m1"), accept=True)
    )
    await h.deliver(Withdrawn(ambassador_id="m1"))
    [notice] = h.emitted_of(StaffNotice)
    assert (notice.kind, notice.about, notice.why) == (NoticeKind.BELOW_RULES, "m1", "withdrawn")
    assert notice.unmet == ["1 mere af slagsen kommunal enhed"]


async def test_staff_are_told_a_week_before_a_network_ends_once(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, ctx = service
    ends = (h.clock.now() + timedelta(days=30)).date()
    await formed(h, ends=ends.isoformat())
    await notices.step(ctx)
    assert h.emitted_of(StaffNotice) == []
    h.clock.travel(timedelta(days=24))
    await notices.step(ctx)
    await notices.step(ctx)
    ending = [n for n in h.emitted_of(StaffNotice) if n.kind == NoticeKind.ENDING_SOON]
    assert len(ending) == 1 and ending[0].network.ends == ends


# ---------------------------------------------------------------- call-outs


def alert_link(alert_id: str, ambassador_id: str) -> str:
    return Signer(SECRET, ALERT_ANSWER).sign(alert_id, ambassador_id)


async def test_a_call_out_reaches_every_member_at_once_and_records_who_can_help_in_time(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    await h.deliver(*(ambassador(f"s{i}", Kind.MUNICIPAL_UNIT, []) for i in range(4)))
    created = await h.call(
        Endpoints.CREATE,
        CreateNetwork(
            kind=NetworkKind.STAFF, title="Akutteam", members=[f"s{i}" for i in range(4)]
        ),
    )
    network_id = created.network.id
    for i in range(3):
        await h.call(
            Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network_id, f"s{i}"), accept=True)
        )
    sent = await h.call(
        Endpoints.ALERT,
        AlertNetwork(network_id=network_id, message="En familie står uden bolig i aften."),
    )
    # Only those who joined are called out, one event each with their address.
    assert sent.sent_to == 3
    assert sorted(e.ambassador_id for e in h.emitted_of(NetworkAlerted)) == ["s0", "s1", "s2"]
    assert "token" not in h.emitted_of(NetworkAlerted)[0].model_dump()
    await h.call(
        Endpoints.ANSWER_ALERT, AnswerAlert(token=alert_link(sent.id, "s0"), can_help=True)
    )
    await h.call(
        Endpoints.ANSWER_ALERT, AnswerAlert(token=alert_link(sent.id, "s1"), can_help=False)
    )
    h.clock.travel(timedelta(hours=3))
    late = await h.call(
        Endpoints.ANSWER_ALERT, AnswerAlert(token=alert_link(sent.id, "s2"), can_help=True)
    )
    assert late.can_help is True
    await h.call(Endpoints.REMOVE, RemoveMember(network_id=network_id, ambassador_id="s1"))
    taken_out = await h.fails(
        Endpoints.ANSWER_ALERT, AnswerAlert(token=alert_link(sent.id, "s1"), can_help=True)
    )
    assert taken_out.code == ErrorCode.INVALID_STATE
    outsider = await h.fails(
        Endpoints.ANSWER_ALERT, AnswerAlert(token=alert_link(sent.id, "s3"), can_help=True)
    )
    assert outsider.code == ErrorCode.INVALID_TOKEN
    [summary] = (await h.call(Endpoints.SHOW, ShowNetwork(network_id=network_id))).alerts
    assert (summary.can_help, summary.can_help_late, summary.cannot) == (["s0"], ["s2"], ["s1"])


async def test_only_a_staff_network_with_members_is_called_out(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    action = (await formed(h)).network
    refused = await h.fails(Endpoints.ALERT, AlertNetwork(network_id=action.id, message="Hjælp"))
    assert refused.code == ErrorCode.INVALID_STATE
    empty = await h.call(Endpoints.CREATE, CreateNetwork(kind=NetworkKind.STAFF, title="Tomt"))
    nobody = await h.fails(
        Endpoints.ALERT, AlertNetwork(network_id=empty.network.id, message="Hjælp")
    )
    assert nobody.code == ErrorCode.INVALID_STATE and h.emitted_of(NetworkAlerted) == []


async def test_an_erased_member_leaves_the_network_and_staff_are_told_without_a_name(
    service: tuple[ServiceHarness, Context],
) -> None:
    h, _ = service
    network = (await formed(h, require_kinds={"municipal_unit": 1})).network
    await h.call(
        Endpoints.ANSWER, AnswerNetworkInvitation(token=link(network.id, "m1"), accept=True)
    )
    await h.deliver(Erased(ambassador_id="m1"))
    [notice] = h.emitted_of(StaffNotice)
    assert (notice.kind, notice.about, notice.why) == (NoticeKind.BELOW_RULES, None, "erased")
    assert "m1" not in notice.model_dump_json()
