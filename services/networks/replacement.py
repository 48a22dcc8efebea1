"""What a network still needs when a member is gone (pure): the rules it was formed by,
less what the members still in it (or still invited) fill. The best replacement is the one
person who fills most of that (the matching, with those rules and a team of one)."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.ambassadors import CORE_AREA_LABELS, KIND_LABELS
from services.networks.lifecycle import TeamRules
from services.networks.matching import CandidateRow, Rules


def residual(rules: TeamRules, members: Sequence[CandidateRow], asked: Sequence[str]) -> Rules:
    """A team of one that covers what ``members`` leave uncovered; ``asked``: everyone the
    network has asked already, who is not suggested again."""
    have_skills = {s for m in members for s in m.skills}
    return Rules(
        size_min=1,
        size_max=1,
        required_skills=tuple(s for s in rules.required_skills if s not in have_skills),
        kind_minimums={
            kind: need - sum(1 for m in members if m.kind == kind)
            for kind, need in rules.kind_minimums.items()
            if need > sum(1 for m in members if m.kind == kind)
        },
        core_area_minimums={
            area: need - sum(1 for m in members if area in m.core_areas)
            for area, need in rules.core_area_minimums.items()
            if need > sum(1 for m in members if area in m.core_areas)
        },
        exclude=frozenset(asked),
    )


def unmet(rules: TeamRules, members: Sequence[CandidateRow]) -> list[str]:
    """The rules ``members`` do not meet, in Danish for the project leaders' mail (empty:
    every rule is met)."""
    left = residual(rules, members, ())
    found = [f"nogen med kompetencen {s}" for s in left.required_skills]
    found += [
        f"{n} mere af slagsen {KIND_LABELS[k].lower()}" for k, n in left.kind_minimums.items()
    ]
    found += [
        f"{n} mere med kerneområdet {CORE_AREA_LABELS[a].lower()}"
        for a, n in left.core_area_minimums.items()
    ]
    if rules.size_min is not None and len(members) < rules.size_min:
        found.append(f"mindst {rules.size_min} medlemmer (nu {len(members)})")
    return found
