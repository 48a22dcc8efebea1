"""The whole pipeline: score, shortlist, solve, explain; and why someone is not in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from services.networks.matching import explain
from services.networks.matching.explain import Suggestion, Unmet
from services.networks.matching.pool import Pool
from services.networks.matching.scoring import Fatigue, Ineligible, Rules, Scores, Wanted, score
from services.networks.matching.shortlist import OVERALL, PER_GROUP, PER_SKILL, shortlist
from services.networks.matching.solver import (
    DETERMINISTIC_TIME,
    SEED,
    WALL_TIME,
    Problem,
    Solution,
    solve,
)


@dataclass(frozen=True)
class Limits:
    """How wide the shortlist is and how long the solver may search."""

    per_skill: int = PER_SKILL
    per_group: int = PER_GROUP
    overall: int = OVERALL
    deterministic_time: float = DETERMINISTIC_TIME
    wall_time: float = WALL_TIME
    seed: int = SEED


@dataclass(frozen=True)
class _Prepared:
    scores: Scores
    short: NDArray[np.int64]
    problem: Problem


def _prepare(
    pool: Pool, wanted: Wanted, rules: Rules, fatigue: Fatigue, today: date, limits: Limits
) -> _Prepared:
    scores = score(pool, wanted, rules, fatigue, today)
    short = shortlist(
        scores,
        rules,
        per_skill=limits.per_skill,
        per_group=limits.per_group,
        overall=limits.overall,
    )
    meets = scores.meets[:, short]
    problem = Problem(
        ids=tuple(pool.id_of(slot) for slot in short.tolist()),
        weights=tuple(scores.total[short].tolist()),
        members=tuple(tuple(np.flatnonzero(row).tolist()) for row in meets),
        needs=tuple(req.need for req in scores.requirements),
        size_min=rules.size_min,
        size_max=rules.size_max,
    )
    return _Prepared(scores, short, problem)


def _solve(problem: Problem, limits: Limits) -> Solution:
    return solve(
        problem,
        deterministic_time=limits.deterministic_time,
        wall_time=limits.wall_time,
        seed=limits.seed,
    )


def _available(scores: Scores) -> list[int]:
    """Per rule: how many who can be asked count toward it, in the whole pool."""
    counts = np.count_nonzero(scores.meets & scores.eligible, axis=1)
    return [int(c) for c in counts]


def _unmet(
    rules: Rules, prepared: _Prepared, solution: Solution, available: list[int]
) -> tuple[Unmet, ...]:
    scores = prepared.scores
    considered = int(np.count_nonzero(scores.eligible))
    unmet: list[Unmet] = []
    if considered < rules.size_min:
        unmet.append(explain.unmet_size(rules.size_min, considered))
    for r, req in enumerate(scores.requirements):
        short = solution.shortfall[r]
        if short:
            unmet.append(
                explain.unmet_rule(
                    req,
                    have=req.need - short,
                    available=available[r],
                    size_max=rules.size_max,
                    proven=solution.method == "optimal",
                )
            )
    return tuple(unmet)


def suggest(
    pool: Pool,
    wanted: Wanted,
    rules: Rules,
    fatigue: Fatigue,
    today: date,
    *,
    limits: Limits = Limits(),
) -> Suggestion:
    """The best team for the challenge under the rules, each member with their reasons."""
    prepared = _prepare(pool, wanted, rules, fatigue, today, limits)
    solution = _solve(prepared.problem, limits)
    scores, short = prepared.scores, prepared.short
    members = tuple(
        explain.pick(scores, slot, pool.id_of(slot)) for slot in short[list(solution.team)].tolist()
    )
    available = _available(scores)
    gaps = tuple(
        explain.gap(req.value)
        for r, req in enumerate(scores.requirements)
        if req.kind == "skill" and available[r] == 0
    )
    return Suggestion(
        members=members,
        gaps=gaps,
        unmet=_unmet(rules, prepared, solution, available),
        method=solution.method,
        objective=solution.objective,
        considered=int(np.count_nonzero(scores.eligible)),
        shortlisted=int(short.size),
    )


def why_not(
    pool: Pool,
    wanted: Wanted,
    rules: Rules,
    fatigue: Fatigue,
    today: date,
    ambassador_id: str,
    suggestion: Suggestion,
    *,
    limits: Limits = Limits(),
) -> str:
    """Why ``ambassador_id`` is not in ``suggestion``, in one plain sentence."""
    slot = pool.index_of(ambassador_id)
    if slot is None:
        return explain.not_known(ambassador_id)
    row = pool.row(ambassador_id)
    if row is None:
        return explain.not_active(ambassador_id)
    if ambassador_id in suggestion.ids:
        return explain.in_team(ambassador_id)

    prepared = _prepare(pool, wanted, rules, fatigue, today, limits)
    scores = prepared.scores
    reason = Ineligible(int(scores.reason[slot]))
    if reason is Ineligible.EXCLUDED:
        return explain.excluded(ambassador_id)
    if reason is Ineligible.PAUSED and row.paused_until is not None:
        return explain.paused(ambassador_id, row.paused_until)
    if reason is Ineligible.AT_LIMIT and row.networks_at_once is not None:
        active = int(scores.active_networks[slot])
        return explain.at_limit(ambassador_id, active, row.networks_at_once)

    positions = np.flatnonzero(prepared.short == slot)
    if positions.size == 0:
        key = scores.order_key()
        rank = 1 + int(np.count_nonzero(scores.eligible & (key > key[slot])))
        eligible = int(np.count_nonzero(scores.eligible))
        return explain.not_shortlisted(ambassador_id, int(scores.total[slot]), rank, eligible)

    problem = prepared.problem
    forced = Problem(
        ids=problem.ids,
        weights=problem.weights,
        members=problem.members,
        needs=problem.needs,
        size_min=problem.size_min,
        size_max=problem.size_max,
        forced=(int(positions[0]),),
    )
    with_them = _solve(forced, limits)
    before = {u.rule: u.need - u.have for u in suggestion.unmet}
    worse = [
        req.label
        for req, short in zip(scores.requirements, with_them.shortfall, strict=True)
        if short > before.get(req.name, 0)
    ]
    if with_them.missing > sum(v for k, v in before.items() if k != "size") and worse:
        return explain.breaks_rules(ambassador_id, worse, with_them.method == "optimal")
    team = [problem.ids[i] for i in with_them.team]
    return explain.forced_team(
        ambassador_id,
        suggested=suggestion.objective,
        with_them=with_them.objective,
        replaced=[m for m in suggestion.ids if m not in team],
        joined=[m for m in team if m not in suggestion.ids and m != ambassador_id],
    )
