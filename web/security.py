"""What every response of the website carries and every request is held to: strict
headers, a body size limit enforced before the body is read, and paths logged without the
tokens they carry."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.runtime.logging import get_logger

# No script at all: the site works without one, and an injected one would not run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"

# The paths the mails' links use, with the token as one segment (an RSVP's answer after it).
_TOKEN_PATHS = re.compile(
    r"^(?P<head>/(?:confirm|newsletter/confirm|newsletter/unsubscribe|rsvp|netvaerk/svar|akut"
    r"|historier/egne))/[^/?#]+"
)


def redact_path(path: str) -> str:
    """``path`` as it may be logged: a token in it is replaced by ``<token>``."""
    return _TOKEN_PATHS.sub(r"\g<head>/<token>", path, count=1)


class SecurityHeaders:
    """Adds the headers every page carries (HSTS only when the public URL is https)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers["X-Content-Type-Options"] = "nosniff"
                # A token in a page's URL never leaves through the Referer header.
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if self.https:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413: by its Content-Length before
    anything is read, and while it streams when it has none (chunked). ``larger``: the
    few paths that take files (a pattern each, matched against the whole path) and the
    limit each of them gets instead."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        larger: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.larger = tuple(larger)

    def limit_of(self, path: str) -> int:
        return next((limit for route, limit in self.larger if route.fullmatch(path)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await _too_large(send)


async def _too_large(send: Send) -> None:
    body = "Forespørgslen er for stor.".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ResponseStatus:
    """A ``send`` that notes the status of the response it passes on, for a middleware
    that reports on every request; 500 until a response starts (the app raised first)."""

    def __init__(self, send: Send) -> None:
        self.code = 500
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.code = message["status"]
        await self._send(message)


class AccessLog:
    """One log line per request: method, path without its token, status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = get_logger("web.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = ResponseStatus(send)
        try:
            await self.app(scope, receive, status)
        finally:
            self.log.info(
                "request",
                method=scope["method"],
                path=redact_path(scope["path"]),
                status=status.code,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
