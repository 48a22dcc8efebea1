"""The challenges' commands and queries, and the initiatives goal: load, call the domain,
save, emit.

Each command runs in the unit of work the runtime gives it (``uow``). The team suggestion
is ``suggesting``, the networks ``network_handlers``, the skill vocabulary
``skill_handlers``, the reactions to other services' events ``reactions``.
"""

from __future__ import annotations

from contracts.errors import ErrorCode, ServiceError
from contracts.events import COPENHAGEN
from contracts.networks import (
    Candidates,
    ChallengeDropped,
    ChallengePage,
    ChallengeRaised,
    ChallengeView,
    DropChallenge,
    GetInitiatives,
    Initiatives,
    ListCandidates,
    ListChallenges,
    OutcomeCandidate,
    RaiseChallenge,
    ShowChallenge,
)
from services.networks import challenges, store
from services.networks import initiatives as counting
from services.networks.challenges import Challenge
from services.networks.context import Context
from services.networks.skills import SkillReader
from services.runtime.unit_of_work import Reading, Scope, UnitOfWork

# ---------------------------------------------------------------- views


def challenge_view(challenge: Challenge, reader: SkillReader) -> ChallengeView:
    return ChallengeView(
        id=challenge.id,
        title=challenge.title,
        description=challenge.description,
        themes=list(challenge.themes),
        core_areas=list(challenge.core_areas),
        skills=list(challenge.skills),
        skills_as_matched=list(reader.read_all(challenge.skills)),
        target_group=challenge.target_group,
        status=challenge.status,
        from_meeting=challenge.from_meeting,
        raised_at=challenge.raised_at,
        raised_by=challenge.raised_by,
        dropped_at=challenge.dropped_at,
        drop_reason=challenge.drop_reason,
    )


async def reader_of(scope: Scope) -> SkillReader:
    return SkillReader(merges=await store.skill_merges(scope))


async def load_challenge(scope: Scope, challenge_id: str) -> Challenge:
    challenge = await store.load_challenge(scope, challenge_id)
    if challenge is None:
        raise ServiceError(ErrorCode.NOT_FOUND, f"challenge {challenge_id} not found")
    return challenge


# ---------------------------------------------------------------- challenges


async def raise_challenge(ctx: Context, uow: UnitOfWork, cmd: RaiseChallenge) -> ChallengeView:
    held = await store.load_held_meeting(uow, cmd.from_meeting) if cmd.from_meeting else None
    origin = challenges.origin(cmd, held)
    taken_by = (
        await store.challenge_of_outcome(uow, origin.meeting_id, origin.outcome_number)
        if origin is not None
        else None
    )
    challenge = challenges.raise_challenge(
        cmd, origin=origin, taken_by=taken_by, now=uow.now, actor=uow.actor or "unknown"
    )
    await store.save_challenge(uow, challenge)
    uow.emit(
        ChallengeRaised(
            challenge_id=challenge.id,
            title=challenge.title,
            themes=list(challenge.themes),
            core_areas=list(challenge.core_areas),
            skills=list(challenge.skills),
            target_group=challenge.target_group,
            from_meeting_id=origin.meeting_id if origin else None,
            from_outcome=origin.outcome_number if origin else None,
        )
    )
    return challenge_view(challenge, await reader_of(uow))


async def drop_challenge(ctx: Context, uow: UnitOfWork, cmd: DropChallenge) -> ChallengeView:
    dropped = challenges.drop(
        await load_challenge(uow, cmd.challenge_id), reason=cmd.reason, now=uow.now
    )
    await store.save_challenge(uow, dropped)
    uow.emit(ChallengeDropped(challenge_id=dropped.id, reason=cmd.reason))
    return challenge_view(dropped, await reader_of(uow))


async def list_challenges(ctx: Context, scope: Reading, query: ListChallenges) -> ChallengePage:
    total, found = await store.challenge_page(scope, query.status, query.limit, query.offset)
    reader = await reader_of(scope)
    return ChallengePage(total=total, items=[challenge_view(c, reader) for c in found])


async def show_challenge(ctx: Context, scope: Reading, query: ShowChallenge) -> ChallengeView:
    return challenge_view(await load_challenge(scope, query.challenge_id), await reader_of(scope))


async def candidates(ctx: Context, scope: Reading, _: ListCandidates) -> Candidates:
    held = await store.held_meetings_with_outcomes(scope)
    taken = await store.taken_outcomes(scope)
    return Candidates(
        items=[OutcomeCandidate(meeting=m) for m in challenges.open_outcomes(held, taken)]
    )


# ---------------------------------------------------------------- the initiatives goal


async def initiatives(ctx: Context, scope: Reading, _: GetInitiatives) -> Initiatives:
    s = ctx.settings
    return counting.initiatives(
        [
            (at.astimezone(COPENHAGEN).date(), kind)
            for at, kind in await store.networks_started(scope)
        ],
        await store.meetings_held(scope),
        start=s.goal_initiatives_from,
        end=s.goal_initiatives_until,
        target=s.goal_initiatives,
        today=scope.now.astimezone(COPENHAGEN).date(),
    )
