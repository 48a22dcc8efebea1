"""``networks.query.suggest``: the team for a challenge, from the matching's pool.

The challenge's skills and the request's are the required ones (as the vocabulary reads
them); its themes and core areas earn points; networks the person is active in and
invitations of the last days cost points. The matching itself is pure
(``services.networks.matching``); this handler gathers its input and names the people.
"""

from __future__ import annotations

import asyncio

from contracts.ambassadors import CoreArea, Kind
from contracts.errors import ErrorCode, ServiceError
from contracts.events import COPENHAGEN
from contracts.networks import ChallengeStatus, Explanation, Pick, Suggest, Suggestion
from services.networks import matching
from services.networks.challenge_handlers import load_challenge
from services.networks.context import Context
from services.runtime.unit_of_work import Reading


def _limits(ctx: Context) -> matching.Limits:
    return matching.Limits(
        deterministic_time=ctx.settings.networks_solver_deterministic_limit,
        wall_time=ctx.settings.networks_solver_seconds,
    )


async def suggest(ctx: Context, scope: Reading, query: Suggest) -> Suggestion:
    challenge = await load_challenge(scope, query.challenge_id)
    if challenge.status == ChallengeStatus.DROPPED:
        raise ServiceError(
            ErrorCode.INVALID_STATE, f"challenge {challenge.id} was dropped: nothing to suggest"
        )
    fatigue = await ctx.fatigue.current(scope)
    today = scope.now.astimezone(COPENHAGEN).date()
    limits = _limits(ctx)
    async with ctx.pool.using(scope) as (pool, reader):
        required = tuple(
            dict.fromkeys(reader.read(t) for t in (*challenge.skills, *query.require_skills))
        )
        wanted = matching.Wanted(
            skills=required, themes=challenge.themes, core_areas=challenge.core_areas
        )
        rules = matching.Rules(
            size_min=query.size_min,
            size_max=query.size_max,
            required_skills=required,
            kind_minimums={Kind(k): n for k, n in query.require_kinds.items()},
            core_area_minimums={CoreArea(a): n for a, n in query.require_core_areas.items()},
            exclude=frozenset(query.exclude),
        )

        def work() -> tuple[matching.Suggestion, list[tuple[str, str]]]:
            found = matching.suggest(pool, wanted, rules, fatigue, today, limits=limits)
            explained = [
                (
                    who,
                    matching.why_not(
                        pool, wanted, rules, fatigue, today, who, found, limits=limits
                    ),
                )
                for who in dict.fromkeys(query.why_not)
            ]
            return found, explained

        # The solver takes tens of milliseconds: off the loop, so other requests are
        # answered meanwhile; the pool is not changed while it runs (it is held).
        found, explained = await asyncio.to_thread(work)
    people = await ctx.ambassadors.active_by_id(scope, found.ids)
    members = []
    for pick in found.members:
        who = people.get(pick.id)
        if who is None or who.kind is None:
            continue  # withdrawn this very moment: the next suggestion leaves them out
        members.append(
            Pick(
                ambassador_id=pick.id,
                name=who.name,
                organisation=who.organisation,
                kind=who.kind,
                score=pick.total,
                terms=dict(pick.terms),
                covers=list(pick.covers),
                fills=list(pick.fills),
                reason=pick.reason,
            )
        )
    return Suggestion(
        challenge_id=challenge.id,
        size_min=query.size_min,
        size_max=query.size_max,
        required_skills=list(required),
        members=members,
        gaps=[g.sentence for g in found.gaps],
        unmet=[u.sentence for u in found.unmet],
        method=found.method,
        objective=found.objective,
        considered=found.considered,
        shortlisted=found.shortlisted,
        why_not=[Explanation(ambassador_id=a, reason=r) for a, r in explained],
    )
