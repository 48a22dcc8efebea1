"""Meetings of the network (the events service's), as far as the newsletter deals with them.

Two things:

- **Invitee mails.** The events service tells one invitee something (invited, moved,
  cancelled, waitlisted, a seat came free, a reminder) with one event each; each event
  becomes one mail here, queued in the event's transaction, deduplicated by
  ``<kind>:<event_id>``. They are not newsletter mails: no unsubscribe link (people stop them
  by withdrawing as ambassadors, which the events service honours). An ambassador this
  service knows to be erased is not mailed: the EVENTS and AMBASSADORS streams are not
  ordered with each other, so an invitation may arrive after the erasure, and the runtime
  ignores it then (the read model's tombstones). The answer links are signed when the mail
  is put together (see links.py).
- **The read model** ``meetings``, fed by scheduled/rescheduled/cancelled/held, that the
  digest sections "Det sker snart" and "Det har vi holdt" are drawn from. Plain public data
  only: what the meeting is, never who was invited.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from contracts.events import (
    KIND_LABELS,
    InvitationCancelled,
    InvitationUpdated,
    Invited,
    InviteeEvent,
    MeetingCancelled,
    MeetingHeld,
    MeetingInfo,
    MeetingRescheduled,
    MeetingScheduled,
    MeetingState,
    Promoted,
    ReminderDue,
    Waitlisted,
)
from services.newsletter import delivery, links, store
from services.newsletter.context import Context
from services.newsletter.mail.rendering import safe_url
from services.newsletter.mailing import active_recipient, queue
from services.runtime.logging import get_logger
from services.runtime.unit_of_work import UnitOfWork

log = get_logger(__name__)

# The mail kind (templates ``mail/templates/<kind>.*.j2``) of each invitee event.
MAIL_KINDS: dict[type[InviteeEvent], str] = {
    Invited: "meeting_invitation",
    InvitationUpdated: "meeting_updated",
    InvitationCancelled: "meeting_cancelled",
    Waitlisted: "meeting_waitlisted",
    Promoted: "meeting_promoted",
    ReminderDue: "meeting_reminder",
}
# Kinds whose mail asks for an answer (when the event carries a token).
ANSWERED_KINDS = frozenset(
    {
        "meeting_invitation",
        "meeting_updated",
        "meeting_waitlisted",
        "meeting_promoted",
        "meeting_reminder",
    }
)
INVITATION_FILENAME = "invitation.ics"
CANCELLATION_FILENAME = "aflysning.ics"
# RFC 6047: the iTIP method travels on the Content-Type too; calendars read it from there.
REQUEST_TYPE = "text/calendar; method=REQUEST; charset=utf-8"
CANCEL_TYPE = "text/calendar; method=CANCEL; charset=utf-8"


# ---------------------------------------------------------------- invitee mails (pure)


def meeting_view(info: MeetingInfo) -> dict[str, Any]:
    """What a mail shows of a meeting (stored in the mail's context: plain values only)."""
    return {
        "meeting_id": info.meeting_id,
        "kind": info.kind.value,
        "kind_label": KIND_LABELS[info.kind],
        "title": info.title,
        "description": info.description,
        "starts_at": info.starts_at,
        "ends_at": info.ends_at,
        "place": info.place,
        "online_url": safe_url(info.online_url),
    }


def invitee_mail(event: InviteeEvent) -> tuple[str, dict[str, Any], list[delivery.Attachment]]:
    """The kind, template context and attachments of the mail an invitee event causes (the
    answer links as a reference, signed when the mail is sent: see links.Links.resolve)."""
    kind = MAIL_KINDS[type(event)]
    context: dict[str, Any] = {
        "name": event.name,
        "meeting": meeting_view(event.meeting),
        "rsvp": None,
    }
    if event.answerable and kind in ANSWERED_KINDS:
        context |= links.answer(event.meeting.meeting_id, event.ambassador_id).to_context()
    attachments: list[delivery.Attachment] = []
    if isinstance(event, InvitationUpdated):
        context["previous_starts_at"] = event.previous_starts_at
        context["previous_ends_at"] = event.previous_ends_at
    if isinstance(event, InvitationCancelled):
        context["reason"] = event.reason
        attachments.append(
            delivery.Attachment(
                filename=CANCELLATION_FILENAME, content_type=CANCEL_TYPE, text=event.ics
            )
        )
    elif isinstance(event, Invited | InvitationUpdated | Promoted):
        attachments.append(
            delivery.Attachment(
                filename=INVITATION_FILENAME, content_type=REQUEST_TYPE, text=event.ics
            )
        )
    if isinstance(event, Waitlisted):
        context["position"] = event.position
    return kind, context, attachments


# ---------------------------------------------------------------- invitee mails (handler)


async def invitee_event(ctx: Context, uow: UnitOfWork, event: InviteeEvent) -> None:
    """One mail to the invitee, in the event's unit of work: to the address this service
    knows for the ambassador, not one the event names (only an active ambassador of its
    own read model is ever mailed an invitation)."""
    known = await active_recipient(ctx, uow, event.ambassador_id, type(event).__name__)
    if known is None or known.email is None:
        return
    if known.email.casefold() != event.email.casefold():
        # The events service's copy lags or leads ours; ours is the one this service
        # answers for.
        log.warning("invitee's address differs from the known one", ambassador_id=known.id)
    kind, context, attachments = invitee_mail(event)
    context["name"] = known.name or event.name
    await queue(
        ctx,
        uow,
        kind=kind,
        dedupe_key=f"{kind}:{event.event_id}",
        to_address=known.email,
        to_name=known.name or event.name,
        ambassador_id=event.ambassador_id,
        context=context,
        attachments=attachments,
    )


# ---------------------------------------------------------------- the read model (pure)

# Later states win over earlier ones at the same sequence: a cancellation that did not
# raise the sequence still beats the scheduling it ends.
_STATE_RANK = {MeetingState.SCHEDULED: 0, MeetingState.CANCELLED: 1, MeetingState.HELD: 2}


def _info_fields(info: MeetingInfo) -> dict[str, Any]:
    return {
        "kind": info.kind.value,
        "title": info.title,
        "description": info.description,
        "starts_at": info.starts_at,
        "ends_at": info.ends_at,
        "place": info.place,
        "online_url": info.online_url,
        "public": info.public,
        "sequence": info.sequence,
    }


def apply_info(
    existing: Mapping[str, Any] | None,
    info: MeetingInfo,
    state: MeetingState,
    at: datetime,
) -> dict[str, Any] | None:
    """The meeting document after a scheduled/rescheduled/cancelled event; None when the
    event is older than what is stored (events may come again, or late, after a failure).

    Held is final: a later change of the meeting's details is taken, its state is not.
    """
    if existing is None:
        doc: dict[str, Any] = {"_id": info.meeting_id, "state": state.value}
        doc |= _info_fields(info)
        if state == MeetingState.CANCELLED:
            doc["cancelled_at"] = at
        return doc
    stored_state = MeetingState(existing.get("state", MeetingState.SCHEDULED))
    stored = (int(existing.get("sequence", 0)), _STATE_RANK[stored_state])
    if stored_state == MeetingState.HELD:
        if info.sequence <= stored[0]:
            return None
        return {**existing, **_info_fields(info)}
    if (info.sequence, _STATE_RANK[state]) < stored:
        return None
    doc = {**existing, **_info_fields(info), "state": state.value}
    if state == MeetingState.CANCELLED:
        doc["cancelled_at"] = existing.get("cancelled_at") or at
    return doc


def apply_held(existing: Mapping[str, Any] | None, event: MeetingHeld) -> dict[str, Any]:
    """The meeting document once it was held (also when its scheduling was never seen)."""
    doc: dict[str, Any] = dict(existing) if existing is not None else {"sequence": 0}
    doc.update(
        {
            "_id": event.meeting_id,
            "state": MeetingState.HELD.value,
            "kind": event.kind.value,
            "title": event.title,
            "starts_at": event.starts_at,
            "public": event.public,
            "held_at": event.held_at,
            # The day in Copenhagen, as the events service says (BSON has no plain date).
            "held_on": event.date.isoformat(),
            "attendee_count": event.attendee_count,
            # Once each, in the order given.
            "attending_organisations": list(
                dict.fromkeys(o.strip() for o in event.attending_organisations if o.strip())
            ),
            "outcomes": list(event.outcomes),
        }
    )
    return doc


# ---------------------------------------------------------------- the read model (handlers)


async def _save_info(uow: UnitOfWork, info: MeetingInfo, state: MeetingState, at: datetime) -> None:
    existing = await store.load_meeting(uow, info.meeting_id)
    doc = apply_info(existing, info, state, at)
    if doc is None:
        log.info("older meeting event ignored", meeting_id=info.meeting_id)
        return
    await store.save_meeting(uow, doc)


async def meeting_scheduled(ctx: Context, uow: UnitOfWork, event: MeetingScheduled) -> None:
    await _save_info(uow, event.meeting, MeetingState.SCHEDULED, event.occurred_at)


async def meeting_rescheduled(ctx: Context, uow: UnitOfWork, event: MeetingRescheduled) -> None:
    await _save_info(uow, event.meeting, MeetingState.SCHEDULED, event.occurred_at)


async def meeting_cancelled(ctx: Context, uow: UnitOfWork, event: MeetingCancelled) -> None:
    await _save_info(uow, event.meeting, MeetingState.CANCELLED, event.occurred_at)


async def meeting_held(ctx: Context, uow: UnitOfWork, event: MeetingHeld) -> None:
    existing = await store.load_meeting(uow, event.meeting_id)
    await store.save_meeting(uow, apply_held(existing, event))
