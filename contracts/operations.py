"""Operator messages every service answers: health and dead letters."""

from __future__ import annotations

from pydantic import Field

from contracts.envelope import Message

SERVICES = ("ambassadors", "networks", "events", "newsletter", "social")


def health_subject(service: str) -> str:
    return f"{service}.health"


def dead_letters_list_subject(service: str) -> str:
    return f"{service}.query.dead_letters.list"


def dead_letters_show_subject(service: str) -> str:
    return f"{service}.query.dead_letters.show"


def dead_letters_replay_subject(service: str) -> str:
    return f"{service}.cmd.dead_letters.replay"


class ListDeadLetters(Message):
    limit: int = Field(default=100, ge=1, le=1000)
    include_replayed: bool = False


class ShowDeadLetter(Message):
    id: str = Field(min_length=1, max_length=200)


class ReplayDeadLetter(Message):
    id: str = Field(min_length=1, max_length=200)
