"""What a suggestion says in plain English: why each member, what is missing, why not X."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from services.networks.matching.scoring import RECENT_INVITATION_DAYS, Requirement, Scores
from services.networks.matching.solver import Method


@dataclass(frozen=True)
class Pick:
    """One suggested member and every reason they are there."""

    id: str
    total: int
    terms: tuple[tuple[str, int], ...]  # only the non-zero ones
    covers: tuple[str, ...]  # required skills they have
    fills: tuple[str, ...]  # composition rules they count toward, e.g. "kind:citizen"
    reason: str


@dataclass(frozen=True)
class Gap:
    """A required skill that nobody who can be asked has."""

    skill: str
    sentence: str


@dataclass(frozen=True)
class Unmet:
    """A rule the team does not meet; ``rule`` is "size" or a requirement's name."""

    rule: str
    need: int
    have: int
    sentence: str


@dataclass(frozen=True)
class Suggestion:
    members: tuple[Pick, ...]
    gaps: tuple[Gap, ...]
    unmet: tuple[Unmet, ...]
    method: Method
    objective: int
    considered: int  # eligible candidates
    shortlisted: int

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(member.id for member in self.members)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _counts(*items: tuple[int, str, str]) -> str:
    return ", ".join(_count(n, one, many) for n, one, many in items if n)


def reason(scores: Scores, slot: int, covers: Sequence[str], counts_toward: Sequence[str]) -> str:
    """E.g. "covers mentor; counts toward at least 1 citizen; relevance 13 (1 skill,
    1 theme); penalties -6 (1 active network)"."""
    parts: list[str] = []
    if covers:
        parts.append("covers " + ", ".join(covers))
    if counts_toward:
        parts.append("counts toward " + ", ".join(counts_toward))
    points = dict(scores.terms(slot))
    relevance = points.get("skills", 0) + points.get("themes", 0) + points.get("core_areas", 0)
    if relevance:
        shown = _counts(
            (int(scores.skills_matched[slot]), "skill", "skills"),
            (int(scores.themes_shared[slot]), "theme", "themes"),
            (int(scores.core_areas_shared[slot]), "core area", "core areas"),
        )
        parts.append(f"relevance {relevance} ({shown})")
    penalty = points.get("active_networks", 0) + points.get("recent_invitations", 0)
    if penalty:
        days = RECENT_INVITATION_DAYS
        shown = _counts(
            (int(scores.active_networks[slot]), "active network", "active networks"),
            (
                int(scores.recent_invitations[slot]),
                f"invitation in the last {days} days",
                f"invitations in the last {days} days",
            ),
        )
        parts.append(f"penalties {penalty} ({shown})")
    return "; ".join(parts) if parts else "score 0: fills a place in the team"


def pick(scores: Scores, slot: int, ambassador_id: str) -> Pick:
    covers: list[str] = []
    fills: list[str] = []
    labels: list[str] = []
    for req, meets in zip(scores.requirements, scores.meets, strict=True):
        if not meets[slot]:
            continue
        if req.composition:
            fills.append(req.name)
            labels.append(req.label)
        else:
            covers.append(req.value)
    return Pick(
        id=ambassador_id,
        total=int(scores.total[slot]),
        terms=scores.terms(slot),
        covers=tuple(covers),
        fills=tuple(fills),
        reason=reason(scores, slot, covers, labels),
    )


def gap(skill: str) -> Gap:
    return Gap(skill, f"no active ambassador who can be asked has the skill {skill}")


def unmet_rule(req: Requirement, have: int, available: int, size_max: int, proven: bool) -> Unmet:
    """``available``: how many who can be asked count toward the rule at all."""
    if available == 0:
        skill = req.kind == "skill"
        why = "no active ambassador who can be asked has it" if skill else "none can be asked"
    elif available < req.need:
        why = f"only {available} can be asked"
    elif proven:
        why = f"the team has {have}; no team of at most {size_max} meets every rule at once"
    else:
        why = (
            f"the team has {have}; the search found no team of at most {size_max} "
            "that meets every rule at once"
        )
    return Unmet(req.name, req.need, have, f"{req.label}: {why}")


def unmet_size(size_min: int, available: int) -> Unmet:
    return Unmet(
        "size", size_min, available, f"at least {size_min} members: only {available} can be asked"
    )


# ---------------------------------------------------------------- why not


def not_known(ambassador_id: str) -> str:
    return f"{ambassador_id} is not known: no ambassador has this id"


def not_active(ambassador_id: str) -> str:
    return f"{ambassador_id} is not an active ambassador"


def in_team(ambassador_id: str) -> str:
    return f"{ambassador_id} is in the suggested team"


def excluded(ambassador_id: str) -> str:
    return f"{ambassador_id} is excluded by the request"


def paused(ambassador_id: str, until: date) -> str:
    return f"{ambassador_id} is paused until {until.isoformat()}"


def at_limit(ambassador_id: str, active: int, limit: int) -> str:
    return (
        f"{ambassador_id} is already in {_count(active, 'network', 'networks')}, "
        f"their own limit is {limit}"
    )


def not_shortlisted(ambassador_id: str, total: int, rank: int, eligible: int) -> str:
    return (
        f"{ambassador_id} was not on the shortlist: their score {total} ranks {rank} of "
        f"{eligible} who can be asked, below the best per required skill, per composition "
        "rule and overall"
    )


def _names(ids: Sequence[str]) -> str:
    if len(ids) <= 1:
        return "".join(ids)
    return ", ".join(ids[:-1]) + " and " + ids[-1]


def breaks_rules(ambassador_id: str, labels: Sequence[str], proven: bool) -> str:
    found = "no team" if proven else "the search found no team"
    return f"with {ambassador_id} in it, {found} meets {'; '.join(labels)}"


def forced_team(
    ambassador_id: str,
    suggested: int,
    with_them: int,
    replaced: Sequence[str],
    joined: Sequence[str],
) -> str:
    """The best team that has them against the suggestion: the score and the swap."""
    difference = suggested - with_them
    if difference > 0:
        head = (
            f"the best team with {ambassador_id} scores {difference} lower "
            f"({with_them} instead of {suggested})"
        )
    elif difference == 0:
        head = (
            f"a team with {ambassador_id} scores the same ({with_them}), one of equally good teams"
        )
    else:
        head = (
            f"a team with {ambassador_id} scores {-difference} more "
            f"({with_them} instead of {suggested}): the suggestion was not proven the best"
        )
    swap = (
        f"{ambassador_id} would replace {_names(replaced)}"
        if replaced
        else f"{ambassador_id} would join as an extra member"
    )
    if joined:
        swap += f", and {_names(joined)} would join too"
    return f"{head}; {swap}"
