"""A staff network ("akutteam") called out (pure): who is asked, and who answered that they
can help within the deadline. Only members who joined are called out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from contracts.errors import ErrorCode, ServiceError
from contracts.networks import AlertSummary, NetworkKind
from services.networks.lifecycle import Network


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)

    can_help: bool
    at: datetime


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    network_id: str
    message: str
    sent_at: datetime
    answer_by: datetime
    sent_to: tuple[str, ...]
    answers: dict[str, Answer] = {}
    actor: str


def call_out(
    network: Network,
    joined: Sequence[str],
    *,
    message: str,
    within: timedelta,
    now: datetime,
    actor: str,
) -> Alert:
    if network.kind != NetworkKind.STAFF:
        raise ServiceError(ErrorCode.INVALID_STATE, "only a staff network (akutteam) is called out")
    if not network.open:
        raise ServiceError(ErrorCode.INVALID_STATE, f"network {network.id} is closed")
    if not joined:
        raise ServiceError(ErrorCode.INVALID_STATE, "nobody has joined the network yet")
    return Alert(
        id=uuid.uuid4().hex,
        network_id=network.id,
        message=message,
        sent_at=now,
        answer_by=now + within,
        sent_to=tuple(joined),
        actor=actor,
    )


def answer(alert: Alert, ambassador_id: str, can_help: bool, now: datetime) -> Alert:
    """The member's answer; the first "I can help" keeps its time (it is what counts)."""
    if ambassador_id not in alert.sent_to:
        raise ServiceError(ErrorCode.INVALID_TOKEN, "the answer link is not valid")
    current = alert.answers.get(ambassador_id)
    if current is not None and current.can_help == can_help:
        return alert
    return alert.model_copy(
        update={"answers": {**alert.answers, ambassador_id: Answer(can_help=can_help, at=now)}}
    )


def summary(alert: Alert) -> AlertSummary:
    helping = {a: x for a, x in alert.answers.items() if x.can_help}
    return AlertSummary(
        id=alert.id,
        message=alert.message,
        sent_at=alert.sent_at,
        answer_by=alert.answer_by,
        sent_to=len(alert.sent_to),
        can_help=sorted(a for a, x in helping.items() if x.at <= alert.answer_by),
        can_help_late=sorted(a for a, x in helping.items() if x.at > alert.answer_by),
        cannot=sorted(a for a, x in alert.answers.items() if not x.can_help),
    )
