"""Everyone's score as a sum of named terms, and who can be asked at all, in numpy."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from contracts.ambassadors import CoreArea, Kind
from services.networks.matching.pool import (
    CORE_AREA_BIT,
    CORE_AREA_ORDER,
    KIND_CODE,
    KIND_ORDER,
    WORD_BITS,
    Pool,
    core_area_bits,
    theme_bits,
)

SKILL_POINTS = 10
THEME_POINTS = 3
CORE_AREA_POINTS = 4
ACTIVE_NETWORK_PENALTY = 6
RECENT_INVITATION_PENALTY = 2
# The window the caller counts invitations in; matching only receives the count.
RECENT_INVITATION_DAYS = 90

RuleKind = Literal["skill", "kind", "core_area"]

# id -> (networks active in now, network invitations in the last 90 days)
Fatigue = Mapping[str, tuple[int, int]]


class Ineligible(IntEnum):
    """Why someone cannot be asked; when several hold, the first in this order is given."""

    NO = 0
    REMOVED = 1
    EXCLUDED = 2
    PAUSED = 3
    AT_LIMIT = 4


@dataclass(frozen=True)
class Wanted:
    """What the challenge is about: each match earns points."""

    skills: tuple[str, ...] = ()
    themes: tuple[int, ...] = ()
    core_areas: tuple[CoreArea, ...] = ()


@dataclass(frozen=True)
class Rules:
    """What the team must be: a size range, skills to cover, minimums per kind/core area."""

    size_min: int
    size_max: int
    required_skills: tuple[str, ...] = ()
    kind_minimums: Mapping[Kind, int] = field(default_factory=dict)
    core_area_minimums: Mapping[CoreArea, int] = field(default_factory=dict)
    exclude: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= self.size_min <= self.size_max or self.size_max < 1:
            raise ValueError(
                f"the team size needs 0 <= size_min <= size_max and size_max >= 1, "
                f"not {self.size_min}-{self.size_max}"
            )
        minimums = [*self.kind_minimums.values(), *self.core_area_minimums.values()]
        if any(n < 0 for n in minimums):
            raise ValueError("a composition minimum cannot be negative")


@dataclass(frozen=True)
class Requirement:
    """One rule the team should meet: at least ``need`` members from a group."""

    kind: RuleKind
    value: str
    need: int

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def label(self) -> str:
        if self.kind == "skill":
            return f"someone with the skill {self.value}"
        if self.kind == "kind":
            return f"at least {self.need} {self.value}"
        return f"at least {self.need} with core area {self.value}"

    @property
    def composition(self) -> bool:
        return self.kind != "skill"


def requirements(rules: Rules) -> tuple[Requirement, ...]:
    """The rules in a fixed order: required skills as given, then kinds, then core areas."""
    skills = [Requirement("skill", s, 1) for s in dict.fromkeys(rules.required_skills)]
    kinds = [
        Requirement("kind", kind.value, rules.kind_minimums[kind])
        for kind in KIND_ORDER
        if rules.kind_minimums.get(kind, 0) > 0
    ]
    areas = [
        Requirement("core_area", area.value, rules.core_area_minimums[area])
        for area in CORE_AREA_ORDER
        if rules.core_area_minimums.get(area, 0) > 0
    ]
    return (*skills, *kinds, *areas)


@dataclass(frozen=True)
class Scores:
    """Per slot of the pool: each term's count, the total, and whether they can be asked.
    ``meets[r]`` says who counts toward ``requirements[r]`` (eligible or not)."""

    skills_matched: NDArray[np.int64]
    themes_shared: NDArray[np.int64]
    core_areas_shared: NDArray[np.int64]
    active_networks: NDArray[np.int64]
    recent_invitations: NDArray[np.int64]
    total: NDArray[np.int64]
    eligible: NDArray[np.bool_]
    reason: NDArray[np.int8]
    requirements: tuple[Requirement, ...]
    meets: NDArray[np.bool_]
    id_rank: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.total.shape[0])

    def terms(self, slot: int) -> tuple[tuple[str, int], ...]:
        """The non-zero points of one slot, named, in a fixed order."""
        points = (
            ("skills", SKILL_POINTS * int(self.skills_matched[slot])),
            ("themes", THEME_POINTS * int(self.themes_shared[slot])),
            ("core_areas", CORE_AREA_POINTS * int(self.core_areas_shared[slot])),
            ("active_networks", -ACTIVE_NETWORK_PENALTY * int(self.active_networks[slot])),
            ("recent_invitations", -RECENT_INVITATION_PENALTY * int(self.recent_invitations[slot])),
        )
        return tuple((name, value) for name, value in points if value != 0)

    def order_key(self) -> NDArray[np.int64]:
        """One distinct integer per slot, larger is better: total first, then id."""
        return self.total * max(len(self), 1) - self.id_rank


def _skill_mask(pool: Pool, skills: tuple[str, ...]) -> NDArray[np.uint64]:
    words = [0] * pool.words
    for skill in skills:
        index = pool.skill_bit(skill)
        if index is not None:  # a skill nobody has ever had matches nobody
            words[index // WORD_BITS] |= 1 << (index % WORD_BITS)
    return np.asarray(words, np.uint64)


def _fatigue_columns(pool: Pool, fatigue: Fatigue) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    active = np.zeros(pool.slots, np.int64)
    recent = np.zeros(pool.slots, np.int64)
    if fatigue:
        m = len(fatigue)
        slots = pool.slots_of(fatigue.keys())
        counts = np.fromiter(itertools.chain.from_iterable(fatigue.values()), np.int64, 2 * m)
        counts = counts.reshape(m, 2)
        known = slots >= 0
        active[slots[known]] = counts[known, 0]
        recent[slots[known]] = counts[known, 1]
    return active, recent


def _skills_matched(pool: Pool, mask: NDArray[np.uint64]) -> NDArray[np.int64]:
    matched = np.zeros(pool.slots, np.int64)
    skills = pool.skills
    # Word by word, skipping words no wanted skill is in: cheaper than a 2-D sum.
    for w in np.flatnonzero(mask).tolist():
        matched += np.bitwise_count(skills[:, w] & mask[w])
    return matched


def _memberships(pool: Pool, reqs: tuple[Requirement, ...]) -> NDArray[np.bool_]:
    meets = np.zeros((len(reqs), pool.slots), np.bool_)
    for r, req in enumerate(reqs):
        if req.kind == "skill":
            index = pool.skill_bit(req.value)
            if index is not None:
                column = pool.skills[:, index // WORD_BITS]
                meets[r] = (column & np.uint64(1 << (index % WORD_BITS))) != 0
        elif req.kind == "kind":
            meets[r] = pool.kind == KIND_CODE[Kind(req.value)]
        else:
            meets[r] = (pool.core_areas & np.uint8(CORE_AREA_BIT[CoreArea(req.value)])) != 0
    return meets


def score(pool: Pool, wanted: Wanted, rules: Rules, fatigue: Fatigue, today: date) -> Scores:
    wanted_skills = tuple(dict.fromkeys((*wanted.skills, *rules.required_skills)))
    skill_mask = _skill_mask(pool, wanted_skills)
    skills_matched = _skills_matched(pool, skill_mask)
    themes_shared = np.bitwise_count(pool.themes & np.uint16(theme_bits(wanted.themes)))
    areas_shared = np.bitwise_count(pool.core_areas & np.uint8(core_area_bits(wanted.core_areas)))
    active, recent = _fatigue_columns(pool, fatigue)

    total = (
        SKILL_POINTS * skills_matched
        + THEME_POINTS * themes_shared.astype(np.int64)
        + CORE_AREA_POINTS * areas_shared.astype(np.int64)
        - ACTIVE_NETWORK_PENALTY * active
        - RECENT_INVITATION_PENALTY * recent
    )

    excluded = np.zeros(pool.slots, np.bool_)
    excluded_slots = pool.slots_of(rules.exclude)
    excluded[excluded_slots[excluded_slots >= 0]] = True
    limit = pool.networks_at_once
    paused = pool.paused_until
    # Checked in reverse priority so that the first reason in Ineligible's order wins.
    reason = np.zeros(pool.slots, np.int8)
    reason[(limit != 0) & (active >= limit)] = Ineligible.AT_LIMIT
    reason[(paused != 0) & (paused >= today.toordinal())] = Ineligible.PAUSED
    reason[excluded] = Ineligible.EXCLUDED
    reason[pool.removed] = Ineligible.REMOVED

    reqs = requirements(rules)
    return Scores(
        skills_matched=skills_matched,
        themes_shared=themes_shared.astype(np.int64),
        core_areas_shared=areas_shared.astype(np.int64),
        active_networks=active,
        recent_invitations=recent,
        total=total,
        eligible=reason == Ineligible.NO,
        reason=reason,
        requirements=reqs,
        meets=_memberships(pool, reqs),
        id_rank=pool.id_rank(),
    )
