"""The website's pages, rendered by jinja2 from ``web/templates`` (Danish, ``lang="da"``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2
from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

from web.csrf import FIELD, Csrf

TEMPLATES = Path(__file__).parent / "templates"
SITE_NAME = "Ambassadørnetværket"
OWNER = "Fredericia Kommune"

# The site's navigation: (path, label).
NAVIGATION = (
    ("/", "Forside"),
    ("/bliv-ambassadoer", "Bliv ambassadør"),
    ("/ambassadoerer", "Ambassadører"),
    ("/netvaerk", "Netværk"),
    ("/historier", "Historier"),
    ("/kalender", "Kalender"),
    ("/nyhedsbrev", "Nyhedsbrev"),
    ("/maal", "Mål"),
)


class Pages:
    """Renders a template into a response, with what every page needs (the navigation,
    the form's CSRF token, the visitor's CSRF cookie when it is new)."""

    def __init__(self, csrf: Csrf, *, cache_seconds: int) -> None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates = Jinja2Templates(env=env)
        self.csrf = csrf
        self.cache_seconds = cache_seconds
        env.globals.update(site_name=SITE_NAME, owner=OWNER, navigation=NAVIGATION)
        env.globals["csrf_field"] = FIELD

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        public: bool = False,
        media_type: str | None = None,
        **context: Any,
    ) -> Response:
        """``public``: the same for every visitor (no form, nothing personal): a proxy may
        keep it for ``web_cache_seconds``. Anything else is never stored by a cache."""
        if not public:
            context.setdefault("csrf_token", self.csrf.token(request))
        response: Response = self.templates.TemplateResponse(
            request,
            template,
            context,
            status_code=status_code,
            headers=headers,
            media_type=media_type,
        )
        if public and status_code == 200:
            return cacheable(request, response, self.cache_seconds)
        response.headers["Cache-Control"] = "no-store"
        self.csrf.set_cookie(request, response)
        return response


def cacheable(
    request: Request, response: Response, max_age: int, *, private: bool = False
) -> Response:
    """A public page with its ``ETag`` and ``Cache-Control``; 304 when the visitor (or a
    proxy) already holds these bytes. ``private``: only the visitor's own browser may keep
    it (what a token link shows), never a shared cache."""
    etag = f'"{hashlib.sha256(bytes(response.body)).hexdigest()[:32]}"'
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = f"{'private' if private else 'public'}, max-age={max_age}"
    wanted = request.headers.get("if-none-match", "")
    if etag in {tag.strip().removeprefix("W/") for tag in wanted.split(",")}:
        return Response(
            status_code=304, headers={k: response.headers[k] for k in ("ETag", "Cache-Control")}
        )
    return response
