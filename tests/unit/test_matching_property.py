"""The suggested team against a brute force over every team on small random instances."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import combinations
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.ambassadors import CoreArea, Kind
from services.networks.matching import (
    CandidateRow,
    Fatigue,
    Limits,
    Pool,
    Rules,
    Wanted,
    suggest,
    why_not,
)

TODAY = date(2026, 12, 3)
SKILLS = ("a", "b", "c", "d")
KINDS = (Kind.CITIZEN, Kind.MUNICIPAL_UNIT, Kind.ASSOCIATION)
AREAS = tuple(CoreArea)
T = TypeVar("T")


@dataclass(frozen=True)
class Instance:
    rows: tuple[CandidateRow, ...]
    wanted: Wanted
    rules: Rules
    fatigue: Fatigue


def subset(draw: st.DrawFn, options: tuple[T, ...], most: int) -> tuple[T, ...]:
    if not options:
        return ()
    chosen = draw(st.sets(st.sampled_from(options), max_size=most))
    return tuple(o for o in options if o in chosen)


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    rows = tuple(
        CandidateRow(
            id=f"c{i:02d}",
            kind=draw(st.sampled_from(KINDS)),
            themes=subset(draw, (1, 2, 3, 4), 2),
            core_areas=subset(draw, AREAS, 2),
            skills=subset(draw, SKILLS, 3),
            networks_at_once=draw(st.none() | st.integers(1, 2)),
            paused_until=draw(st.sampled_from([None, None, None, TODAY, TODAY - timedelta(1)])),
        )
        for i in range(draw(st.integers(0, 12)))
    )
    ids = tuple(r.id for r in rows)
    fatigue = {
        rid: (draw(st.integers(0, 2)), draw(st.integers(0, 2))) for rid in subset(draw, ids, 6)
    }
    size_min = draw(st.integers(1, 3))
    rules = Rules(
        size_min=size_min,
        size_max=draw(st.integers(size_min, size_min + 2)),
        required_skills=subset(draw, SKILLS, 3),
        kind_minimums=draw(st.dictionaries(st.sampled_from(KINDS), st.integers(0, 2), max_size=2)),
        core_area_minimums=draw(
            st.dictionaries(st.sampled_from(AREAS), st.integers(0, 2), max_size=1)
        ),
        exclude=frozenset(subset(draw, ids, 2)),
    )
    wanted = Wanted(
        skills=subset(draw, SKILLS, 2),
        themes=subset(draw, (1, 2, 3, 4), 2),
        core_areas=subset(draw, AREAS, 1),
    )
    return Instance(rows, wanted, rules, fatigue)


# ---------------------------------------------------------------- an independent brute force


def can_be_asked(row: CandidateRow, case: Instance) -> bool:
    active = case.fatigue.get(row.id, (0, 0))[0]
    return not (
        row.id in case.rules.exclude
        or (row.paused_until is not None and row.paused_until >= TODAY)
        or (row.networks_at_once is not None and active >= row.networks_at_once)
    )


def weight(row: CandidateRow, case: Instance) -> int:
    active, recent = case.fatigue.get(row.id, (0, 0))
    wanted_skills = set(case.wanted.skills) | set(case.rules.required_skills)
    return (
        10 * len(wanted_skills & set(row.skills))
        + 3 * len(set(case.wanted.themes) & set(row.themes))
        + 4 * len(set(case.wanted.core_areas) & set(row.core_areas))
        - 6 * active
        - 2 * recent
    )


def shortfall(team: tuple[CandidateRow, ...], rules: Rules) -> int:
    missing = sum(1 for s in set(rules.required_skills) if not any(s in r.skills for r in team))
    for kind, need in rules.kind_minimums.items():
        missing += max(0, need - sum(1 for r in team if r.kind == kind))
    for area, need in rules.core_area_minimums.items():
        missing += max(0, need - sum(1 for r in team if area in r.core_areas))
    return missing


def teams(case: Instance) -> list[tuple[CandidateRow, ...]]:
    eligible = tuple(r for r in case.rows if can_be_asked(r, case))
    if len(eligible) < case.rules.size_min:
        return [eligible]
    sizes = range(case.rules.size_min, min(case.rules.size_max, len(eligible)) + 1)
    return [team for size in sizes for team in combinations(eligible, size)]


def best(case: Instance) -> tuple[int, int]:
    """(rule members missing, summed weight) of the best team: fewest missing, then points."""
    missing, points = min(
        (shortfall(team, case.rules), -sum(weight(r, case) for r in team)) for team in teams(case)
    )
    return missing, -points


# ---------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(instances())
def test_the_suggestion_is_as_good_as_the_best_of_every_possible_team(case: Instance) -> None:
    pool = Pool.build(case.rows)
    found = suggest(pool, case.wanted, case.rules, case.fatigue, TODAY)
    by_id = {r.id: r for r in case.rows}
    team = tuple(by_id[m] for m in found.ids)
    eligible = [r for r in case.rows if can_be_asked(r, case)]

    assert all(can_be_asked(r, case) for r in team)
    if len(eligible) < case.rules.size_min:
        assert len(team) == len(eligible)
    else:
        assert case.rules.size_min <= len(team) <= case.rules.size_max
    assert found.objective == sum(weight(r, case) for r in team)
    assert all(m.total == weight(by_id[m.id], case) for m in found.members)

    missing, points = best(case)
    if missing == 0:
        assert shortfall(team, case.rules) == 0
        assert [u.rule for u in found.unmet if u.rule != "size"] == []
    assert found.method == "optimal"
    assert (shortfall(team, case.rules), found.objective) == (missing, points)
    assert sum(u.need - u.have for u in found.unmet if u.rule != "size") == missing


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(instances())
def test_the_greedy_fallback_keeps_to_the_size_and_meets_the_rules_it_reports(
    case: Instance,
) -> None:
    pool = Pool.build(case.rows)
    found = suggest(
        pool, case.wanted, case.rules, case.fatigue, TODAY, limits=Limits(deterministic_time=0)
    )
    by_id = {r.id: r for r in case.rows}
    team = tuple(by_id[m] for m in found.ids)
    eligible = [r for r in case.rows if can_be_asked(r, case)]
    assert found.method == "greedy"
    size_min, size_max = case.rules.size_min, case.rules.size_max
    assert min(size_min, len(eligible)) <= len(team) <= min(size_max, len(eligible))
    missing = shortfall(team, case.rules)
    assert sum(u.need - u.have for u in found.unmet if u.rule != "size") == missing
    best_missing, best_points = best(case)
    assert (missing, -found.objective) >= (best_missing, -best_points)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(instances())
def test_why_not_has_a_sentence_for_everyone_and_members_are_told_they_are_in(
    case: Instance,
) -> None:
    pool = Pool.build(case.rows)
    found = suggest(pool, case.wanted, case.rules, case.fatigue, TODAY)
    for row in case.rows:
        sentence = why_not(pool, case.wanted, case.rules, case.fatigue, TODAY, row.id, found)
        assert sentence.startswith((row.id, "the best team with", "a team with", "with "))
        assert (sentence == f"{row.id} is in the suggested team") == (row.id in found.ids)
