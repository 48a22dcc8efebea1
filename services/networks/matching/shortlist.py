"""The few hundred candidates worth solving on, out of everyone who can be asked."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from services.networks.matching.scoring import Rules, Scores

PER_SKILL = 40
PER_GROUP = 40
OVERALL = 100


def _best(key: NDArray[np.int64], mask: NDArray[np.bool_], k: int) -> NDArray[np.int64]:
    index = np.flatnonzero(mask)
    if index.size > k:
        # Keys are distinct, so the k best are one well-defined set whatever the partition.
        index = index[np.argpartition(-key[index], k - 1)[:k]]
    return index.astype(np.int64)


def shortlist(
    scores: Scores,
    rules: Rules,
    *,
    per_skill: int = PER_SKILL,
    per_group: int = PER_GROUP,
    overall: int = OVERALL,
) -> NDArray[np.int64]:
    """Slots of the best eligible per required skill, per composition rule and overall,
    each once, best first (total descending, then id)."""
    key = scores.order_key()
    eligible = scores.eligible
    # Never fewer than the rule itself or the team can take, or a shortlist alone could
    # make a rule or the size unreachable.
    parts = [_best(key, eligible, max(overall, rules.size_max, 1))]
    for req, meets in zip(scores.requirements, scores.meets, strict=True):
        k = max(per_group if req.composition else per_skill, req.need, 1)
        parts.append(_best(key, eligible & meets, k))
    chosen = np.unique(np.concatenate(parts))
    return chosen[np.argsort(-key[chosen])].astype(np.int64)
