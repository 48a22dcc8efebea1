"""What every form post goes through before a page acts on it: the per-client rate limit,
the CSRF token, and the honeypot field that people never see and form bots fill in."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request

from web.csrf import FIELD, Csrf
from web.rate_limits import RateLimits

# Hidden from people (and from screen readers); a bot filling every field fills it.
HONEYPOT = "adresse2"
_DAY_FIRST = re.compile(r"^(\d{1,2})[-./](\d{1,2})[-./](\d{4})$")


def iso_date(text: str) -> str | None:
    """A date field's value for the contract: a date input sends ISO dates; a browser
    without one lets people type 31-01-2027."""
    if day_first := _DAY_FIRST.match(text):
        day, month, year = day_first.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return text or None


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

    async def form(
        self, request: Request, what: str, *, max_files: int = 0
    ) -> tuple[FormData, bool]:
        """The posted form, checked; and whether the honeypot was filled (the caller then
        answers as if it worked, and does nothing). ``max_files``: file fields it may hold
        (each field counts, chosen or not); the caller closes such a form."""
        self.limit(request, what)
        form = await request.form(max_files=max_files, max_fields=100, max_part_size=64 * 1024)
        try:
            return form, self.check(request, form)
        except FormRefused:
            await form.close()
            raise

    def check(self, request: Request, form: FormData) -> bool:
        """The CSRF token of a form already read (FormRefused if it is not genuine), and
        whether its honeypot was filled."""
        if not self.csrf.valid(request, form.get(FIELD)):
            raise FormRefused(403)
        return bool(form.get(HONEYPOT))
