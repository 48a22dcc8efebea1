"""The candidates as columns of numpy arrays, kept up to date row by row."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from contracts.ambassadors import CoreArea, Kind

# Codes and bits are positions in these orders; they are part of the arrays' meaning.
KIND_ORDER: tuple[Kind, ...] = tuple(Kind)
CORE_AREA_ORDER: tuple[CoreArea, ...] = tuple(CoreArea)
KIND_CODE: dict[Kind, int] = {kind: code for code, kind in enumerate(KIND_ORDER)}
CORE_AREA_BIT: dict[CoreArea, int] = {area: 1 << bit for bit, area in enumerate(CORE_AREA_ORDER)}
THEME_MIN, THEME_MAX = 1, 12
WORD_BITS = 64
_WORD_MASK = (1 << WORD_BITS) - 1
_INITIAL_CAPACITY = 16
# Up to this many new ids in one upsert, the id order is updated in place.
_RANK_BY_INSERTION = 64
_T = TypeVar("_T", bound=np.generic)


@dataclass(frozen=True)
class CandidateRow:
    """One ambassador as matching sees them; ``skills`` are canonical tags already."""

    id: str
    kind: Kind
    themes: tuple[int, ...]
    core_areas: tuple[CoreArea, ...]
    skills: tuple[str, ...]
    networks_at_once: int | None
    paused_until: date | None


def theme_bits(themes: Iterable[int]) -> int:
    mask = 0
    for theme in themes:
        if not THEME_MIN <= theme <= THEME_MAX:
            raise ValueError(f"a theme is a number from {THEME_MIN} to {THEME_MAX}, not {theme}")
        mask |= 1 << (theme - 1)
    return mask


def core_area_bits(areas: Iterable[CoreArea]) -> int:
    mask = 0
    for area in areas:
        mask |= CORE_AREA_BIT[CoreArea(area)]
    return mask


def _readonly(array: NDArray[_T]) -> NDArray[_T]:
    view = array.view()
    view.flags.writeable = False
    return view


class Pool:
    """Columnar candidates. A slot is a row's position in every array; it never moves, so
    scores computed on the arrays index back into the pool. Removed rows keep their slot
    (marked ``removed``) and come back to it when upserted again."""

    def __init__(self) -> None:
        self._n = 0
        self._present = 0
        self._ids: list[str] = []
        self._rows: list[CandidateRow] = []
        self._slot: dict[str, int] = {}
        self._skill_index: dict[str, int] = {}
        # The ids in sorted order, and each slot's place in it; None until first asked for.
        self._sorted_ids: list[str] | None = None
        self._allocate(_INITIAL_CAPACITY, words=1)

    def _allocate(self, capacity: int, words: int) -> None:
        self._kind = np.zeros(capacity, np.int8)
        self._themes = np.zeros(capacity, np.uint16)
        self._core_areas = np.zeros(capacity, np.uint8)
        self._skills = np.zeros((capacity, words), np.uint64)
        self._networks_at_once = np.zeros(capacity, np.int16)
        self._paused_until = np.zeros(capacity, np.int32)
        self._removed = np.zeros(capacity, np.bool_)
        self._rank = np.zeros(capacity, np.int64)

    @classmethod
    def build(cls, rows: Iterable[CandidateRow]) -> Pool:
        pool = cls()
        pool.upsert(rows)
        return pool

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self._present

    @property
    def slots(self) -> int:
        """How many slots are in use, removed rows included: the arrays' length."""
        return self._n

    @property
    def capacity(self) -> int:
        return int(self._kind.shape[0])

    @property
    def words(self) -> int:
        return int(self._skills.shape[1])

    @property
    def skill_index(self) -> dict[str, int]:
        return dict(self._skill_index)

    def skill_bit(self, skill: str) -> int | None:
        return self._skill_index.get(skill)

    @property
    def kind(self) -> NDArray[np.int8]:
        return _readonly(self._kind[: self._n])

    @property
    def themes(self) -> NDArray[np.uint16]:
        return _readonly(self._themes[: self._n])

    @property
    def core_areas(self) -> NDArray[np.uint8]:
        return _readonly(self._core_areas[: self._n])

    @property
    def skills(self) -> NDArray[np.uint64]:
        return _readonly(self._skills[: self._n])

    @property
    def networks_at_once(self) -> NDArray[np.int16]:
        return _readonly(self._networks_at_once[: self._n])

    @property
    def paused_until(self) -> NDArray[np.int32]:
        return _readonly(self._paused_until[: self._n])

    @property
    def removed(self) -> NDArray[np.bool_]:
        return _readonly(self._removed[: self._n])

    def index_of(self, ambassador_id: str) -> int | None:
        """The slot of ``ambassador_id``, removed or not; None when never seen."""
        return self._slot.get(ambassador_id)

    def id_of(self, slot: int) -> str:
        return self._ids[slot]

    def row(self, ambassador_id: str) -> CandidateRow | None:
        slot = self._slot.get(ambassador_id)
        if slot is None or self._removed[slot]:
            return None
        return self._rows[slot]

    def id_rank(self) -> NDArray[np.int64]:
        """Each slot's position in the sorted order of every id: ties between equal scores
        are broken by id everywhere without sorting strings on the hot path."""
        if self._sorted_ids is None:
            # Python's sort of str beats numpy's on unicode arrays.
            order = sorted(range(self._n), key=self._ids.__getitem__)
            self._rank[np.asarray(order, np.int64)] = np.arange(self._n, dtype=np.int64)
            self._sorted_ids = [self._ids[slot] for slot in order]
        return _readonly(self._rank[: self._n])

    def slots_of(self, ids: Iterable[str]) -> NDArray[np.int64]:
        """The slot of each id, -1 for ids never seen."""
        return np.fromiter(map(self._slot.get, ids, itertools.repeat(-1)), np.int64)

    def skill_counts(self) -> dict[str, int]:
        """How many present rows have each known skill."""
        present = self._skills[: self._n][~self._removed[: self._n]]
        counts: dict[str, int] = {}
        columns = [np.ascontiguousarray(present[:, w]) for w in range(self.words)]
        for skill, index in sorted(self._skill_index.items(), key=lambda item: item[1]):
            bit = np.uint64(1 << (index % WORD_BITS))
            column = columns[index // WORD_BITS]
            counts[skill] = int(np.bitwise_count(column & bit).sum(dtype=np.int64))
        return counts

    # ------------------------------------------------------------ writing

    def upsert(self, rows: Iterable[CandidateRow]) -> None:
        """Replace the rows whose id is known, append the others (within one batch the
        last row of an id wins)."""
        latest: dict[str, CandidateRow] = {}
        for row in rows:
            latest[row.id] = row
        if not latest:
            return
        batch = list(latest.values())
        # Encoded before anything changes, so a bad row leaves the pool as it was.
        kinds = [KIND_CODE[Kind(row.kind)] for row in batch]
        themes = [theme_bits(row.themes) for row in batch]
        areas = [core_area_bits(row.core_areas) for row in batch]
        limits = [_limit(row) for row in batch]
        paused = [0 if row.paused_until is None else row.paused_until.toordinal() for row in batch]

        new_ids = [rid for rid in latest if rid not in self._slot]
        self._reserve(self._n + len(new_ids))
        for rid in new_ids:
            self._slot[rid] = self._n
            self._ids.append(rid)
            self._rows.append(latest[rid])
            self._n += 1
        self._rank_new(new_ids)
        for row in batch:
            for skill in row.skills:
                if skill not in self._skill_index:
                    self._skill_index[skill] = len(self._skill_index)
        self._widen(-(-len(self._skill_index) // WORD_BITS))

        slots = np.fromiter((self._slot[row.id] for row in batch), np.int64, count=len(batch))
        for slot, row in zip(slots.tolist(), batch, strict=True):
            self._rows[slot] = row
        self._present += int(np.count_nonzero(self._removed[slots])) + len(new_ids)
        self._kind[slots] = kinds
        self._themes[slots] = themes
        self._core_areas[slots] = areas
        self._skills[slots] = [self._skill_words(row.skills) for row in batch]
        self._networks_at_once[slots] = limits
        self._paused_until[slots] = paused
        self._removed[slots] = False

    def _rank_new(self, new_ids: list[str]) -> None:
        if self._sorted_ids is None or not new_ids:
            return
        if len(new_ids) > _RANK_BY_INSERTION:
            self._sorted_ids = None  # one sort later is cheaper than many insertions
            return
        for rid in new_ids:
            slot = self._slot[rid]
            place = bisect.bisect_left(self._sorted_ids, rid)
            self._sorted_ids.insert(place, rid)
            before = self._rank[:slot]
            before[before >= place] += 1
            self._rank[slot] = place

    def remove(self, ids: Iterable[str]) -> None:
        """Mark rows removed (withdrawn, erased); unknown ids are ignored."""
        slots = [slot for rid in ids if (slot := self._slot.get(rid)) is not None]
        if not slots:
            return
        index = np.unique(np.asarray(slots, np.int64))
        self._present -= int(np.count_nonzero(~self._removed[index]))
        self._removed[index] = True

    def _skill_words(self, skills: Iterable[str]) -> list[int]:
        mask = 0
        for skill in skills:
            mask |= 1 << self._skill_index[skill]
        return [(mask >> (WORD_BITS * w)) & _WORD_MASK for w in range(self.words)]

    def _reserve(self, needed: int) -> None:
        capacity = self.capacity
        if needed <= capacity:
            return
        # Doubling keeps one-row upserts amortised O(1) however large the pool grows.
        capacity = max(needed, 2 * capacity)
        old = self._columns()
        self._allocate(capacity, words=self.words)
        for before, after in zip(old, self._columns(), strict=True):
            after[: self._n] = before[: self._n]

    def _columns(self) -> tuple[NDArray[Any], ...]:
        return (
            self._kind,
            self._themes,
            self._core_areas,
            self._skills,
            self._networks_at_once,
            self._paused_until,
            self._removed,
            self._rank,
        )

    def _widen(self, words: int) -> None:
        if words <= self.words:
            return
        # Rare (every 64th new skill), so the copy is acceptable.
        self._skills = np.pad(self._skills, ((0, 0), (0, words - self.words)))


def _limit(row: CandidateRow) -> int:
    if row.networks_at_once is None:
        return 0
    if not 1 <= row.networks_at_once <= np.iinfo(np.int16).max:
        raise ValueError(f"networks_at_once must be at least 1, not {row.networks_at_once}")
    return row.networks_at_once
