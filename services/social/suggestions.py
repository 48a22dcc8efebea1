"""Draft posts the system suggests for the review queue (pure, Danish): a public meeting
scheduled, a network closed with a result, a newsletter issue sent. Staff edit and approve
them like any story; each source suggests one story."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from contracts.events import COPENHAGEN, KIND_LABELS, MeetingInfo
from contracts.networks import KIND_LABELS as NETWORK_KIND_LABELS
from contracts.networks import NetworkClosed, Outcome
from contracts.newsletter import IssueSent
from contracts.social import TEXT_MAX, TITLE_MAX, StoryKind, StorySource
from services.runtime.danish import long_date

# The guide's question, shown to staff beside a meeting's suggestion.
MEETING_PROMPT = "Er der kommende arrangementer? Fortæl om det!"
NETWORK_PROMPT = "Et handlingsnetværk har nået et resultat: fortæl om det, gerne med et billede."
ISSUE_PROMPT = "Nyhedsbrevet kommer også på Facebook: tjek teksten, og godkend opslaget."


@dataclass(frozen=True)
class Suggestion:
    source: StorySource
    source_ref: str
    kind: StoryKind
    title: str | None
    text: str
    link: str | None
    event_date: date | None
    event_public: bool | None
    prompt: str


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def meeting(info: MeetingInfo, public_url: str) -> Suggestion | None:
    """A public meeting: invite everyone to it."""
    if not info.public:
        return None
    starts = info.starts_at.astimezone(COPENHAGEN)
    when = f"{long_date(starts.date())} kl. {starts:%H.%M}"
    where = f" på {info.place}" if info.place else (" online" if info.online_url else "")
    lines = [f"{KIND_LABELS[info.kind]}: {info.title}, {when}{where}. Alle er velkomne."]
    if info.description:
        lines.append(info.description)
    lines.append("Læs mere og tilmeld dig i kalenderen.")
    return Suggestion(
        source=StorySource.MEETING,
        source_ref=f"meeting:{info.meeting_id}",
        kind=StoryKind.UPCOMING_EVENT,
        title=_cut(info.title, TITLE_MAX),
        text=_cut("\n\n".join(lines), TEXT_MAX),
        link=f"{public_url.rstrip('/')}/kalender/{info.meeting_id}",
        event_date=starts.date(),
        event_public=True,
        prompt=MEETING_PROMPT,
    )


def network(event: NetworkClosed, public_url: str) -> Suggestion | None:
    """A network closed with a result (an initiative, or handed over)."""
    if event.outcome == Outcome.NO_RESULT:
        return None
    info = event.network
    title = event.initiative_title or info.title
    lines = [
        f'{NETWORK_KIND_LABELS[info.kind]} "{info.title}" er afsluttet'
        + (f" med et nyt initiativ: {event.initiative_title}." if event.initiative_title else ".")
    ]
    lines.append(event.summary)
    if event.organisations:
        lines.append("Med i netværket var: " + ", ".join(event.organisations) + ".")
    return Suggestion(
        source=StorySource.NETWORK,
        source_ref=f"network:{event.network_id}",
        kind=StoryKind.MILESTONE,
        title=_cut(title, TITLE_MAX),
        text=_cut("\n\n".join(lines), TEXT_MAX),
        link=f"{public_url.rstrip('/')}/netvaerk",
        event_date=None,
        event_public=None,
        prompt=NETWORK_PROMPT,
    )


def issue(event: IssueSent, public_url: str) -> Suggestion:
    """A newsletter issue sent: it goes out on the Page too, linking its archive page."""
    return Suggestion(
        source=StorySource.NEWSLETTER,
        source_ref=f"issue:{event.issue_id}",
        kind=StoryKind.OTHER,
        title=_cut(f"Nyhedsbrev nr. {event.number}: {event.title}", TITLE_MAX),
        text=(
            f"Ambassadørnetværkets nyhedsbrev nr. {event.number} er på gaden. Læs om, hvad "
            "der sker i netværket, og tilmeld dig nyhedsbrevet, hvis du ikke allerede får det."
        ),
        link=f"{public_url.rstrip('/')}/nyhedsbrev/{event.number}",
        event_date=None,
        event_public=None,
        prompt=ISSUE_PROMPT,
    )
