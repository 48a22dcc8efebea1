"""The events service: meetings, invitations, answers, waitlists, reminders, attendance,
minutes and the public calendar. Run with ``python -m services.events``; the AsyncAPI
document: ``faststream docs gen --factory services.events.app:create_app``."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from contracts.ambassadors import Activated, Erased, ProfileUpdated, Withdrawn
from contracts.events import EVENTS, Endpoints
from contracts.networks import MemberJoined, MemberLeft, NetworkClosed, NetworkFormed
from services import registry
from services.events import handlers, housekeeping, reactions, store
from services.events.context import Context
from services.events.settings import EventsSettings
from services.runtime.service import Service, ServiceFactory

ENTRY = registry.EVENTS


def build(
    settings: EventsSettings, service_factory: ServiceFactory = Service
) -> tuple[Service, Context]:
    """The service with every handler registered, and the context they share."""
    service = service_factory(ENTRY.name, settings, produces=EVENTS)
    # First: the runtime's read model is updated before any of our reactions runs.
    ctx = Context(service, settings, service.follow_ambassadors())

    async def prepare() -> None:
        await store.ensure_indexes(service.reading())

    service.on_startup(prepare)
    ctx.housekeeping = service.loop(
        "housekeeping", partial(housekeeping.step, ctx), every=settings.events_poll_seconds
    )

    service.react(Activated, partial(reactions.ambassador_activated, ctx))
    service.react(ProfileUpdated, partial(reactions.ambassador_profile_updated, ctx))
    service.react(Withdrawn, partial(reactions.ambassador_withdrawn, ctx))
    service.react(Erased, partial(reactions.ambassador_erased, ctx))
    # The networks service's: who is in a network, for its meetings.
    service.react(NetworkFormed, partial(reactions.network_formed, ctx))
    service.react(NetworkClosed, partial(reactions.network_closed, ctx))
    service.react(MemberJoined, partial(reactions.member_joined, ctx))
    service.react(MemberLeft, partial(reactions.member_left, ctx))

    service.command(Endpoints.SCHEDULE, partial(handlers.schedule, ctx))
    service.job(Endpoints.PLAN_YEAR, partial(handlers.plan_year, ctx))
    service.command(Endpoints.RESCHEDULE, partial(handlers.reschedule, ctx))
    service.command(Endpoints.CANCEL, partial(handlers.cancel, ctx))
    service.command(Endpoints.RSVP, partial(handlers.rsvp, ctx))
    service.command(Endpoints.ANSWER, partial(handlers.answer_invitation, ctx))
    service.command(Endpoints.ATTENDANCE, partial(handlers.record_attendance, ctx))
    service.command(Endpoints.CLOSE, partial(handlers.close, ctx))
    service.query(Endpoints.LIST, partial(handlers.list_meetings, ctx))
    service.query(Endpoints.SHOW, partial(handlers.show_meeting, ctx))
    service.query(Endpoints.CALENDAR, partial(handlers.public_calendar, ctx))
    service.query(Endpoints.INVITATION, partial(handlers.show_invitation, ctx))
    service.check_endpoints(Endpoints)
    return service, ctx


def create_app(settings: EventsSettings | None = None) -> FastStream:
    service, _ = build(settings or EventsSettings())
    return service.app
