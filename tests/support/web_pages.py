"""The website's pages as its routers declare them, for tests that must cover each."""

from __future__ import annotations

from fastapi.routing import APIRoute

from web.app import PAGES


def page_paths() -> list[str]:
    """Every path the site answers a GET on (with its ``{parameters}``)."""
    routes = [route for module in PAGES for route in module.router.routes]
    return [r.path for r in routes if isinstance(r, APIRoute) and "GET" in (r.methods or ())]
