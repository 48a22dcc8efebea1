"""The ambassadors service: sign-up, confirmation, profile, withdrawal, erasure,
certificates, directory and goals. Run with ``python -m services.ambassadors``; the
AsyncAPI document: ``faststream docs gen --factory services.ambassadors.app:create_app``."""

from __future__ import annotations

from functools import partial

from faststream import FastStream

from contracts.ambassadors import EVENTS, Endpoints
from services import registry
from services.ambassadors import certificate_worker, handlers, store
from services.ambassadors.context import Context
from services.ambassadors.settings import AmbassadorsSettings
from services.runtime.service import Service, ServiceFactory

ENTRY = registry.AMBASSADORS


def build(
    settings: AmbassadorsSettings, service_factory: ServiceFactory = Service
) -> tuple[Service, Context]:
    """The service with every handler registered, and the context they share."""
    service = service_factory(
        ENTRY.name, settings, produces=EVENTS, buckets=[settings.certificate_bucket]
    )
    ctx = Context(service, settings)

    async def prepare() -> None:
        await store.ensure_indexes(service.db)
        await handlers.import_demo_if_empty(ctx)

    async def stop_renderer() -> None:
        certificate_worker.stop_renderer(ctx)

    service.on_startup(prepare)
    service.on_shutdown(stop_renderer)
    ctx.certificates = service.loop(
        "certificates",
        partial(certificate_worker.step, ctx),
        every=certificate_worker.POLL_SECONDS,
    )

    service.command(Endpoints.SIGN_UP, partial(handlers.sign_up, ctx))
    service.command(Endpoints.REGISTER, partial(handlers.register, ctx))
    service.command(Endpoints.CONFIRM, partial(handlers.confirm, ctx))
    service.command(Endpoints.UPDATE, partial(handlers.update, ctx))
    service.command(Endpoints.WITHDRAW, partial(handlers.withdraw, ctx))
    service.command(Endpoints.ERASE, partial(handlers.erase, ctx))
    service.job_runner(Endpoints.IMPORT, partial(handlers.import_rows, ctx))
    service.orchestrate(Endpoints.CERTIFICATE, partial(handlers.get_certificate, ctx))
    service.query(Endpoints.LIST, partial(handlers.list_ambassadors, ctx))
    service.query(Endpoints.SHOW, partial(handlers.show, ctx))
    service.query(Endpoints.VERIFY, partial(handlers.verify, ctx))
    service.query(Endpoints.DIRECTORY, partial(handlers.directory, ctx))
    service.query(Endpoints.GOALS, partial(handlers.goals, ctx))
    service.query(Endpoints.CONSENT, partial(handlers.consent_text, ctx))
    service.check_endpoints(Endpoints)
    return service, ctx


def create_app(settings: AmbassadorsSettings | None = None) -> FastStream:
    service, _ = build(settings or AmbassadorsSettings())
    return service.app
