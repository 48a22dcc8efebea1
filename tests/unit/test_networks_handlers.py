"""The networks service's handlers in memory: challenges raised from held meetings'
outcomes, the suggested team from the ambassadors it knows, and the skill vocabulary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from contracts.ambassadors import (
    Activated,
    CertificateRef,
    CoreArea,
    Kind,
    ProfileUpdated,
    Withdrawn,
)
from contracts.ambassadors import Status as AmbassadorStatus
from contracts.errors import ErrorCode
from contracts.events import MeetingHeld, MeetingKind
from contracts.networks import (
    ChallengeRaised,
    ChallengeStatus,
    DropChallenge,
    Endpoints,
    ListCandidates,
    ListChallenges,
    ListSkills,
    MergeSkills,
    RaiseChallenge,
    ShowChallenge,
    Suggest,
)
from services.networks.app import build
from services.networks.context import Context
from services.networks.settings import NetworksSettings
from services.runtime.testing import ServiceHarness

HELD_AT = datetime(2027, 3, 4, 19, 0, tzinfo=UTC)


@pytest.fixture
async def service() -> AsyncIterator[tuple[ServiceHarness, Context]]:
    yield await ServiceHarness.start(build, NetworksSettings(_env_file=None))


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
