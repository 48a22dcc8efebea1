"""The one text hygiene and the one address rule every service applies (contracts/text.py),
and that sign-up, subscribe, meetings and news items agree on them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts.ambassadors import Kind, SignUp
from contracts.events import MeetingFields
from contracts.newsletter import AddItem, Subscribe
from contracts.text import (
    ASCII_LOCAL_PART,
    clean_line,
    clean_text,
    normalise_email,
    normalise_name,
    normalise_website,
)

INVISIBLE = "\u200b\u202e\u2066"
REVERSED = "Anna \u202eevil.exe\u202c Hansen"


def errors_of(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return {".".join(map(str, e["loc"])): e["msg"] for e in exc.value.errors()}


def sign_up(**changes: Any) -> dict[str, Any]:
    return {
        "name": "Anna Hansen",
        "email": "anna@example.org",
        "kind": Kind.CITIZEN,
        "consent": True,
    } | changes


def test_one_line_drops_control_and_format_characters_and_is_nfc() -> None:
    assert clean_line("  Anna\u200b  Hansen\u00ad ") == "Anna Hansen"
    assert clean_line("Anna\x9bHansen\x07") == "AnnaHansen"  # C1 and C0 controls
    assert clean_line("Anna\nHansen\u2028Jensen") == "Anna Hansen Jensen"
    assert clean_line("A\u0308rhus") == "Ärhus"  # decomposed æøå compare equal
    assert clean_line(INVISIBLE) == ""


def test_several_lines_keep_their_breaks_and_lose_the_rest() -> None:
    text = "Første afsnit\u200b\r\n\r\n\r\n\r\nAndet\x0b  afsnit \u202e\nslut\x85her"
    assert clean_text(text) == "Første afsnit\n\nAndet afsnit\nslut her"


@pytest.mark.parametrize("name", [INVISIBLE, REVERSED, "12345", "--..--", "\u2066Anna\u2069"])
def test_a_name_that_lies_or_names_nobody_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        normalise_name(name)
    assert "name" in errors_of(SignUp, sign_up(name=name))
    assert "name" in errors_of(Subscribe, {"email": "anna@example.org", "name": name})


def test_names_titles_and_organisations_follow_the_same_rule() -> None:
    assert normalise_name(" Åse  \u200bØstergård ") == "Åse Østergård"
    assert "organisation" in errors_of(
        SignUp, sign_up(kind=Kind.ASSOCIATION, organisation=INVISIBLE)
    )
    meeting = {
        "kind": "network",
        "title": REVERSED,
        "starts_at": "2027-03-01T17:00:00+01:00",
        "ends_at": "2027-03-01T19:00:00+01:00",
        "location": "Rådhuset",
    }
    assert "title" in errors_of(MeetingFields, meeting)
    assert "title" in errors_of(AddItem, {"title": INVISIBLE, "body": "Nyt"})


def test_an_address_with_non_ascii_before_the_at_is_refused_everywhere_alike() -> None:
    with pytest.raises(ValueError, match="plain ASCII"):
        normalise_email("æble@example.org")
    assert errors_of(SignUp, sign_up(email="æble@example.org"))["email"].endswith(ASCII_LOCAL_PART)
    assert errors_of(Subscribe, {"email": "æble@example.org"})["email"].endswith(ASCII_LOCAL_PART)
    # A domain with æøå travels as punycode: fine.
    assert normalise_email("Anna@Blåbær.dk") == "Anna@blåbær.dk"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        'https://example.dk/"><script>alert(1)</script>',
        "https://example.dk/a b",
        "ftp://example.dk",
        "https://exa\u202emple.dk",
    ],
)
def test_a_website_is_an_http_address_without_markup(url: str) -> None:
    with pytest.raises(ValueError):
        normalise_website(url)


def test_a_website_without_a_scheme_gets_https() -> None:
    assert normalise_website("www.Frivillig.dk/om?x=1") == "https://www.frivillig.dk/om?x=1"
    assert normalise_website("http://blåbær.dk") == "http://blåbær.dk"


@pytest.mark.parametrize("kind", [["citizen"], {"value": "citizen"}, 7])
def test_a_kind_of_the_wrong_type_is_a_validation_error_not_a_crash(kind: Any) -> None:
    assert "kind" in errors_of(SignUp, sign_up(kind=kind))
