"""What the pages of one running website share: how to ask the services, how to render,
how to check a form. Built once by ``create_app`` and held by the app."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from web.forms import Guard
from web.gateway import Caller
from web.settings import WebSettings
from web.templating import Pages
from web.uploads import Uploads


@dataclass(frozen=True)
class Site:
    settings: WebSettings
    services: Caller
    pages: Pages
    guard: Guard
    # Where files a visitor sends go; None: nowhere (a test's stand-in without any), and
    # a page that needs it answers that its service is unavailable.
    uploads: Uploads | None = None


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site
