"""Reading free skill tags as the vocabulary's skills (services/networks/skills.py)."""

from __future__ import annotations

import pytest

from services.networks.skills import SkillReader
from services.networks.vocabulary import VOCABULARY


@pytest.mark.parametrize(
    ("typed", "read_as"),
    [
        ("lektiehjælp", "lektiehjælp"),
        ("lektie-hjælp", "lektiehjælp"),
        ("lektiecafé", "lektiehjælp"),
        ("lektiehjalp", "lektiehjælp"),  # a keyboard without æ
        ("frivilig", "frivillige"),  # a typo
        ("madlavnin", "madlavning"),
        ("it", "it-hjælp"),  # a synonym, exactly
        ("erhvervsnetværk", "netværk"),
    ],
)
def test_one_skill_is_one_skill_however_it_is_written(typed: str, read_as: str) -> None:
    assert SkillReader().read(typed) == read_as


def test_a_short_or_unlike_tag_stays_a_skill_of_its_own() -> None:
    reader = SkillReader()
    assert reader.read("kit") == "kit"  # two letters from "it", a different word
    assert reader.read("skak") == "skak"
    assert reader.read("biavl") == "biavl"


def test_staff_merges_come_first_and_are_followed_to_their_end() -> None:
    reader = SkillReader(merges={"skak": "brætspil", "brætspil": "spil"})
    assert reader.read("skak") == "spil"
    # A vocabulary skill merged into another takes its synonyms along.
    reader = SkillReader(merges={"lektiehjælp": "undervisning-af-børn"})
    assert reader.read("lektie-hjælp") == "undervisning-af-børn"
    assert "lektiehjælp" in reader.synonyms("undervisning-af-børn")


def test_merges_in_a_circle_end_instead_of_looping() -> None:
    reader = SkillReader(merges={"a-skill": "b-skill", "b-skill": "a-skill"})
    assert reader.read("a-skill") in {"a-skill", "b-skill"}


def test_many_tags_are_read_once_each_and_sorted() -> None:
    assert SkillReader().read_all(["lektie-hjælp", "lektiehjælp", "mad"]) == (
        "lektiehjælp",
        "madlavning",
    )


def test_the_vocabularys_names_are_tags_and_no_synonym_belongs_to_two_skills() -> None:
    from contracts.ambassadors import normalise_skill

    seen: dict[str, str] = {}
    for skill, synonyms in VOCABULARY.items():
        assert normalise_skill(skill) == skill
        for name in (skill, *synonyms):
            assert normalise_skill(name) == name, name
            assert seen.setdefault(name, skill) == skill, f"{name} in {seen[name]} and {skill}"
