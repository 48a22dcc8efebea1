"""The website's factory: ``create_app(settings)`` builds the FastAPI app; the NATS
connection opens when it starts and closes when it stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.runtime.client import ServiceClient
from services.runtime.tracing import provider_for
from web import failures
from web.csrf import Csrf
from web.forms import Guard
from web.gateway import Caller, client_for
from web.head_requests import HeadAsGet
from web.health import answer_health
from web.metrics import RequestMetrics, WebMetrics
from web.pages import (
    alert_answer,
    calendar,
    confirmations,
    directory,
    front,
    goals,
    network_answer,
    networks,
    newsletter,
    own_stories,
    rsvp,
    signup,
    stories,
    verify,
)
from web.rate_limits import RateLimits
from web.security import AccessLog, BodyLimit, SecurityHeaders
from web.settings import WebSettings
from web.shared_answers import SharedAnswers
from web.site import Site
from web.templating import Pages
from web.tracing import RequestSpans
from web.uploads import NatsUploads, Uploads

STATIC = Path(__file__).parent / "static"
# Every module of pages, each with its ``router``.
PAGES = (
    front,
    signup,
    confirmations,
    rsvp,
    network_answer,
    alert_answer,
    networks,
    stories,
    own_stories,
    verify,
    newsletter,
    directory,
    calendar,
    goals,
)


def create_app(
    settings: WebSettings, services: Caller | None = None, uploads: Uploads | None = None
) -> FastAPI:
    """``services``: what the pages ask (a test's stand-in); by default the typed client
    over NATS, connected while the app runs. ``uploads``: where files sent go (a test's
    stand-in); by default that client's Object Store buckets."""
    client: ServiceClient | None = None
    if services is None:
        client = client_for(settings)
        services = client
        uploads = uploads or NatsUploads(client)
    services = SharedAnswers(services, settings.web_answer_cache_seconds)
    traces = provider_for("web", settings.otel_exporter, settings.otel_endpoint)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if client is not None:
            await client.connect()
            await answer_health(client.nc)
        try:
            yield
        finally:
            if client is not None:
                await client.close()
            if traces is not None:
                traces.shutdown()  # what the exporter still holds

    csrf = Csrf(settings.web_csrf_secret.get_secret_value(), secure=settings.https)
    pages = Pages(csrf, cache_seconds=settings.web_cache_seconds)
    app = FastAPI(
        title="Ambassadørnetværket",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.site = Site(
        settings, services, pages, Guard(csrf, RateLimits(settings.web_rate_limit)), uploads
    )
    failures.install(app, pages)
    for module in PAGES:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders, https=settings.https)
    # Small everywhere but on the story forms, which carry pictures.
    larger = [(own_stories.UPLOAD_PATHS, own_stories.upload_body_limit(settings))]
    app.add_middleware(BodyLimit, limit=settings.web_max_body_bytes, larger=larger)
    app.add_middleware(AccessLog)
    # Inside HeadAsGet, which passes a copy of the scope on: the route is set in that copy.
    app.state.metrics = WebMetrics()
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    if traces is not None:
        app.add_middleware(RequestSpans, tracer=traces.get_tracer("samskab.web"))
    # Outermost: the access log and every layer below see a HEAD as the GET it stands for.
    app.add_middleware(HeadAsGet)
    return app
