"""What every form post goes through before a page acts on it: the per-client rate limit,
the CSRF token, and the honeypot field that people never see and form bots fill in."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request

from web.csrf import FIELD, Csrf
from web.rate_limits import RateLimits

# Hidden from people (and from screen readers); a bot filling every field fills it.
HONEYPOT = "adresse2"


class FormRefused(Exception):
    """The post is not acted on; ``status`` says why (403 CSRF, 429 too many)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Guard:
    csrf: Csrf
    limits: RateLimits

    def client(self, request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    def limit(self, request: Request, what: str) -> None:
        """Count one use of ``what`` (a form, a kind of token page) by this client."""
        if not self.limits.allow(what, self.client(request)):
            raise FormRefused(429)

    async def form(self, request: Request, what: str) -> tuple[FormData, bool]:
        """The posted form, checked; and whether the honeypot was filled (the caller then
        answers as if it worked, and does nothing)."""
        self.limit(request, what)
        form = await request.form(max_files=0, max_fields=100, max_part_size=64 * 1024)
        return form, self.check(request, form)

    def check(self, request: Request, form: FormData) -> bool:
        """The CSRF token of a form already read (FormRefused if it is not genuine), and
        whether its honeypot was filled."""
        if not self.csrf.valid(request, form.get(FIELD)):
            raise FormRefused(403)
        return bool(form.get(HONEYPOT))
