"""The networks service: challenges, the suggested teams (the matching) and the skill
vocabulary. Run with ``python -m services.networks``; the AsyncAPI document:
``faststream docs gen --factory services.networks.app:create_app``."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from contracts.ambassadors import Activated, Erased, ProfileUpdated, Withdrawn
from contracts.events import MeetingHeld
from contracts.networks import EVENTS, Endpoints
from services import registry
from services.networks import (
    challenge_handlers,
    network_handlers,
    notices,
    reactions,
    skill_handlers,
    store,
    suggesting,
)
from services.networks.candidates import CandidatePool
from services.networks.context import Context
from services.networks.fatigue import FatigueCache
from services.networks.settings import NetworksSettings
from services.runtime.service import Service, ServiceFactory

ENTRY = registry.NETWORKS


def build(
    settings: NetworksSettings, service_factory: ServiceFactory = Service
) -> tuple[Service, Context]:
    """The service with every handler registered, and the context they share."""
    service = service_factory(ENTRY.name, settings, produces=EVENTS)
    # First: the runtime's read model is updated before any of our reactions runs.
    ctx = Context(
        service,
        settings,
        service.follow_ambassadors(),
        CandidatePool(),
        FatigueCache(settings.networks_fatigue_window),
    )

    async def prepare() -> None:
        await store.ensure_indexes(service.reading())
        # The pool is built now rather than by the first suggestion to wait for it.
        await ctx.pool.current(service.reading())

    service.on_startup(prepare)
    service.loop("housekeeping", partial(notices.step, ctx), every=settings.networks_poll_seconds)

    for event_type in (Activated, ProfileUpdated, Withdrawn, Erased):
        service.react(event_type, partial(reactions.ambassador_changed, ctx))
    service.react(Withdrawn, partial(reactions.ambassador_withdrawn, ctx))
    service.react(Erased, partial(reactions.ambassador_erased, ctx))
    service.react(MeetingHeld, partial(reactions.meeting_held, ctx))

    service.command(Endpoints.RAISE_CHALLENGE, partial(challenge_handlers.raise_challenge, ctx))
    service.command(Endpoints.DROP_CHALLENGE, partial(challenge_handlers.drop_challenge, ctx))
    service.query(Endpoints.LIST_CHALLENGES, partial(challenge_handlers.list_challenges, ctx))
    service.query(Endpoints.SHOW_CHALLENGE, partial(challenge_handlers.show_challenge, ctx))
    service.query(Endpoints.CANDIDATES, partial(challenge_handlers.candidates, ctx))
    service.query(Endpoints.INITIATIVES, partial(challenge_handlers.initiatives, ctx))
    service.query(Endpoints.SUGGEST, partial(suggesting.suggest, ctx))
    service.command(Endpoints.FORM, partial(network_handlers.form, ctx))
    service.command(Endpoints.CREATE, partial(network_handlers.create, ctx))
    service.command(Endpoints.INVITE, partial(network_handlers.invite, ctx))
    service.command(Endpoints.REMOVE, partial(network_handlers.remove, ctx))
    service.command(Endpoints.ANSWER, partial(network_handlers.answer, ctx))
    service.query(Endpoints.INVITATION, partial(network_handlers.show_invitation, ctx))
    service.command(Endpoints.START, partial(network_handlers.start, ctx))
    service.command(Endpoints.CLOSE, partial(network_handlers.close, ctx))
    service.query(Endpoints.LIST, partial(network_handlers.list_networks, ctx))
    service.query(Endpoints.SHOW, partial(network_handlers.show_network, ctx))
    service.command(Endpoints.ALERT, partial(network_handlers.alert, ctx))
    service.command(Endpoints.ANSWER_ALERT, partial(network_handlers.answer_alert, ctx))
    service.query(Endpoints.SHOW_ALERT, partial(network_handlers.show_alert, ctx))
    service.query(Endpoints.PUBLIC, partial(network_handlers.public_networks, ctx))
    service.query(Endpoints.SKILLS, partial(skill_handlers.list_skills, ctx))
    service.command(Endpoints.MERGE_SKILLS, partial(skill_handlers.merge_skills, ctx))
    service.check_endpoints(Endpoints)
    return service, ctx


def create_app(settings: NetworksSettings | None = None) -> FastStream:
    service, _ = build(settings or NetworksSettings())
    return service.app
