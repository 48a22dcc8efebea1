"""Challenges and the held meetings they come from: the pure rules.

A held meeting (``events.v1.meeting_held``) may end with outcomes, each a concrete
challenge waiting to be taken up; raising a challenge from one takes it up, so it leaves
the list of candidates. A challenge is open until a network is formed around it (taken up)
or staff drop it, with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from contracts.ambassadors import CoreArea
from contracts.errors import DomainValidationError, ErrorCode, FieldError, ServiceError
from contracts.events import MeetingKind
from contracts.networks import ChallengeStatus, MeetingRef, RaiseChallenge


class HeldMeeting(BaseModel):
    """What this service keeps of a held meeting: enough to raise challenges from its
    outcomes and to count it toward the initiatives goal."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: MeetingKind
    title: str
    date: date
    held_at: datetime
    outcomes: tuple[str, ...] = ()

    def outcome(self, number: int) -> MeetingRef:
        return MeetingRef(
            meeting_id=self.id,
            title=self.title,
            kind=self.kind,
            date=self.date,
            outcome_number=number,
            outcome=self.outcomes[number - 1],
        )


class Challenge(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    description: str
    themes: tuple[int, ...] = ()
    core_areas: tuple[CoreArea, ...] = ()
    skills: tuple[str, ...] = ()
    target_group: str | None = None
    status: ChallengeStatus = ChallengeStatus.OPEN
    from_meeting: MeetingRef | None = None
    raised_at: datetime
    raised_by: str
    dropped_at: datetime | None = None
    drop_reason: str | None = None


def _outcome_of(held: HeldMeeting, number: int | None) -> MeetingRef:
    if not held.outcomes:
        raise DomainValidationError(
            [
                FieldError(
                    field="from_meeting", message=f"meeting {held.id} was held without outcomes"
                )
            ]
        )
    if number is None:
        if len(held.outcomes) > 1:
            listed = "; ".join(f"{n}: {text}" for n, text in enumerate(held.outcomes, start=1))
            raise DomainValidationError(
                [
                    FieldError(
                        field="from_outcome",
                        message=f"the meeting had {len(held.outcomes)} outcomes; say which "
                        f"one ({listed})",
                    )
                ]
            )
        number = 1
    if number > len(held.outcomes):
        raise DomainValidationError(
            [
                FieldError(
                    field="from_outcome",
                    message=f"the meeting had {len(held.outcomes)} outcome(s), not {number}",
                )
            ]
        )
    return held.outcome(number)


def origin(cmd: RaiseChallenge, held: HeldMeeting | None) -> MeetingRef | None:
    """The outcome of a held meeting a new challenge takes up (``held``: the meeting named
    by ``from_meeting`` as this service knows it, None when it is not known as held)."""
    if cmd.from_meeting is None:
        return None
    if held is None:
        raise ServiceError(
            ErrorCode.NOT_FOUND,
            f"meeting {cmd.from_meeting} is not known as held (close it with its outcomes "
            "first: samskab events close)",
        )
    return _outcome_of(held, cmd.from_outcome)


def raise_challenge(
    cmd: RaiseChallenge,
    *,
    origin: MeetingRef | None,
    taken_by: str | None,
    now: datetime,
    actor: str,
) -> Challenge:
    """A new open challenge; ``taken_by``: the challenge that already took up ``origin``."""
    if origin is not None and taken_by is not None:
        raise ServiceError(
            ErrorCode.CONFLICT,
            f"outcome {origin.outcome_number} of meeting {origin.meeting_id} is taken up "
            f"already by challenge {taken_by}",
        )
    return Challenge(
        id=uuid.uuid4().hex,
        title=cmd.title,
        description=cmd.description,
        themes=tuple(sorted(set(cmd.themes))),
        core_areas=tuple(sorted(set(cmd.core_areas))),
        skills=tuple(cmd.skills),
        target_group=cmd.target_group,
        from_meeting=origin,
        raised_at=now,
        raised_by=actor,
    )


def drop(challenge: Challenge, *, reason: str, now: datetime) -> Challenge:
    if challenge.status != ChallengeStatus.OPEN:
        raise ServiceError(
            ErrorCode.INVALID_STATE,
            f"challenge {challenge.id} is {challenge.status.value}: only an open one is dropped",
        )
    return challenge.model_copy(
        update={"status": ChallengeStatus.DROPPED, "dropped_at": now, "drop_reason": reason}
    )


def take_up(challenge: Challenge) -> Challenge:
    """A network was formed around it."""
    return challenge.model_copy(update={"status": ChallengeStatus.TAKEN_UP})


def open_outcomes(held: Iterable[HeldMeeting], taken: set[tuple[str, int]]) -> list[MeetingRef]:
    """Every outcome of the held meetings that no challenge took up, newest meeting first."""
    found = []
    for meeting in sorted(held, key=lambda m: (m.held_at, m.id), reverse=True):
        for number in range(1, len(meeting.outcomes) + 1):
            if (meeting.id, number) not in taken:
                found.append(meeting.outcome(number))
    return found
