"""Reading a free skill tag as a skill of the vocabulary (pure).

In this order: a merge staff made (``skills merge FROM INTO``, followed to its end), the
vocabulary's own tag or one of its synonyms (hyphens and spaces do not count, so
"lektie-hjælp" is "lektiehjælp"), then the closest of those by rapidfuzz's ratio when it is
close enough (a typo, a plural). A tag like none of them stays a skill of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz, process

from services.networks.vocabulary import VOCABULARY

# How alike (0-100, rapidfuzz's ratio) a tag must be to a known name to be read as it:
# "frivilig" -> "frivillig" (94), "lektiehjalp" -> "lektiehjælp" (91); "it" and "kit" (80) stay
# apart.
SIMILAR_ENOUGH = 88.0
# Names this short are read exactly only: two letters apart is a different word.
FUZZY_FROM_LENGTH = 5


def folded(tag: str) -> str:
    """The tag without what does not tell two skills apart."""
    return tag.casefold().replace("-", "").replace(" ", "")


@dataclass(frozen=True)
class SkillReader:
    """Reads tags with the vocabulary and staff's merges (``from -> into``)."""

    merges: Mapping[str, str] = field(default_factory=dict)
    vocabulary: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: VOCABULARY)

    def read(self, tag: str) -> str:
        return _read(self._names, self._merges_key, tag)

    def read_all(self, tags: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted({self.read(t) for t in tags if t}))

    def synonyms(self, skill: str) -> list[str]:
        """Every other name read as ``skill``: the vocabulary's and the merged ones."""
        names = set(self.vocabulary.get(skill, ()))
        names |= {f for f in self.merges if self.read(f) == skill and f != skill}
        return sorted(names)

    @property
    def _names(self) -> tuple[tuple[str, str], ...]:
        return _known_names(tuple((k, tuple(v)) for k, v in self.vocabulary.items()))

    @property
    def _merges_key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.merges.items()))


@lru_cache(maxsize=64)
def _known_names(
    vocabulary: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[tuple[str, str], ...]:
    """(folded name, skill) for each skill and each synonym."""
    pairs = {folded(skill): skill for skill, _ in vocabulary}
    for skill, synonyms in vocabulary:
        for synonym in synonyms:
            pairs.setdefault(folded(synonym), skill)
    return tuple(sorted(pairs.items()))


@lru_cache(maxsize=100_000)
def _read(names: tuple[tuple[str, str], ...], merges: tuple[tuple[str, str], ...], tag: str) -> str:
    """Merges and the vocabulary in turn until the tag stays as it is (a merge may lead to
    a synonym, and a vocabulary skill may be merged into another); never a loop."""
    merged = dict(merges)
    seen: set[str] = set()
    while tag not in seen:
        seen.add(tag)
        tag = merged.get(tag) or _in_vocabulary(names, tag)
    return tag


def _in_vocabulary(names: tuple[tuple[str, str], ...], tag: str) -> str:
    by_name = dict(names)
    key = folded(tag)
    if key in by_name:
        return by_name[key]
    if len(key) < FUZZY_FROM_LENGTH:
        return tag
    best = process.extractOne(
        key, [n for n, _ in names], scorer=fuzz.ratio, score_cutoff=SIMILAR_ENOUGH
    )
    return tag if best is None else by_name[best[0]]
