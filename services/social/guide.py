"""The guide's checks (the Facebook guide in DOMAIN.md), as pure rules: what a story must
have before it can go out, and what would make it better.

Each finding is a :class:`~contracts.social.Hint` with a code, a field and the guide's own
words in Danish. ``blocking`` and ``error`` findings stop a story from being sent or
approved; ``hint`` findings are advice that staff and the ambassador see beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

from contracts.social import READABLE_TEXT, Hint, HintSeverity, StoryKind

# Kinds that are told with a picture by what they are.
PICTURE_KINDS = (StoryKind.NEW_PERSON, StoryKind.PICTURE)
EVENT_KINDS = (StoryKind.UPCOMING_EVENT, StoryKind.PAST_EVENT)


@dataclass(frozen=True)
class Draft:
    """What the checks look at: a story's content, whatever version it is."""

    kind: StoryKind
    text: str
    title: str | None
    picture_alts: tuple[str | None, ...]
    event_date: date | None
    event_public: bool | None
    link: str | None
    people_consent: bool


def _hint(code: str, severity: HintSeverity, field: str, message: str) -> Hint:
    return Hint(code=code, severity=severity, field=field, message=message)


def valid_link(link: str) -> bool:
    parts = urlsplit(link)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "." in (parts.hostname or "")
        and not any(ch.isspace() for ch in link)
    )


def check(draft: Draft, *, today: date) -> list[Hint]:
    """Every finding for ``draft`` on ``today`` (Copenhagen's date), most serious first."""
    found: list[Hint] = []
    pictures = len(draft.picture_alts)
    if draft.kind in PICTURE_KINDS and pictures == 0:
        found.append(
            _hint(
                "picture_missing",
                HintSeverity.BLOCKING,
                "pictures",
                "Husk altid et billede."
                if draft.kind == StoryKind.NEW_PERSON
                else "Et billede-opslag skal have et billede.",
            )
        )
    for number, alt in enumerate(draft.picture_alts, start=1):
        if not alt:
            found.append(
                _hint(
                    "alt_missing",
                    HintSeverity.BLOCKING,
                    f"pictures.{number}.alt",
                    f"Billede {number} mangler en beskrivelse (alt-tekst), så alle kan "
                    "få glæde af det, også dem der ikke kan se billedet.",
                )
            )
    if pictures and not draft.people_consent:
        found.append(
            _hint(
                "people_consent_missing",
                HintSeverity.BLOCKING,
                "people_consent",
                "Bekræft, at de personer, der kan ses på billederne, har sagt ja til at "
                "blive vist (eller at der ikke er personer på dem).",
            )
        )
    if draft.link is not None and not valid_link(draft.link):
        found.append(
            _hint(
                "link_invalid",
                HintSeverity.ERROR,
                "link",
                "Linket skal være en webadresse, der begynder med https:// eller http://.",
            )
        )
    if draft.kind == StoryKind.UPCOMING_EVENT:
        if draft.event_date is None:
            found.append(
                _hint(
                    "event_date_missing",
                    HintSeverity.ERROR,
                    "event_date",
                    "Skriv datoen for arrangementet.",
                )
            )
        elif draft.event_date < today:
            found.append(
                _hint(
                    "event_in_the_past",
                    HintSeverity.ERROR,
                    "event_date",
                    'Arrangementet er allerede holdt. Vælg "Et arrangement, der har fundet '
                    'sted", og fortæl, hvordan det gik.',
                )
            )
        elif draft.event_public is False:
            found.append(
                _hint(
                    "closed_event",
                    HintSeverity.HINT,
                    "event_public",
                    "Lukkede arrangementer er bedre at fortælle om bagefter: send gerne "
                    "historien, når arrangementet har fundet sted.",
                )
            )
    past = draft.kind == StoryKind.PAST_EVENT
    if past and draft.event_date is not None and draft.event_date > today:
        found.append(
            _hint(
                "event_in_the_future",
                HintSeverity.ERROR,
                "event_date",
                'Datoen ligger i fremtiden. Vælg "Et kommende arrangement".',
            )
        )
    if len(draft.text) > READABLE_TEXT:
        found.append(
            _hint(
                "text_long",
                HintSeverity.HINT,
                "text",
                f"Teksten er på {len(draft.text)} tegn. Konkret og ikke for langt læses "
                f"bedst: prøv at holde den under {READABLE_TEXT} tegn.",
            )
        )
    if draft.kind == StoryKind.PICTURE and pictures and len(draft.text) < 20:
        found.append(
            _hint(
                "picture_needs_words",
                HintSeverity.HINT,
                "text",
                "Skriv et par ord om billedet: hvad ser vi, og hvorfor er det flot eller sjovt?",
            )
        )
    order = {HintSeverity.ERROR: 0, HintSeverity.BLOCKING: 1, HintSeverity.HINT: 2}
    return sorted(found, key=lambda h: order[h.severity])


def stops(hints: list[Hint]) -> list[Hint]:
    """The findings that stop a story from being sent or approved."""
    return [h for h in hints if h.severity != HintSeverity.HINT]
