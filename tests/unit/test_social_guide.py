"""The guide's checks (services/social/guide.py), as the guide in DOMAIN.md has them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from contracts.social import READABLE_TEXT, HintSeverity, StoryKind
from services.social.guide import Draft, check, stops, valid_link

TODAY = date(2027, 3, 1)
PLAIN = Draft(
    kind=StoryKind.THEME_WORK,
    text="Hver tirsdag hjælper vores frivillige børn med lektierne.",
    title=None,
    picture_alts=(),
    event_date=None,
    event_public=None,
    link=None,
    people_consent=False,
)


def findings(draft: Draft) -> set[tuple[str, HintSeverity]]:
    return {(h.code, h.severity) for h in check(draft, today=TODAY)}


def test_a_concrete_story_about_a_theme_passes_as_it_is() -> None:
    assert check(PLAIN, today=TODAY) == []


def test_a_new_person_is_always_told_with_a_picture() -> None:
    draft = replace(PLAIN, kind=StoryKind.NEW_PERSON)
    [hint] = check(draft, today=TODAY)
    assert (hint.code, hint.severity, hint.field) == (
        "picture_missing",
        HintSeverity.BLOCKING,
        "pictures",
    )
    assert hint.message == "Husk altid et billede."
    with_picture = replace(draft, picture_alts=("Vores nye frivillige Ida",), people_consent=True)
    assert check(with_picture, today=TODAY) == []


def test_every_picture_needs_its_description_and_the_consent_of_those_shown() -> None:
    draft = replace(PLAIN, picture_alts=("Et bord med kager", None))
    assert findings(draft) == {
        ("alt_missing", HintSeverity.BLOCKING),
        ("people_consent_missing", HintSeverity.BLOCKING),
    }
    [alt] = [h for h in check(draft, today=TODAY) if h.code == "alt_missing"]
    assert alt.field == "pictures.2.alt"


def test_a_long_text_is_a_hint_not_a_refusal() -> None:
    draft = replace(PLAIN, text="ord " * (READABLE_TEXT // 3))
    assert findings(draft) == {("text_long", HintSeverity.HINT)}
    assert stops(check(draft, today=TODAY)) == []


@pytest.mark.parametrize(
    ("event_date", "public", "expected"),
    [
        (date(2027, 2, 27), True, {("event_in_the_past", HintSeverity.ERROR)}),
        (None, True, {("event_date_missing", HintSeverity.ERROR)}),
        (date(2027, 4, 8), False, {("closed_event", HintSeverity.HINT)}),
        (date(2027, 4, 8), True, set()),
        (TODAY, None, set()),
    ],
)
def test_an_upcoming_event(
    event_date: date | None, public: bool | None, expected: set[object]
) -> None:
    draft = replace(
        PLAIN, kind=StoryKind.UPCOMING_EVENT, event_date=event_date, event_public=public
    )
    assert findings(draft) == expected


def test_a_past_event_cannot_be_in_the_future() -> None:
    draft = replace(PLAIN, kind=StoryKind.PAST_EVENT, event_date=date(2027, 5, 1))
    assert findings(draft) == {("event_in_the_future", HintSeverity.ERROR)}


@pytest.mark.parametrize(
    ("link", "ok"),
    [
        ("https://forening.example/lektiecafe", True),
        ("http://forening.example", True),
        ("javascript:alert(1)", False),
        ("ftp://forening.example/fil", False),
        ("https://localhost", False),
        ("forening.example", False),
        ("https://forening.example/a b", False),
    ],
)
def test_a_link_is_a_web_address(link: str, ok: bool) -> None:
    assert valid_link(link) is ok
    codes = findings(replace(PLAIN, link=link))
    assert codes == (set() if ok else {("link_invalid", HintSeverity.ERROR)})


def test_errors_come_first_then_what_blocks_then_hints() -> None:
    draft = replace(
        PLAIN,
        kind=StoryKind.NEW_PERSON,
        text="x" * (READABLE_TEXT + 1),
        link="javascript:x",
    )
    severities = [h.severity for h in check(draft, today=TODAY)]
    assert severities == sorted(
        severities,
        key=[HintSeverity.ERROR, HintSeverity.BLOCKING, HintSeverity.HINT].index,
    )
