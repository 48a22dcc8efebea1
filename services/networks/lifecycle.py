"""Networks and their members: the pure rules of their life.

A formed network (action, volunteer) is ``forming`` while its members answer, ``active``
once started, ``closed`` with an outcome; a standing one (leader, staff) is active from
the start. Every change keeps who made it and when. Taking part is voluntary: a member is
invited, answers (a late answer is still welcome while the network is open), and may be
taken out; an invitation not answered by its deadline expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from contracts.ambassadors import CoreArea, Kind
from contracts.errors import DomainValidationError, ErrorCode, FieldError, ServiceError
from contracts.networks import (
    STANDING_KINDS,
    MemberState,
    NetworkInfo,
    NetworkKind,
    NetworkStatus,
    Outcome,
)

# Who counts as in the network (for its rules, for meetings, for fatigue).
IN_NETWORK = frozenset({MemberState.JOINED})
# Who may still become a member by answering.
ANSWERABLE = frozenset({MemberState.INVITED, MemberState.EXPIRED, MemberState.DECLINED})
# Staff are told a week before a network's end date.
ENDING_NOTICE = timedelta(days=7)


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    what: str
    actor: str
    at: datetime
    detail: str | None = None


class TeamRules(BaseModel):
    """The rules a network was formed by: a replacement keeps them."""

    model_config = ConfigDict(frozen=True)

    size_min: int | None = None
    size_max: int | None = None
    required_skills: tuple[str, ...] = ()
    kind_minimums: dict[Kind, int] = {}
    core_area_minimums: dict[CoreArea, int] = {}


class Network(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: NetworkKind
    title: str
    status: NetworkStatus
    challenge_id: str | None = None
    challenge_title: str | None = None
    lead: str | None = None
    ends: date | None = None
    reply_within_days: int = 7
    rules: TeamRules = TeamRules()
    created_at: datetime
    started_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None
    summary: str | None = None
    initiative_title: str | None = None
    ending_noticed: bool = False
    history: tuple[Change, ...] = ()

    @property
    def open(self) -> bool:
        return self.status != NetworkStatus.CLOSED

    def info(self) -> NetworkInfo:
        return NetworkInfo(
            network_id=self.id,
            kind=self.kind,
            title=self.title,
            challenge_id=self.challenge_id,
            challenge_title=self.challenge_title,
            ends=self.ends,
        )

    def changed(self, what: str, actor: str, at: datetime, detail: str | None = None) -> Network:
        step = Change(what=what, actor=actor, at=at, detail=detail)
        return self.model_copy(update={"history": (*self.history, step)})


class Membership(BaseModel):
    model_config = ConfigDict(frozen=True)

    network_id: str
    ambassador_id: str
    state: MemberState
    lead: bool = False
    invited_at: datetime
    reply_by: datetime | None = None
    answered_at: datetime | None = None
    # Kept beside the state: the fatigue of the matching counts open networks only.
    network_open: bool = True

    @property
    def id(self) -> str:
        return membership_id(self.network_id, self.ambassador_id)


def membership_id(network_id: str, ambassador_id: str) -> str:
    return f"{network_id}:{ambassador_id}"


def _invalid(field: str, message: str) -> DomainValidationError:
    return DomainValidationError([FieldError(field=field, message=message)])


def _state(message: str) -> ServiceError:
    return ServiceError(ErrorCode.INVALID_STATE, message)


# ---------------------------------------------------------------- forming


def check_active(ids: Sequence[str], active: set[str], field: str) -> None:
    """Refuse ids that are not (or no longer) active ambassadors, naming them."""
    unknown = [a for a in dict.fromkeys(ids) if a not in active]
    if unknown:
        raise _invalid(field, "not active ambassadors: " + ", ".join(unknown))


def form(
    *,
    kind: NetworkKind,
    title: str,
    members: Sequence[str],
    active: set[str],
    lead: str | None,
    ends: date | None,
    reply_within_days: int,
    rules: TeamRules,
    challenge_id: str | None,
    challenge_title: str | None,
    today: date,
    now: datetime,
    actor: str,
) -> tuple[Network, list[Membership]]:
    """A new network and its members' invitations. ``active``: those of ``members`` (and
    the lead) who are active ambassadors now."""
    check_active(members, active, "members")
    if lead is not None:
        check_active([lead], active, "lead")
    if ends is not None and ends <= today:
        raise _invalid("ends", f"the end date {ends.isoformat()} is not in the future")
    standing = kind in STANDING_KINDS
    network = Network(
        id=uuid.uuid4().hex,
        kind=kind,
        title=title,
        status=NetworkStatus.ACTIVE if standing else NetworkStatus.FORMING,
        challenge_id=challenge_id,
        challenge_title=challenge_title,
        lead=lead,
        ends=ends,
        reply_within_days=reply_within_days,
        rules=rules,
        created_at=now,
        started_at=now if standing else None,
    ).changed("created" if standing else "formed", actor, now)
    people = list(dict.fromkeys([*([lead] if lead else []), *members]))
    return network, invite(network, {}, people, now)


def invite(
    network: Network, current: dict[str, Membership], ids: Iterable[str], now: datetime
) -> list[Membership]:
    """Invitations for ``ids`` who are not in the network or invited already (someone who
    declined, expired or was taken out is asked again)."""
    if not network.open:
        raise _state(f"network {network.id} is closed")
    reply_by = now + timedelta(days=network.reply_within_days)
    invited = []
    for ambassador_id in dict.fromkeys(ids):
        existing = current.get(ambassador_id)
        if existing is not None and existing.state in (MemberState.INVITED, MemberState.JOINED):
            continue
        invited.append(
            Membership(
                network_id=network.id,
                ambassador_id=ambassador_id,
                state=MemberState.INVITED,
                lead=ambassador_id == network.lead,
                invited_at=now,
                reply_by=reply_by,
            )
        )
    return invited


# ---------------------------------------------------------------- answers


def answer(network: Network, membership: Membership, accept: bool, now: datetime) -> Membership:
    """The member's answer; the same answer twice changes nothing (the link clicked
    again). A joined member who declines leaves."""
    if not network.open:
        raise _state(f"the network {network.title!r} is closed")
    if membership.state == MemberState.REMOVED:
        raise _state("the invitation was withdrawn")
    wanted = MemberState.JOINED if accept else MemberState.DECLINED
    if membership.state == wanted:
        return membership
    return membership.model_copy(update={"state": wanted, "answered_at": now})


def expire(memberships: Iterable[Membership], now: datetime) -> list[Membership]:
    """Invitations whose deadline passed without an answer."""
    return [
        m.model_copy(update={"state": MemberState.EXPIRED})
        for m in memberships
        if m.state == MemberState.INVITED and m.reply_by is not None and m.reply_by <= now
    ]


def remove(membership: Membership) -> Membership:
    if membership.state == MemberState.REMOVED:
        return membership
    return membership.model_copy(update={"state": MemberState.REMOVED})


# ---------------------------------------------------------------- life


def start(network: Network, joined: int, now: datetime, actor: str) -> Network:
    if network.status != NetworkStatus.FORMING:
        raise _state(f"network {network.id} is {network.status.value}: only a forming one starts")
    if joined == 0:
        raise _state("nobody has accepted yet: a network starts with at least one member")
    return network.model_copy(update={"status": NetworkStatus.ACTIVE, "started_at": now}).changed(
        "started", actor, now, f"{joined} member(s)"
    )


def close(
    network: Network,
    *,
    outcome: Outcome,
    summary: str,
    initiative_title: str | None,
    now: datetime,
    actor: str,
) -> Network:
    if network.status == NetworkStatus.CLOSED:
        raise _state(f"network {network.id} is closed already")
    title = initiative_title or (network.title if outcome == Outcome.INITIATIVE else None)
    return network.model_copy(
        update={
            "status": NetworkStatus.CLOSED,
            "closed_at": now,
            "outcome": outcome,
            "summary": summary,
            "initiative_title": title,
        }
    ).changed("closed", actor, now, outcome.value)


def ending_soon(network: Network, today: date) -> bool:
    """Staff are to be told now that the network's end date is a week away."""
    return (
        network.open
        and not network.ending_noticed
        and network.ends is not None
        and network.ends - ENDING_NOTICE <= today
    )
