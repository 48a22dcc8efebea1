"""Suggesting an action network: a team of ambassadors for a challenge, without any I/O."""

from services.networks.matching.explain import Gap, Pick, Suggestion, Unmet
from services.networks.matching.pool import CandidateRow, Pool
from services.networks.matching.scoring import (
    ACTIVE_NETWORK_PENALTY,
    CORE_AREA_POINTS,
    RECENT_INVITATION_PENALTY,
    SKILL_POINTS,
    THEME_POINTS,
    Fatigue,
    Ineligible,
    Requirement,
    Rules,
    Scores,
    Wanted,
    requirements,
    score,
)
from services.networks.matching.shortlist import shortlist
from services.networks.matching.solver import Method, Problem, Solution, greedy, solve
from services.networks.matching.suggest import Limits, suggest, why_not

__all__ = [
    "ACTIVE_NETWORK_PENALTY",
    "CORE_AREA_POINTS",
    "RECENT_INVITATION_PENALTY",
    "SKILL_POINTS",
    "THEME_POINTS",
    "CandidateRow",
    "Fatigue",
    "Gap",
    "Ineligible",
    "Limits",
    "Method",
    "Pick",
    "Pool",
    "Problem",
    "Requirement",
    "Rules",
    "Scores",
    "Solution",
    "Suggestion",
    "Unmet",
    "Wanted",
    "greedy",
    "requirements",
    "score",
    "shortlist",
    "solve",
    "suggest",
    "why_not",
]
